/**
 * The dataset cache (lib/data/cache.ts): quantisation, exact round trips, the mmap reader against
 * its source, clear errors for corrupt files, atomic writes, the prefetch worker, the CLI.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import { packageRoot } from '../lib/package_root.js';
import { CachedDataset, dequantise, quantise, writeDatasetCache } from '../lib/data/cache.js';
import { Cifar10Dataset } from '../lib/data/cifar10.js';
import { createDataset, type Example, type ImageDataset, ShapesDataset } from '../lib/data/dataset.js';
import { ImageFolderDataset } from '../lib/data/image_folder.js';
import { BatchSampler } from '../lib/data/loader.js';
import { PrefetchLoader } from '../lib/data/prefetch.js';
import { randomValues } from './helpers.js';

const CIFAR_TAR = join(import.meta.dirname, '..', '..', 'shared', 'data', 'cifar10-test-jpg.tar');
const dir = mkdtempSync(join(tmpdir(), 'diffvit-cache-'));
const mapFile = native.mapFile;

/** A small in-memory dataset with awkward sizes (odd pixel count, one channel) and given values. */
class ArrayDataset implements ImageDataset {
  readonly name = 'array';
  readonly classNames: string[];
  constructor(
    readonly channels: number,
    readonly imageSize: number,
    readonly examples: Example[],
    readonly numClasses: number,
  ) {
    this.classNames = Array.from({ length: numClasses }, (_, k) => `classe n°${k} — ✓`); // UTF-8 in the header
  }
  get size(): number {
    return this.examples.length;
  }
  get(i: number): Example {
    return this.examples[i];
  }
}

/** The first `n` examples of every `stride`-th of a dataset. */
function subset(d: ImageDataset, stride: number, n: number): ImageDataset {
  return {
    name: d.name, channels: d.channels, imageSize: d.imageSize, numClasses: d.numClasses, classNames: d.classNames,
    size: n, get: (i: number) => d.get(i * stride),
  };
}

/** CIFAR-10 binary records whose pixels use every byte value. */
function cifarBinary(records: number): string {
  const root = mkdtempSync(join(dir, 'cifar-bin-'));
  const b = Buffer.alloc(3073 * records);
  for (let r = 0; r < records; r++) {
    b[r * 3073] = (r * 7) % 10;
    for (let i = 0; i < 3072; i++) b[r * 3073 + 1 + i] = (i * 31 + r * 17) % 256;
  }
  writeFileSync(join(root, 'test_batch.bin'), b);
  return root;
}

function bits(x: Float32Array): string {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex');
}

describe('quantisation', () => {
  test('every 8-bit level round-trips bit-exactly; other values land on the nearest level', () => {
    const grid = Float32Array.from({ length: 256 }, (_, q) => q / 127.5 - 1);
    const q = quantise(grid);
    expect(Array.from(q)).toEqual(Array.from({ length: 256 }, (_, i) => i));
    expect(bits(dequantise(q))).toBe(bits(grid));
    const x = Float32Array.from(randomValues(5000, 7, 0.6), (v) => Math.max(-1, Math.min(1, v)));
    const back = dequantise(quantise(x));
    let worst = 0, notNearest = 0;
    for (let i = 0; i < x.length; i++) {
      const err = Math.abs(back[i] - x[i]);
      worst = Math.max(worst, err);
      // the nearest level: neither neighbouring level is closer
      const q = Math.round((back[i] + 1) * 127.5);
      for (const other of [q - 1, q + 1]) if (err > Math.abs(other / 127.5 - 1 - x[i]) + 1e-7) notNearest++;
    }
    expect(notNearest).toBe(0);
    expect(worst).toBeLessThanOrEqual(1 / 255 + 1e-7);
    expect(worst).toBeGreaterThan(0.9 / 255); // the test data does fall between levels
  });
  test('values outside [-1, 1] and NaN are errors naming the example, not silently clipped', () => {
    expect(() => quantise(Float32Array.of(0, 1.5), undefined, 'shapes: example 4')).toThrow(/shapes: example 4: value 1\.5 at element 1 \(expected pixels in \[-1, 1\]\)/);
    expect(() => quantise(Float32Array.of(NaN))).toThrow(/value NaN at element 0/);
  });
});

