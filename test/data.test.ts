import { existsSync, mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';

import { Cifar10Dataset } from '../lib/data/cifar10.js';
import { ShapesDataset } from '../lib/data/dataset.js';
import { DataRng } from '../lib/data/rng.js';
import { drawShape, insideShape, type ShapeSpec, SUPERSAMPLING } from '../lib/data/shapes.js';
import { ImageFolderDataset } from '../lib/data/image_folder.js';
import { BatchSampler } from '../lib/data/loader.js';
import { MnistDataset } from '../lib/data/mnist.js';
import { decodePNG } from '../lib/image/decode.js';
import { encodePNG } from '../lib/image/png.js';
import { centreCropResize } from '../lib/image/resize.js';
import { execFileSync } from 'node:child_process';

const CIFAR_TAR = join(import.meta.dirname, '..', '..', 'shared', 'data', 'cifar10-test-jpg.tar');

describe('shapes', () => {
  test('image i is a pure function of (seed, i), in [-1, 1], with every class present', () => {
    const a = new ShapesDataset(3), b = new ShapesDataset(3);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 200; i++) {
      const x = a.get(i), y = b.get(i);
      expect(x.label).toBe(y.label);
      expect(Array.from(x.pixels)).toEqual(Array.from(y.pixels));
      counts[x.label]++;
      expect(Math.min(...x.pixels)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...x.pixels)).toBeLessThanOrEqual(1);
    }
    expect(Math.min(...counts)).toBeGreaterThan(25);
    expect(Array.from(new ShapesDataset(4).get(0).pixels)).not.toEqual(Array.from(a.get(0).pixels));
  });

  test('drawShape, supersampling only near the edge, gives the bits of supersampling every pixel', () => {
    // Every pixel's coverage counted over all 4×4 samples.
    const reference = (spec: ShapeSpec, size: number): Float32Array => {
      const { label, fg, bg, radius, cx, cy, angle } = spec;
      const cos = Math.cos(angle), sin = Math.sin(angle), S = SUPERSAMPLING;
      const out = new Float32Array(3 * size * size);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          let cover = 0;
          for (let sy = 0; sy < S; sy++) {
            for (let sx = 0; sx < S; sx++) {
              const dx = (x + (sx + 0.5) / S - cx) / radius, dy = (y + (sy + 0.5) / S - cy) / radius;
              if (insideShape(label, cos * dx + sin * dy, -sin * dx + cos * dy)) cover++;
            }
          }
          const a = cover / (S * S);
          for (let c = 0; c < 3; c++) out[c * size * size + y * size + x] = 2 * (a * fg[c] + (1 - a) * bg[c]) - 1;
        }
      }
      return out;
    };
    const rng = new DataRng(17, 0);
    let partial = 0;
    for (let i = 0; i < 400; i++) {
      const label = i % 4, size = [32, 17, 64][i % 3];
      // Awkward geometry too: shapes from sub-pixel to larger than the image, centres off pixel grid and off the image.
      const radius = i % 10 === 0 ? rng.uniform(0.3, 2) : rng.uniform(0.1, 0.7) * size;
      const spec: ShapeSpec = { label, fg: [rng.next(), rng.next(), rng.next()], bg: [rng.next(), rng.next(), rng.next()], radius,
        cx: rng.uniform(-0.2, 1.2) * size, cy: rng.uniform(-0.2, 1.2) * size, angle: rng.uniform(0, 2 * Math.PI) };
      const got = drawShape(spec, size), want = reference(spec, size);
      expect(got.every((v, j) => Object.is(v, want[j])), `shape ${i} (${JSON.stringify(spec)})`).toBe(true);
      const red = want.subarray(0, size * size), fgRed = Math.fround(2 * spec.fg[0] - 1), bgRed = Math.fround(2 * spec.bg[0] - 1);
      if (red.some((v) => v !== fgRed && v !== bgRed)) partial++;
    }
    expect(partial, 'shapes with anti-aliased edge pixels').toBeGreaterThan(300);
  });
});

