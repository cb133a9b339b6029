/** The training loop: the loss goes down, and a run split in two equals one uninterrupted run bit for bit. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import * as dv from '../lib/index.js';
import { ShapesDataset } from '../lib/data/dataset.js';
import { BatchSampler } from '../lib/data/loader.js';
import { edmLoss } from '../lib/diffusion/edm.js';
import { generate } from '../lib/diffusion/sample.js';

const TINY: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 3, heads: 2, num_classes: 4 },
  data: { kind: 'shapes', seed: 0, size: 64 },
  batchSize: 8,
  steps: 6,
  lr: 2e-3,
  warmupSteps: 2,
  emaHalfLifeImages: 50,
};

const dir = mkdtempSync(join(tmpdir(), 'diffvit-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function snapshot(t: Trainer): Float32Array[] {
  return [...t.optimizer.params, ...t.optimizer.expAvg, ...t.optimizer.expAvgSq, ...t.ema.shadow].map((p) => p.data());
}

describe('trainer', () => {
  test('resume: 3 steps + checkpoint + 3 steps equals 6 uninterrupted steps, bit for bit', () => {
    const whole = new Trainer(TINY);
    const lossesWhole = Array.from({ length: 6 }, () => whole.trainStep().loss);
    const first = new Trainer(TINY);
    const lossesSplit = Array.from({ length: 3 }, () => first.trainStep().loss);
    const path = join(dir, 'half.safetensors');
    first.save(path);
    first.dispose();
    const second = Trainer.resume(path);
    expect(second.step).toBe(3);
    for (let i = 0; i < 3; i++) lossesSplit.push(second.trainStep().loss);
    expect(lossesSplit).toEqual(lossesWhole);
    const a = snapshot(whole), b = snapshot(second);
    expect(a.length).toBe(b.length);
    a.forEach((v, i) => expect(Buffer.from(b[i].buffer).equals(Buffer.from(v.buffer)), `tensor ${i}`).toBe(true));
    whole.dispose();
    second.dispose();
  });

  test('the loss falls over a short run and sampling from the EMA weights works', () => {
    const t = new Trainer({ ...TINY, steps: 80, data: { kind: 'shapes', seed: 0, size: 4096 } });
    // The loss on one fixed batch with fixed sigmas and noise (the per-step loss is too noisy to compare).
    const held = new BatchSampler(new ShapesDataset(99, 64), { batchSize: 64, seed: 99 }).batch(0);
    const heldLoss = () => dv.noGrad(() => dv.scope(() => edmLoss(t.denoiser, dv.tensor(held.images, [64, 3, 32, 32]),
      dv.tensor(held.labels, [64], 'int32'), { generator: new dv.Generator(123) }).item()));
    const before = heldLoss();
    for (let i = 0; i < 80; i++) t.trainStep();
    const after = heldLoss();
    expect(after).toBeLessThan(0.7 * before);
    const { images, shape } = t.withEmaWeights((m) => generate(m, { labels: Int32Array.from([0, 1, 2, 3]), steps: 4, guidance: 2 }));
    expect(shape).toEqual([4, 3, 32, 32]);
    expect(images.every(Number.isFinite)).toBe(true);
    t.dispose();
  });

  test('non-finite steps are skipped and counted, and the run stops past the limit', () => {
    const t = new Trainer({ ...TINY, lr: 1e30, gradClip: null, maxNonFinite: 2, warmupSteps: 0 });
    expect(() => {
      for (let i = 0; i < 10; i++) t.trainStep();
    }).toThrow(/diffvit\.train: 3 steps had a non-finite loss or gradient \(limit 2\)/);
    expect(t.nonFinite).toBe(3);
    t.dispose();
  });
});