describe('cache files', () => {
  test('CIFAR-10 binary -> cache -> mmap: identical examples, header, 64-byte aligned sections', () => {
    const source = new Cifar10Dataset(cifarBinary(37), 'test');
    const path = join(dir, 'cifar.dvcache');
    const progress: number[] = [];
    const header = writeDatasetCache(source, path, { source: { kind: 'cifar10' }, onProgress: (done) => progress.push(done) });
    expect(progress[progress.length - 1]).toBe(37);
    expect(header.pixels.offset % 64).toBe(0);
    expect(header.labels.offset % 64).toBe(0);
    expect(statSync(path).size).toBe(header.labels.offset + 4 * 37);
    const cached = new CachedDataset(path);
    expect([cached.size, cached.channels, cached.imageSize, cached.numClasses]).toEqual([37, 3, 32, 10]);
    expect(cached.classNames).toEqual(source.classNames);
    expect(cached.header.source).toEqual({ kind: 'cifar10' });
    for (let i = 0; i < 37; i++) {
      const a = cached.get(i), b = source.get(i);
      expect(a.label).toBe(b.label);
      expect(bits(a.pixels)).toBe(bits(b.pixels));
    }
    // and through the DatasetSpec, as the loader worker builds it
    const viaSpec = createDataset({ kind: 'cache', path });
    expect(bits(viaSpec.get(36).pixels)).toBe(bits(source.get(36).pixels));
    expect(() => cached.get(37)).toThrow(/index expected an integer in \[0, 37\), received 37/);
  });

  test('odd sizes, one channel, unlabelled; anti-aliased data within half a level (shapes)', () => {
    const examples = Array.from({ length: 5 }, (_, i) => ({ pixels: Float32Array.from(randomValues(25, i + 1, 0.4), (v) => Math.tanh(v)), label: i % 3 }));
    const path = join(dir, 'odd.dvcache');
    writeDatasetCache(new ArrayDataset(1, 5, examples, 3), path);
    const d = new CachedDataset(path);
    expect([d.size, d.channels, d.imageSize, d.numClasses]).toEqual([5, 1, 5, 3]);
    expect(d.classNames).toEqual(['classe n°0 — ✓', 'classe n°1 — ✓', 'classe n°2 — ✓']);
    for (let i = 0; i < 5; i++) {
      expect(d.get(i).label).toBe(i % 3);
      expect(bits(d.get(i).pixels)).toBe(bits(dequantise(quantise(examples[i].pixels))));
    }
    writeDatasetCache(new ArrayDataset(1, 5, examples, 3), path, { unlabelled: true });
    const u = new CachedDataset(path);
    expect([u.numClasses, u.classNames.length, u.get(4).label]).toEqual([0, 0, 0]);

    const shapes = new ShapesDataset(2, 24);
    writeDatasetCache(shapes, join(dir, 'shapes.dvcache'));
    const s = new CachedDataset(join(dir, 'shapes.dvcache'));
    let worst = 0;
    for (let i = 0; i < 24; i++) {
      const a = s.get(i), b = shapes.get(i);
      expect(a.label).toBe(b.label);
      for (let j = 0; j < a.pixels.length; j++) worst = Math.max(worst, Math.abs(a.pixels[j] - b.pixels[j]));
    }
    expect(worst).toBeLessThanOrEqual(1 / 255 + 1e-7);
  });

  test('writes are atomic: a failing dataset leaves the old file and no temporary behind', () => {
    const sub = mkdtempSync(join(dir, 'atomic-'));
    const path = join(sub, 'data.dvcache');
    const good = new ArrayDataset(1, 2, [{ pixels: Float32Array.of(-1, 0, 0.5, 1), label: 1 }], 2);
    writeDatasetCache(good, path);
    const before = readFileSync(path);
    const broken = new ArrayDataset(1, 2, [...good.examples, { pixels: Float32Array.of(0, 0, 2, 0), label: 0 }], 2);
    expect(() => writeDatasetCache(broken, path)).toThrow(/array: example 1: value 2 at element 2/);
    const badLabel = new ArrayDataset(1, 2, [{ pixels: Float32Array.of(0, 0, 0, 0), label: 2 }], 2);
    expect(() => writeDatasetCache(badLabel, path)).toThrow(/example 0 has label 2 \(expected a class in \[0, 2\)\)/);
    const badShape = new ArrayDataset(1, 2, [{ pixels: Float32Array.of(0, 0, 0), label: 0 }], 2);
    expect(() => writeDatasetCache(badShape, path)).toThrow(/example 0 has 3 pixel values \(expected C·H·W = 1·2·2 = 4\)/);
    const captioned = Object.assign(new ArrayDataset(1, 2, good.examples, 2), { contextLen: 3, contextDim: 4 });
    expect(() => writeDatasetCache(captioned, path)).toThrow(/carries text embeddings \(context 3×4\), which a cache file does not store/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(sub)).toEqual(['data.dvcache']);
  });

  test('corrupt, truncated and foreign files give errors naming the file and what was expected', () => {
    const path = join(dir, 'cifar-corrupt-src.dvcache');
    writeDatasetCache(new Cifar10Dataset(cifarBinary(3), 'test'), path);
    const good = readFileSync(path);
    const variant = (name: string, bytes: Uint8Array) => {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      return () => new CachedDataset(p);
    };
    const patched = (at: number, values: number[]) => {
      const b = Buffer.from(good);
      values.forEach((v, i) => (b[at + i] = v));
      return b;
    };
    const headerLength = good.readUInt32LE(12);
    const header = JSON.parse(good.subarray(16, 16 + headerLength).toString());
    expect(variant('empty.dvcache', new Uint8Array(0))).toThrow(/empty\.dvcache: truncated: 0 bytes \(expected at least the 16-byte preamble/);
    expect(variant('png.dvcache', Buffer.from('\x89PNG\r\n\x1a\n0000000000', 'latin1'))).toThrow(/png\.dvcache: not a diffvit dataset cache \(expected magic "DVCACHE\\0" at byte 0, found bytes 89504e470d0a1a0a\)/);
    expect(variant('short.dvcache', good.subarray(0, 12))).toThrow(/short\.dvcache: truncated: 12 bytes/);
    expect(variant('cut-header.dvcache', good.subarray(0, 100))).toThrow(new RegExp(`cut-header\\.dvcache: truncated: 100 bytes, but the header alone needs ${16 + headerLength}`));
    expect(variant('cut-pixels.dvcache', good.subarray(0, header.pixels.offset + 5000))).toThrow(
      new RegExp(`cut-pixels\\.dvcache: truncated: ${header.pixels.offset + 5000} bytes, expected ${good.length} \\(the header describes 3 images of 3×32×32\\)`));
    expect(variant('cut-labels.dvcache', good.subarray(0, good.length - 1))).toThrow(/cut-labels\.dvcache: truncated: .* expected/);
    expect(variant('long.dvcache', Buffer.concat([good, Buffer.alloc(3)]))).toThrow(/long\.dvcache: .* bytes, expected .* trailing data/);
    expect(variant('v2.dvcache', patched(8, [2]))).toThrow(/v2\.dvcache: format version 2 \(this diffvit reads version 1/);
    expect(variant('json.dvcache', patched(16, [0x5b]))).toThrow(/json\.dvcache: corrupt header \(expected JSON/);
    // a header that lies about the count: the pixel byte count no longer matches
    const lie = Buffer.from(good);
    lie.write(lie.toString('latin1', 16, 16 + headerLength).replace('"count":3', '"count":4'), 16, 'latin1');
    expect(variant('count.dvcache', lie)).toThrow(/count\.dvcache: corrupt header: 'pixels' expected \{ offset: .*bytes: N·C·H·W = 12288/);
    // a label byte flipped to 200
    expect(variant('label.dvcache', patched(header.labels.offset + 4, [200]))).toThrow(/label\.dvcache: corrupt labels: example 1 has label 200 \(expected a class in \[0, 10\)\)/);
    expect(() => new CachedDataset(join(dir, 'missing.dvcache'))).toThrow(/missing\.dvcache: no such file \(make one with 'diffvit prepare/);
    expect(() => new CachedDataset(dir)).toThrow(/not a regular file/);
  });

  test('mapFile: the file bytes, copy-on-write, errors naming the file', () => {
    const path = join(dir, 'cifar.dvcache');
    const mapped = mapFile(path);
    expect(mapped).toBeInstanceOf(ArrayBuffer);
    expect(Buffer.from(mapped).equals(readFileSync(path))).toBe(true);
    // a write through a view changes this process's copy, never the file (and does not crash)
    new Uint8Array(mapped)[0] = 0x21;
    expect(new Uint8Array(mapped)[0]).toBe(0x21);
    expect(readFileSync(path)[0]).toBe('D'.charCodeAt(0));
    expect(() => mapFile(join(dir, 'nope'))).toThrow(/diffvit\.mapFile: .*nope: cannot open \(No such file or directory\)/);
    expect(() => mapFile(dir)).toThrow(/diffvit\.mapFile: .*: not a regular file/);
    expect(() => (mapFile as unknown as (p: unknown) => ArrayBuffer)(42)).toThrow(/argument 'path' expected a file path string, received 42/);
    expect(() => mapFile('')).toThrow(/argument 'path' expected a non-empty file path/);
  });

  // Reads /proc/self/maps (Linux) and forces collections (vitest.config.ts runs with --expose-gc).
  const unmapSkip = process.platform !== 'linux' ? 'needs /proc/self/maps (Linux)' : typeof globalThis.gc !== 'function' ? 'needs node --expose-gc' : '';
  test.skipIf(unmapSkip !== '')(`the mapping is released when the dataset is collected${unmapSkip ? ` (skipped: ${unmapSkip})` : ''}`, async () => {
    const path = join(dir, 'released.dvcache');
    writeDatasetCache(new ShapesDataset(0, 4), path);
    const mapped = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(path)).length;
    (() => {
      const d = new CachedDataset(path);
      expect(mapped()).toBe(1);
      d.get(0);
    })();
    for (let i = 0; i < 20 && mapped(); i++) {
      globalThis.gc!();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(mapped()).toBe(0);
  });
});

describe('training from a cache', () => {
  test('the prefetch worker reads the cache and gives the BatchSampler\'s batches', async () => {
    const path = join(dir, 'cifar.dvcache');
    const options = { batchSize: 8, seed: 4, hflip: true, labelDropout: 0.25 };
    const loader = new PrefetchLoader({ kind: 'cache', path }, options, 2);
    // The worker runs the compiled dist/ (CI builds it); from sources alone the loader is local.
    expect(loader.threaded).toBe(existsSync(join(packageRoot(), 'dist', 'lib', 'data', 'worker.js')));
    const direct = new BatchSampler(new CachedDataset(path), options);
    try {
      for (const k of [0, 1, 5, 2]) {
        const a = await loader.get(k), b = direct.batch(k);
        expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
        expect(bits(a.images)).toBe(bits(b.images));
      }
    } finally {
      await loader.close();
    }
    // a broken cache fails the first batch (threaded: from the worker; local: at construction)
    const broken = async () => {
      const l = new PrefetchLoader({ kind: 'cache', path: join(dir, 'json.dvcache') }, options);
      try {
        await l.get(0);
      } finally {
        await l.close();
      }
    };
    await expect(broken()).rejects.toThrow(/json\.dvcache: corrupt header/);
  });

  test.skipIf(!existsSync(CIFAR_TAR))(`the CIFAR-10 JPEG tar: folder -> cache equals the decoded JPEGs (needs ${CIFAR_TAR})`, () => {
    const root = mkdtempSync(join(dir, 'cifar-jpg-'));
    execFileSync('tar', ['xf', CIFAR_TAR, '-C', root]);
    const folder = new ImageFolderDataset(root, 32); // the extraction directory: test/ is looked through
    expect(folder.classNames).toEqual(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
    const sample = subset(folder, 97, 100); // every class, 100 JPEGs
    const path = join(dir, 'cifar-jpg.dvcache');
    writeDatasetCache(sample, path);
    const cached = new CachedDataset(path);
    for (let i = 0; i < 100; i++) {
      const a = cached.get(i), b = sample.get(i);
      expect(a.label).toBe(b.label);
      expect(bits(a.pixels), `image ${folder.file(i * 97)}`).toBe(bits(b.pixels));
    }
    expect(new Set(Array.from({ length: 100 }, (_, i) => cached.get(i).label)).size).toBe(10);
  });

  test('diffvit prepare writes a cache the train --data parser accepts; usage errors are clear', async () => {
    const { prepareCommand } = await import('../lib/cli/prepare.js');
    const { parseDataSpec } = await import('../lib/cli/train.js');
    const src = cifarBinary(5);
    const out = join(dir, 'cli.dvcache');
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      expect(await prepareCommand(['--data', `cifar10:${src}`, '--split', 'test', '--out', out])).toBe(0);
    } finally {
      process.stderr.write = stderr;
    }
    const spec = parseDataSpec(`cache:${out}`, 32);
    expect(spec).toEqual({ kind: 'cache', path: out });
    const d = createDataset(spec);
    expect([d.size, d.numClasses]).toEqual([5, 10]);
    expect((d as CachedDataset).header.source).toEqual({ kind: 'cifar10', root: src, split: 'test' });
    await expect(prepareCommand(['--data', `folder:${src}`, '--out', out])).rejects.toThrow(/folder data needs --image-size N/);
    await expect(prepareCommand(['--data', `cifar10:${src}`, '--image-size', '64', '--out', out])).rejects.toThrow(/--image-size applies to folder: and mnist: data/);
    await expect(prepareCommand(['--data', `cache:${out}`, '--out', out])).rejects.toThrow(/already a cache/);
    expect(() => parseDataSpec('cache:', 32)).toThrow(/--data SPEC expected shapes, folder:PATH, cifar10:DIR, mnist:DIR, cache:FILE or captions:INDEX.jsonl, received 'cache:'/);
  });
});