describe('batch order', () => {
  test('batch k depends only on (seed, k); flips and label dropout are deterministic', () => {
    const d = new ShapesDataset(0, 100);
    const s1 = new BatchSampler(d, { batchSize: 8, seed: 5, hflip: true, labelDropout: 0.5 });
    const s2 = new BatchSampler(d, { batchSize: 8, seed: 5, hflip: true, labelDropout: 0.5 });
    for (const k of [0, 13, 12, 30]) {
      const a = s1.batch(k), b = s2.batch(k);
      expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
      expect(Array.from(a.images)).toEqual(Array.from(b.images));
    }
    const labels = Array.from({ length: 20 }, (_, k) => Array.from(s1.batch(k).labels)).flat();
    const dropped = labels.filter((l) => l === 4).length;
    expect(dropped).toBeGreaterThan(40);
    expect(dropped).toBeLessThan(120);
    // an epoch of 100 images at batch 10 visits each image once
    const s3 = new BatchSampler(d, { batchSize: 10, seed: 1 });
    const seen = new Set<string>();
    for (let k = 0; k < 10; k++) {
      const b = s3.batch(k);
      for (let i = 0; i < 10; i++) seen.add(b.images.subarray(i * 3072, i * 3072 + 64).join(','));
    }
    expect(seen.size).toBe(100);
  });
});

describe('image codecs and resizing', () => {
  test('PNG round trip', () => {
    const rgb = Uint8Array.from({ length: 7 * 5 * 3 }, (_, i) => (i * 37) % 256);
    const img = decodePNG(encodePNG(rgb, 7, 5));
    expect([img.width, img.height]).toEqual([7, 5]);
    expect(Array.from(img.data)).toEqual(Array.from(rgb));
  });
  test('corrupt PNG names the file', () => {
    const png = encodePNG(new Uint8Array(4 * 4 * 3).fill(9), 4, 4);
    png[40] ^= 0xff;
    expect(() => decodePNG(png, 'broken.png')).toThrow(/broken\.png: CRC mismatch/);
    expect(() => decodePNG(png.subarray(0, 20), 'short.png')).toThrow(/short\.png: truncated/);
  });
  test('resize: identity at the same size, averages when shrinking, crops the centre', () => {
    const data = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 11) % 256);
    const same = centreCropResize({ width: 4, height: 4, data }, 4);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 16; p++) expect(same[c * 16 + p]).toBeCloseTo(data[p * 3 + c] / 127.5 - 1, 5);
    // columns 0 and 5 are black: the centre 2x2 crop (and the filter's reach) sees only white
    const framed = new Uint8Array(36).fill(255).map((v, i) => (Math.floor(i / 3) % 6 === 0 || Math.floor(i / 3) % 6 === 5 ? 0 : v));
    expect(centreCropResize({ width: 6, height: 2, data: framed }, 1)[0]).toBeCloseTo(1, 5);
    const grey = centreCropResize({ width: 9, height: 5, data: new Uint8Array(135).fill(51) }, 3);
    for (const v of grey) expect(v).toBeCloseTo(51 / 127.5 - 1, 5);
  });
});

