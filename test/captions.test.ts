/**
 * Text conditioning around the model: the caption-embedding dataset (JSONL + safetensors), the
 * deterministic text embedder, context batches (loader and prefetch worker) with context dropout,
 * training with a context (bit-exact resume), and guided sampling with a context.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { loadSampleContext } from '../lib/cli/sample.js';
import { parseDataSpec } from '../lib/cli/train.js';
import { CaptionDataset } from '../lib/data/captions.js';
import { CAPTION_COLOURS, shapeCaptionExample, writeShapeCaptions } from '../lib/data/caption_shapes.js';
import { BatchSampler } from '../lib/data/loader.js';
import { PrefetchLoader } from '../lib/data/prefetch.js';
import { SHAPE_CLASSES } from '../lib/data/shapes.js';
import { generate } from '../lib/diffusion/sample.js';
import { decodePNG } from '../lib/image/decode.js';
import { encodePNG } from '../lib/image/png.js';
import { centreCropResize } from '../lib/image/resize.js';
import { fullConfig, type ModelConfig } from '../lib/models/configs.js';
import { DiffusionViT } from '../lib/models/diffusion_vit.js';
import { writeSafetensorsRaw } from '../lib/models/safetensors.js';
import { normal } from '../lib/nn/init.js';
import { tensor } from '../lib/ops/creation.js';
import { Generator } from '../lib/tensor/random.js';
import { HashTextEmbedder, tokenizeCaption } from '../lib/text/embedder.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'diffvit-captions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(1 + i * 0.7 + seed * 1.3));

/** A 6x4 RGB PNG with distinct pixels. */
function png(seed: number): Buffer {
  return encodePNG(Uint8Array.from({ length: 6 * 4 * 3 }, (_, i) => (i * 29 + seed * 53) % 256), 6, 4);
}