describe('datasets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-data-'));
  test.skipIf(!existsSync(CIFAR_TAR))(`image folder reads the CIFAR-10 JPEG tar layout (needs ${CIFAR_TAR})`, () => {
    execFileSync('tar', ['xf', CIFAR_TAR, '-C', dir]);
    const d = new ImageFolderDataset(join(dir, 'test'), 32);
    expect(d.size).toBe(10000);
    expect(d.classNames).toEqual(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
    const ex = d.get(3500);
    expect(ex.label).toBe(3);
    expect(ex.pixels.length).toBe(3072);
    const mean = ex.pixels.reduce((a, b) => a + b, 0) / 3072;
    expect(Math.abs(mean)).toBeLessThan(1);
    expect(new Set(ex.pixels).size).toBeGreaterThan(50); // a real photo, not a flat image
    const small = new ImageFolderDataset(join(dir, 'test'), 16).get(3500);
    expect(small.pixels.length).toBe(768);
  });
  test('corrupt and missing files give errors naming the file', () => {
    const root = join(dir, 'bad');
    mkdirSync(join(root, 'a'), { recursive: true });
    writeFileSync(join(root, 'a', 'x.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]));
    writeFileSync(join(root, 'a', 'y.png'), Buffer.from('not a png'));
    const d = new ImageFolderDataset(root, 8);
    expect(() => d.get(0)).toThrow(/x\.jpg: corrupt or unsupported JPEG/);
    expect(() => d.get(1)).toThrow(/y\.png: not a PNG or JPEG file/);
    expect(() => new ImageFolderDataset(join(dir, 'nope'), 8)).toThrow(/nope: no such directory/);
  });
  test('CIFAR-10 binary batches', () => {
    const root = join(dir, 'cifar-bin');
    mkdirSync(root);
    const rec = Buffer.alloc(3073 * 3);
    for (let r = 0; r < 3; r++) {
      rec[r * 3073] = r * 4;
      for (let i = 0; i < 3072; i++) rec[r * 3073 + 1 + i] = (i + r) % 256;
    }
    writeFileSync(join(root, 'test_batch.bin'), rec);
    const d = new Cifar10Dataset(root, 'test');
    expect(d.size).toBe(3);
    expect(d.get(2).label).toBe(8);
    expect(d.get(1).pixels[5]).toBeCloseTo(6 / 127.5 - 1, 6);
    writeFileSync(join(root, 'test_batch.bin'), rec.subarray(0, 3073 * 2 + 10));
    expect(() => new Cifar10Dataset(root, 'test')).toThrow(/test_batch\.bin: .* not a whole number of 3073-byte records/);
    expect(() => new Cifar10Dataset(root, 'train')).toThrow(/data_batch_1\.bin: missing/);
  });
  test('MNIST idx (gzipped)', () => {
    const root = join(dir, 'mnist');
    mkdirSync(root);
    const n = 2;
    const img = Buffer.alloc(16 + n * 784);
    img.writeUInt32BE(0x803, 0); img.writeUInt32BE(n, 4); img.writeUInt32BE(28, 8); img.writeUInt32BE(28, 12);
    for (let i = 0; i < n * 784; i++) img[16 + i] = (i * 7) % 256;
    const lab = Buffer.alloc(8 + n);
    lab.writeUInt32BE(0x801, 0); lab.writeUInt32BE(n, 4); lab[8] = 7; lab[9] = 1;
    writeFileSync(join(root, 'train-images-idx3-ubyte.gz'), gzipSync(img));
    writeFileSync(join(root, 'train-labels-idx1-ubyte'), lab);
    const d = new MnistDataset(root);
    expect(d.size).toBe(2);
    expect(d.get(0).label).toBe(7);
    expect(d.get(1).pixels[0]).toBe(-1); // padding
    expect(d.get(0).pixels[2 * 32 + 2 + 1]).toBeCloseTo(7 / 127.5 - 1, 6);
    writeFileSync(join(root, 'train-labels-idx1-ubyte'), lab.subarray(0, 9));
    expect(() => new MnistDataset(root)).toThrow(/train-labels-idx1-ubyte: 1 data bytes, header says 2/);
    void readFileSync;
  });
});

describe('image folder layouts as distributed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-layouts-'));
  /** A w×h PNG filled with `rgb`, with rows [y0, y1) (or columns, `vertical`) in `band`. */
  const png = (path: string, w: number, h: number, rgb: number[], band?: { from: number; to: number; rgb: number[]; columns?: boolean }) => {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const t = band?.columns ? x : y;
        const c = band && (t < band.from || t >= band.to) ? band.rgb : rgb;
        data.set(c, (y * w + x) * 3);
      }
    }
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, encodePNG(data, w, h));
  };

  test('CelebA: a flat folder is unlabelled, and the extraction directory around it is looked through', () => {
    const root = join(dir, 'celeba');
    for (let i = 1; i <= 3; i++) png(join(root, 'img_align_celeba', `00000${i}.png`), 18, 22, [10 * i, 20, 30]);
    writeFileSync(join(root, 'img_align_celeba', '._000001.jpg'), 'macOS resource fork, not an image');
    for (const d of [new ImageFolderDataset(root, 8), new ImageFolderDataset(join(root, 'img_align_celeba'), 8)]) {
      expect([d.size, d.numClasses, d.classNames.length]).toEqual([3, 0, 0]);
      expect(d.get(2).label).toBe(0);
      expect(d.get(2).pixels[0]).toBeCloseTo(30 / 127.5 - 1, 5);
      expect(d.file(0).endsWith('000001.png')).toBe(true);
    }
  });

  test('CUB: a class per sub-folder, files nested inside classes, hidden entries skipped, links followed', () => {
    const images = join(dir, 'CUB_200_2011', 'images');
    png(join(images, '001.Black_footed_Albatross', 'a_0001.png'), 40, 30, [0, 0, 255]);
    png(join(images, '001.Black_footed_Albatross', 'more', 'a_0002.png'), 40, 30, [0, 0, 255]);
    png(join(images, '002.Laysan_Albatross', 'b_0001.png'), 30, 40, [255, 0, 0]);
    png(join(images, '.thumbnails', 'x.png'), 4, 4, [0, 0, 0]);
    writeFileSync(join(images, '002.Laysan_Albatross', '.DS_Store'), 'x');
    const elsewhere = join(dir, 'elsewhere', '003.Sooty_Albatross');
    png(join(elsewhere, 'c_0001.png'), 30, 30, [0, 255, 0]);
    symlinkSync(elsewhere, join(images, '003.Sooty_Albatross'));
    symlinkSync(images, join(images, '002.Laysan_Albatross', 'loop')); // a link back up is not followed forever
    const d = new ImageFolderDataset(images, 16);
    expect(d.classNames).toEqual(['001.Black_footed_Albatross', '002.Laysan_Albatross', '003.Sooty_Albatross']);
    expect(d.size).toBe(4);
    expect([0, 1, 2, 3].map((i) => d.get(i).label)).toEqual([0, 0, 1, 2]);
    expect(d.file(1).endsWith(join('more', 'a_0002.png'))).toBe(true);
    expect(d.get(3).pixels[16 * 16]).toBeCloseTo(1, 5); // green plane of the linked class
  });

  test('centre crop of tall and wide photos, resized to 64×64 and up', () => {
    // 96×160 portrait: the centre 96×96 square is green, the 32-row bands above and below are red.
    png(join(dir, 'crop', 'tall.png'), 96, 160, [0, 255, 0], { from: 32, to: 128, rgb: [255, 0, 0] });
    // 200×120 landscape: the centre 120 columns are green, the side bands blue.
    png(join(dir, 'crop', 'wide.png'), 200, 120, [0, 255, 0], { from: 40, to: 160, rgb: [0, 0, 255], columns: true });
    for (const size of [64, 96]) {
      const d = new ImageFolderDataset(join(dir, 'crop'), size);
      for (const i of [0, 1]) {
        const px = d.get(i).pixels;
        expect(px.length).toBe(3 * size * size);
        // Inside a 2-pixel border the output is the green square exactly; the border's filter taps
        // reach just past the crop (as resizing the whole photo and then cropping would), so it
        // is mostly green. Squashing the whole photo instead would give red/blue edge rows.
        for (let y = 0; y < size; y++) {
          for (let x = 0; x < size; x++) {
            const [r, g, b] = [0, 1, 2].map((c) => px[(c * size + y) * size + x]);
            const interior = Math.min(x, y, size - 1 - x, size - 1 - y) >= 2;
            if (interior ? Math.abs(r + 1) + Math.abs(g - 1) + Math.abs(b + 1) > 1e-5 : g < 0.5) {
              expect.fail(`${d.file(i)} at ${size}: pixel (${x}, ${y}) is (${r}, ${g}, ${b}), expected green`);
            }
          }
        }
      }
    }
  });

  test('an LSUN export of WebP files says how to convert it; an empty folder says what it found', () => {
    mkdirSync(join(dir, 'lsun', 'a'), { recursive: true });
    mkdirSync(join(dir, 'lsun', 'b'), { recursive: true });
    writeFileSync(join(dir, 'lsun', 'a', '0001.webp'), 'RIFF');
    writeFileSync(join(dir, 'lsun', 'b', '0002.webp'), 'RIFF');
    writeFileSync(join(dir, 'lsun', 'b', 'notes.txt'), '');
    expect(() => new ImageFolderDataset(join(dir, 'lsun'), 64)).toThrow(/lsun: no \.png\/\.jpg\/\.jpeg images found \(found 2 \.webp, 1 \.txt files\); WebP .* convert to PNG or JPEG/);
  });
});

describe('prefetching loader', () => {
  test('gives exactly the batches of the BatchSampler, in any request order', async () => {
    const { PrefetchLoader } = await import('../lib/data/prefetch.js');
    const options = { batchSize: 4, seed: 3, hflip: true, labelDropout: 0.2 };
    const loader = new PrefetchLoader({ kind: 'shapes', seed: 1, size: 40 }, options, 3);
    const direct = new BatchSampler(new ShapesDataset(1, 40), options);
    for (const k of [0, 1, 2, 7, 3]) {
      const a = await loader.get(k), b = direct.batch(k);
      expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
      expect(Buffer.from(a.images.buffer).equals(Buffer.from(b.images.buffer))).toBe(true);
    }
    await loader.close();
  });
});