describe('CaptionDataset', () => {
  const root = join(dir, 'ds');
  mkdirSync(join(root, 'img'), { recursive: true });
  for (let i = 0; i < 4; i++) writeFileSync(join(root, 'img', `${i}.png`), png(i));
  const L = 3, C = 5;
  writeSafetensorsRaw(join(root, 'one.safetensors'), [['context', 'F32', [L, C], f32(values(L * C, 0))]]);
  writeSafetensorsRaw(join(root, 'keys.safetensors'), [['a', 'F32', [L, C], f32(values(L * C, 1))], ['b', 'F32', [L, C], f32(values(L * C, 2))]]);
  writeSafetensorsRaw(join(root, 'all.safetensors'), [['emb', 'F32', [2, L, C], f32(values(2 * L * C, 3))]]);
  const lines = [
    { image: 'img/0.png', embedding: 'one.safetensors', caption: 'zero', label: 1 },
    { image: 'img/1.png', embedding: 'keys.safetensors', key: 'b', label: 0 },
    { image: join(root, 'img/2.png'), embedding: 'all.safetensors', index: 1, label: 2 },
    { image: 'img/3.png', embedding: 'all.safetensors', key: 'emb', index: 0, label: 1 },
  ];
  const write = (name: string, rows: unknown[]) => {
    const path = join(root, name);
    writeFileSync(path, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
    return path;
  };

  test('reads images (centre crop + resize) and contexts by name, key and row', () => {
    const d = new CaptionDataset(write('index.jsonl', [lines[0], '', ...lines.slice(1)]), 4);
    expect([d.size, d.contextLen, d.contextDim, d.numClasses, d.channels, d.imageSize]).toEqual([4, L, C, 3, 3, 4]);
    expect(d.caption(0)).toBe('zero');
    expect(d.caption(1)).toBeNull();
    const expected = [values(L * C, 0), values(L * C, 2), values(2 * L * C, 3).subarray(L * C), values(2 * L * C, 3).subarray(0, L * C)];
    for (let i = 0; i < 4; i++) {
      const ex = d.get(i);
      expect(ex.label).toBe(lines[i].label);
      expect(Array.from(ex.context!)).toEqual(Array.from(expected[i]));
      expect(Array.from(ex.pixels)).toEqual(Array.from(centreCropResize(decodePNG(png(i)), 4)));
    }
  });

  test('errors name the index file and line', () => {
    const err = (rows: unknown[]) => () => new CaptionDataset(write('bad.jsonl', rows), 4);
    expect(err([lines[0], '{"image": "img/1.png",'])).toThrow(/bad\.jsonl:2: not valid JSON/);
    expect(err([lines[0], { ...lines[1], image: 'img/nope.png' }])).toThrow(/bad\.jsonl:2: image 'img\/nope\.png' not found/);
    expect(err([{ ...lines[0], embedding: 'nope.safetensors' }])).toThrow(/bad\.jsonl:1: embedding 'nope\.safetensors' not found/);
    expect(err([{ image: 'img/0.png' }])).toThrow(/bad\.jsonl:1: 'embedding' expected a path string/);
    expect(err([lines[0], { ...lines[1], key: undefined }])).toThrow(/bad\.jsonl:2: embedding 'keys\.safetensors' has tensors a, b: name one with 'key'/);
    expect(err([{ ...lines[1], key: 'c' }])).toThrow(/bad\.jsonl:1: embedding 'keys\.safetensors' has no tensor 'c'/);
    expect(err([{ ...lines[2], index: undefined }])).toThrow(/bad\.jsonl:1: .*expected shape \(L, C\) \(an \(N, L, C\) tensor needs 'index'\), received \[2, 3, 5\]/);
    expect(err([lines[0], lines[1], { ...lines[2], index: 2 }])).toThrow(/bad\.jsonl:3: 'index' 2 is out of range .*\[2, 3, 5\]/);
    expect(err([lines[0], { ...lines[1], label: undefined }])).toThrow(/bad\.jsonl:2: no 'label', but earlier lines have one/);
    expect(err([])).toThrow(/bad\.jsonl: the index has no examples/);
    writeSafetensorsRaw(join(root, 'wide.safetensors'), [['context', 'F32', [L, C + 1], f32(values(L * (C + 1), 4))]]);
    expect(err([lines[0], lines[1], { ...lines[0], embedding: 'wide.safetensors' }])).toThrow(/bad\.jsonl:3: .*is \(L, C\) = \(3, 6\) but line 1 has \(3, 5\)/);
    writeFileSync(join(root, 'trunc.safetensors'), readFileSync(join(root, 'one.safetensors')).subarray(0, 40));
    expect(err([{ ...lines[0], embedding: 'trunc.safetensors' }])).toThrow(/bad\.jsonl:1: embedding 'trunc\.safetensors': diffvit\.safetensors: .*trunc\.safetensors: header length/);
    expect(() => new CaptionDataset(join(root, 'missing.jsonl'), 4)).toThrow(/missing\.jsonl: cannot read the index \(ENOENT\)/);
    // a file that breaks after the index was checked: the error names the line too
    const d = new CaptionDataset(write('late.jsonl', [lines[0], lines[1]]), 4);
    writeFileSync(join(root, 'img', 'late.png'), 'not a png');
    const late = new CaptionDataset(write('late.jsonl', [lines[0], { ...lines[1], image: 'img/late.png' }]), 4);
    expect(() => late.get(1)).toThrow(/late\.jsonl:2: .*late\.png: not a PNG or JPEG file/);
    expect(d.size).toBe(2);
  });
});

describe('HashTextEmbedder', () => {
  test('deterministic, case- and punctuation-insensitive, zero-padded; the empty caption is the null context', () => {
    const a = new HashTextEmbedder(6, 16), b = new HashTextEmbedder(6, 16);
    const caption = 'a red circle on a blue background';
    expect(Array.from(a.embed(caption))).toEqual(Array.from(b.embed(caption)));
    expect(Array.from(a.embed('A RED circle, on a blue background!'))).toEqual(Array.from(a.embed(caption)));
    expect(tokenizeCaption("It's a Dog-house")).toEqual(["it's", 'a', 'dog', 'house']);
    const e = a.embed('red circle');
    expect(e.subarray(0, 32).every((v) => v !== 0)).toBe(true);
    expect(e.subarray(32).every((v) => v === 0)).toBe(true); // padding
    expect(a.embed('').every((v) => v === 0)).toBe(true);
    // truncation keeps the first L words
    expect(Array.from(a.embed(caption + ' with extra words'))).toEqual(Array.from(a.embed('a red circle on a blue')));
    // the same word at another position differs by the position signal only
    const w0 = a.embed('red').subarray(0, 16), w1 = a.embed('a red').subarray(16, 32);
    expect(Array.from(w1).some((v, i) => Math.abs(v - w0[i]) > 0.1)).toBe(true);
    // word vectors are roughly standard normal
    const v = new HashTextEmbedder(1, 4096).wordVector('circle');
    const mean = v.reduce((s, x) => s + x, 0) / v.length, sd = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.06);
    expect(Math.abs(sd - 1)).toBeLessThan(0.05);
  });

  test('distinguishes captions (swapped colours, other words, other seeds)', () => {
    const e = new HashTextEmbedder(8, 32);
    const dist = (x: string, y: string, f = e) => Math.hypot(...f.embed(x).map((v, i) => v - e.embed(y)[i]));
    const caption = 'a red circle on a blue background';
    expect(dist(caption, 'a blue circle on a red background')).toBeGreaterThan(5);
    expect(dist(caption, 'a red square on a blue background')).toBeGreaterThan(5);
    expect(dist(caption, caption, new HashTextEmbedder(8, 32, 1))).toBeGreaterThan(5);
    const batch = e.embedBatch([caption, 'a green cross']);
    expect(Array.from(batch.subarray(8 * 32))).toEqual(Array.from(e.embed('a green cross')));
    expect(() => new HashTextEmbedder(0, 8)).toThrow(/contextLen' expected an integer >= 1, received 0/);
  });
});

describe('synthetic caption data', () => {
  test('writeShapeCaptions writes a dataset CaptionDataset reads back, captions matching pictures and embeddings', () => {
    const out = join(dir, 'shapes');
    const index = writeShapeCaptions(out, { count: 12, size: 16, contextLen: 8, contextDim: 12, seed: 5 });
    const d = new CaptionDataset(index, 16);
    expect([d.size, d.contextLen, d.contextDim, d.numClasses]).toEqual([12, 8, 12, 4]);
    const embedder = new HashTextEmbedder(8, 12);
    for (let i = 0; i < 12; i++) {
      const ex = d.get(i), ref = shapeCaptionExample(5, i, 16);
      expect(d.caption(i)).toBe(ref.caption);
      expect(ref.caption).toBe(`a ${CAPTION_COLOURS[ref.fg].name} ${SHAPE_CLASSES[ref.label]} on a ${CAPTION_COLOURS[ref.bg].name} background`);
      expect(ref.fg).not.toBe(ref.bg);
      expect(ex.label).toBe(ref.label);
      expect(Array.from(ex.context!)).toEqual(Array.from(embedder.embed(ref.caption)));
      // 8-bit PNG of the drawing, read back at the same size: within quantisation
      for (let p = 0; p < ex.pixels.length; p++) expect(Math.abs(ex.pixels[p] - ref.pixels[p])).toBeLessThan(1 / 127.5 + 1e-6);
      // the corner pixel is background: its colour is the caption's background colour
      const corner = [0, 1, 2].map((c) => (ref.pixels[c * 256] + 1) / 2);
      corner.forEach((v, c) => expect(Math.abs(v - CAPTION_COLOURS[ref.bg].rgb[c])).toBeLessThan(0.07));
    }
    expect(readFileSync(join(out, 'sample-captions.txt'), 'utf8').trim().split('\n').length).toBe(CAPTION_COLOURS.length * SHAPE_CLASSES.length);
  });
});

const IMG = 16;
const CTX = { context_len: 4, context_dim: 6 };
const dataIndex = () => {
  const index = join(dir, 'train', 'index.jsonl');
  try {
    readFileSync(index);
  } catch {
    writeShapeCaptions(join(dir, 'train'), { count: 24, size: IMG, contextLen: CTX.context_len, contextDim: CTX.context_dim });
  }
  return index;
};

describe('context batches', () => {
  test('BatchSampler batches (B, L, C) contexts; dropped examples get the all-zero context and the null label', () => {
    const d = new CaptionDataset(dataIndex(), IMG);
    const s = new BatchSampler(d, { batchSize: 6, seed: 2, labelDropout: 0.5, hflip: true });
    const n = CTX.context_len * CTX.context_dim;
    const contexts = new Set(Array.from({ length: d.size }, (_, j) => Array.from(d.get(j).context!).join()));
    let dropped = 0, kept = 0;
    for (let k = 0; k < 8; k++) {
      const b = s.batch(k);
      expect(b.context!.length).toBe(6 * n);
      for (let i = 0; i < 6; i++) {
        const row = b.context!.subarray(i * n, (i + 1) * n);
        if (b.labels[i] === d.numClasses) {
          dropped++;
          expect(row.every((v) => v === 0)).toBe(true);
        } else {
          kept++;
          expect(contexts.has(Array.from(row).join()), `batch ${k} row ${i} is an example's context`).toBe(true);
        }
      }
      expect(Array.from(s.batch(k).context!)).toEqual(Array.from(b.context!));
    }
    expect(dropped).toBeGreaterThan(8);
    expect(kept).toBeGreaterThan(8);
  });

  test('the prefetch worker transfers the same contexts', async () => {
    const spec = { kind: 'captions' as const, index: dataIndex(), imageSize: IMG };
    const options = { batchSize: 5, seed: 4, labelDropout: 0.3 };
    const loader = new PrefetchLoader(spec, options, 2);
    // on a worker thread whenever the compiled worker exists (npm run build; CI builds it)
    expect(loader.threaded).toBe(existsSync(join(import.meta.dirname, '..', 'dist', 'lib', 'data', 'worker.js')));
    const direct = new BatchSampler(new CaptionDataset(spec.index, IMG), options);
    for (const k of [0, 1, 5, 2]) {
      const a = await loader.get(k), b = direct.batch(k);
      expect(Buffer.from(a.context!.buffer).equals(Buffer.from(b.context!.buffer))).toBe(true);
      expect(Buffer.from(a.images.buffer).equals(Buffer.from(b.images.buffer))).toBe(true);
      expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
    }
    await loader.close();
    await expect(loader.get(0)).rejects.toThrow(/get\(0\) after close\(\)/);
  });

  test('close() stops the worker between batches, also while prefetches are queued', async () => {
    const spec = { kind: 'captions' as const, index: dataIndex(), imageSize: IMG };
    for (let i = 0; i < 2; i++) {
      const loader = new PrefetchLoader(spec, { batchSize: 8, seed: i }, 6);
      await loader.get(0);
      const t0 = Date.now();
      await loader.close();
      expect(Date.now() - t0).toBeLessThan(5000);
    }
  });
});

const MODEL: ModelConfig = { arch: 'iuvit', img_size: IMG, in_chans: 3, patch: 4, dim: 24, depth: 3, heads: 2, ...CTX };

describe('training and sampling with a context', () => {
  const config = (): TrainConfig => ({
    ...DEFAULT_TRAIN_CONFIG, model: MODEL, data: { kind: 'captions', index: dataIndex(), imageSize: IMG },
    batchSize: 4, steps: 6, lr: 2e-3, warmupSteps: 2, emaHalfLifeImages: 50, labelDropout: 0.5,
  });

  test('resume with context dropout: 3 steps + checkpoint + 3 steps equals 6 steps, bit for bit', () => {
    const whole = new Trainer(config());
    const lossesWhole = Array.from({ length: 6 }, () => whole.trainStep().loss);
    expect(lossesWhole.every(Number.isFinite)).toBe(true);
    // the context reaches the model: its embedding receives gradient updates
    expect(whole.model.context_embed!.weight.data().some((v, i) => v !== new DiffusionViT(MODEL).context_embed!.weight.data()[i])).toBe(true);
    const first = new Trainer(config());
    const losses = Array.from({ length: 3 }, () => first.trainStep().loss);
    const path = join(dir, 'ctx.safetensors');
    first.save(path);
    first.dispose();
    const second = Trainer.resume(path);
    for (let i = 0; i < 3; i++) losses.push(second.trainStep().loss);
    expect(losses).toEqual(lossesWhole);
    const a = [...whole.optimizer.params, ...whole.ema.shadow], b = [...second.optimizer.params, ...second.ema.shadow];
    a.forEach((p, i) => expect(Buffer.from(b[i].data().buffer).equals(Buffer.from(p.data().buffer)), `tensor ${i}`).toBe(true));
    whole.dispose();
    second.dispose();
  });

  test('the model and the data must agree on the context shape', () => {
    expect(() => new Trainer({ ...config(), model: { ...MODEL, context_dim: 7 } })).toThrow(/model has context_len 4, context_dim 7 but the data has contexts of 4 tokens x 6 features/);
    expect(() => new Trainer({ ...config(), data: { kind: 'shapes', size: 8 }, model: { ...MODEL, img_size: 32 } })).toThrow(/the data has no context \(use a captions dataset\)/);
  });

  const variants: [string, ModelConfig][] = [
    ['iuvit adaln', MODEL],
    ['iuvit token', { ...MODEL, time_cond: 'token' }],
    ['ascend', { ...MODEL, arch: 'ascend', depth: undefined, enc_depth: 3, dec_depth: 1, num_classes: 4 }],
  ];
  test.each(variants)('generate() with a context and guidance: %s', (_, mc) => {
    const model = new DiffusionViT(mc, { seed: 3 });
    // make the context matter at initialisation (adaLN-Zero starts every block as the identity)
    const g = new Generator(9);
    for (const p of model.parameters()) if (p.data().every((x) => x === 0)) normal(p, 0, 0.05, g);
    const embedder = new HashTextEmbedder(CTX.context_len, CTX.context_dim);
    const context = tensor(embedder.embedBatch(['a red circle', 'a blue square', 'a green cross']), [3, CTX.context_len, CTX.context_dim]);
    const labels = mc.num_classes ? Int32Array.from([0, 1, 2]) : null;
    const guided = generate(model, { context, labels, guidance: 3, steps: 3, seed: 1 });
    expect(guided.shape).toEqual([3, 3, IMG, IMG]);
    expect(guided.images.every(Number.isFinite)).toBe(true);
    const plain = generate(model, { context, labels, guidance: 1, steps: 3, seed: 1 });
    const uncond = generate(model, { count: 3, steps: 3, seed: 1, labels: labels ? Int32Array.from([4, 4, 4]) : null });
    const guided2 = generate(model, { context, labels, guidance: 2, steps: 3, seed: 1 });
    // guidance w extrapolates from the unconditional (empty-context) result: w=1 != w=2 != w=3
    const diff = (x: Float64Array, y: Float64Array) => Math.max(...x.map((v, i) => Math.abs(v - y[i])));
    expect(diff(plain.images, guided2.images)).toBeGreaterThan(1e-4);
    expect(diff(guided.images, guided2.images)).toBeGreaterThan(1e-4);
    expect(uncond.images.every(Number.isFinite)).toBe(true);
    expect(() => generate(model, { context: tensor(new Float32Array(3 * 4 * 5), [3, 4, 5]), steps: 1 })).toThrow(/argument 'context' expected shape \[B, 4, 6\], received \[3, 4, 5\]/);
    context.dispose();
    model.dispose();
  });
});

describe('command line', () => {
  test('sample --captions / --context build the (B·n, L, C) context; train --data captions:INDEX', () => {
    const c = fullConfig(MODEL);
    const captionsFile = join(dir, 'prompts.txt');
    writeFileSync(captionsFile, 'a red circle\n\n  a blue square  \n');
    const a = loadSampleContext(c, captionsFile, undefined, 2);
    expect(a.captions).toEqual(['a red circle', 'a blue square']);
    expect(a.context.shape).toEqual([4, 4, 6]);
    const e = new HashTextEmbedder(4, 6);
    expect(Array.from(a.context.data())).toEqual([...e.embed('a red circle'), ...e.embed('a red circle'), ...e.embed('a blue square'), ...e.embed('a blue square')]);
    a.context.dispose();
    const file = join(dir, 'prompts.safetensors');
    writeSafetensorsRaw(file, [['context', 'F32', [3, 4, 6], f32(values(72, 7))]]);
    const b = loadSampleContext(c, undefined, file, 1);
    expect([b.rows, b.captions]).toEqual([3, null]);
    expect(Array.from(b.context.data())).toEqual(Array.from(values(72, 7)));
    b.context.dispose();
    writeSafetensorsRaw(file, [['context', 'F32', [3, 4, 5], f32(values(60, 7))]]);
    expect(() => loadSampleContext(c, undefined, file, 1)).toThrow(/--context .*prompts\.safetensors: tensor 'context' expected shape \(B, 4, 6\) or \(4, 6\) for this model, received \[3, 4, 5\]/);
    expect(() => loadSampleContext(fullConfig({ ...MODEL, context_dim: 0, context_len: 0 }), captionsFile, undefined, 1)).toThrow(/the model has no context/);
    expect(parseDataSpec('captions:data/x/index.jsonl', 64)).toEqual({ kind: 'captions', index: 'data/x/index.jsonl', imageSize: 64 });
  });
});
