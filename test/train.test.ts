/** The training loop: the loss goes down, and a run split in two equals one uninterrupted run bit for bit. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { backendOf } from '../lib/backend/backend.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import * as dv from '../lib/index.js';
import { expectResumeBitExact, heldOutLoss } from './trainer_checks.js';
import { generate } from '../lib/diffusion/sample.js';
import { learningRate } from '../lib/train/schedule.js';
import { trainCommand } from '../lib/cli/train.js';
import { loadCheckpoint } from '../lib/models/checkpoint.js';

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

describe('learning-rate schedules', () => {
  test('constant: linear warm-up, then the base rate', () => {
    expect([0, 1, 3, 4, 99].map((s) => learningRate(s, 1, 4))).toEqual([0.25, 0.5, 1, 1, 1]);
    expect(learningRate(0, 0.5, 0)).toBe(0.5);
  });
  test('cosine: the same warm-up, then half a cosine from the base rate to 0 at the last step', () => {
    const lr = (s: number) => learningRate(s, 2, 4, 'cosine', 104);
    expect([0, 1, 3].map(lr)).toEqual([0.5, 1, 2]);
    expect(lr(4)).toBe(2);
    expect(lr(54)).toBeCloseTo(1, 12); // halfway through the decay
    expect(lr(104)).toBeCloseTo(0, 12);
    for (let s = 5; s <= 104; s++) expect(lr(s)).toBeLessThan(lr(s - 1));
  });
  test('cooldown: the same warm-up, the base rate, then linear to 0 over the last quarter', () => {
    const lr = (s: number) => learningRate(s, 2, 4, 'cooldown', 104);
    expect([0, 1, 3, 4, 77].map(lr)).toEqual([0.5, 1, 2, 2, 2]);
    expect(lr(78)).toBeCloseTo(2, 12); // the decay starts at round(0.75 * 104) = 78
    expect(lr(91)).toBeCloseTo(1, 12);
    expect(lr(103)).toBeCloseTo(2 / 26, 12);
    expect(lr(104)).toBe(0);
    for (let s = 79; s <= 104; s++) expect(lr(s)).toBeLessThan(lr(s - 1));
    // A warm-up longer than three quarters of the run: the decay starts after it.
    expect(learningRate(9, 1, 10, 'cooldown', 12)).toBeCloseTo(1, 12);
    expect(learningRate(10, 1, 10, 'cooldown', 12)).toBeCloseTo(1, 12);
    expect(learningRate(11, 1, 10, 'cooldown', 12)).toBeCloseTo(0.5, 12);
  });
  test('a run resized after its cooldown began keeps the decay where it began, down to the new end; before it, the decay moves', () => {
    const t = new Trainer({ ...TINY, lrSchedule: 'cooldown', steps: 8 });
    for (let i = 0; i < 2; i++) t.trainStep();
    t.setSteps(12); // before the decay (step 6 of 8): it moves to step 9 of 12
    expect(t.config.cooldownFraction).toBeUndefined();
    const rates = Array.from({ length: 8 }, () => t.trainStep().lr); // steps 2..9: the decay began at 9
    expect(rates).toEqual(Array.from({ length: 8 }, (_, i) => learningRate(i + 2, TINY.lr, TINY.warmupSteps, 'cooldown', 12)));
    t.setSteps(17); // decays from step 9 over 8 steps, not from round(0.75 * 17) = 13
    expect(t.config.cooldownFraction).toBe(8 / 17);
    const later = Array.from({ length: 7 }, () => t.trainStep().lr); // steps 10..16
    expect(later).toEqual([7, 6, 5, 4, 3, 2, 1].map((left) => expect.closeTo(TINY.lr * left / 8, 12)));
    // A trainer built from the stored config has the same rate at every step.
    const again = new Trainer({ ...TINY, lrSchedule: 'cooldown', steps: 17, cooldownFraction: t.config.cooldownFraction });
    expect(Array.from({ length: 17 }, (_, s) => learningRate(s, TINY.lr, TINY.warmupSteps, 'cooldown', 17, again.config.cooldownFraction)).slice(9))
      .toEqual([8, 7, 6, 5, 4, 3, 2, 1].map((left) => expect.closeTo(TINY.lr * left / 8, 12)));
    t.dispose();
    again.dispose();
    for (const f of [0, 1.5, Number.NaN]) {
      expect(() => new Trainer({ ...TINY, cooldownFraction: f })).toThrow(`diffvit.train: cooldownFraction expected a fraction in (0, 1] of the run's steps, received ${f}`);
    }
  });
  test('the trainer applies the schedule and rejects an unknown one', () => {
    const t = new Trainer({ ...TINY, lrSchedule: 'cosine', steps: 6 });
    const rates = Array.from({ length: 6 }, () => t.trainStep().lr);
    expect(rates).toEqual(Array.from({ length: 6 }, (_, s) => learningRate(s, TINY.lr, TINY.warmupSteps, 'cosine', 6)));
    expect(rates[5]).toBeLessThan(rates[2]);
    t.dispose();
    expect(() => new Trainer({ ...TINY, lrSchedule: 'linear' as never })).toThrow(/diffvit.train: lrSchedule expected 'constant' or 'cosine' or 'cooldown', received "linear"/);
  });
});

describe('EMA', () => {
  test('blends with beta = 0.5^(batch / half-life), the half-life capped at rampup x images seen', () => {
    const p = dv.tensor([1, -2, 4], [3]);
    const ramped = new dv.EMA([p], 100, 0.25), plain = new dv.EMA([p], 100, null);
    const next = [3, 2, -4];
    p.buffer.write(p.offset, Float32Array.from(next));
    ramped.update(10, 20); // half-life min(100, 5): beta 0.25
    plain.update(10, 20); // half-life 100: beta 0.5^0.1
    const b = 0.5 ** 0.1;
    [1, -2, 4].forEach((old, i) => {
      expect(ramped.shadow[0].data()[i]).toBeCloseTo(0.25 * old + 0.75 * next[i], 6);
      expect(plain.shadow[0].data()[i]).toBeCloseTo(b * old + (1 - b) * next[i], 6);
    });
    ramped.dispose(); plain.dispose(); p.dispose();
  });
  test('the trainer takes emaRampup from its config (checkpoints without it: EDM\'s 0.05)', () => {
    const t = new Trainer({ ...TINY, emaRampup: 0.5 });
    expect(t.ema.rampup).toBe(0.5);
    t.dispose();
    const { emaRampup: _, ...old } = TINY;
    const o = new Trainer(old as TrainConfig);
    expect(o.ema.rampup).toBe(0.05);
    o.dispose();
  });
});

describe('trainer', () => {
  test('resume: 3 steps + checkpoint + 3 steps equals 6 uninterrupted steps, bit for bit', () => {
    const { whole, resumed } = expectResumeBitExact(TINY, join(dir, 'half.safetensors'));
    whole.dispose();
    resumed.dispose();
  });

  test('the loss falls over a short run and sampling from the EMA weights works', () => {
    const t = new Trainer({ ...TINY, steps: 80, data: { kind: 'shapes', seed: 0, size: 4096 } });
    const before = heldOutLoss(t);
    for (let i = 0; i < 80; i++) t.trainStep();
    const after = heldOutLoss(t);
    expect(after).toBeLessThan(0.7 * before);
    const { images, shape } = t.withEmaWeights((m) => generate(m, { labels: Int32Array.from([0, 1, 2, 3]), steps: 4, guidance: 2 }));
    expect(shape).toEqual([4, 3, 32, 32]);
    expect(images.every(Number.isFinite)).toBe(true);
    t.dispose();
  });

  test('a step reads device memory back to the host once: the loss and the gradient norm together', () => {
    const t = new Trainer(TINY);
    const batches = [0, 1, 2].map((i) => t.sampler.batch(i));
    const backend = backendOf('cpu'), read = backend.read;
    const sizes: number[] = [];
    backend.read = (buffer, offset, count) => {
      sizes.push(count);
      return read.call(backend, buffer, offset, count);
    };
    try {
      for (const b of batches) t.trainStep(b);
    } finally {
      backend.read = read;
    }
    expect(sizes).toEqual([2, 2, 2]);
    t.dispose();
  });

  test('a config without matmulPrecision (checkpoints from before it) gets the default precision, recorded in the config', () => {
    const { matmulPrecision: _, ...old } = TINY;
    const t = new Trainer(old as TrainConfig);
    expect(t.config.matmulPrecision).toBe(dv.getMatmulPrecision());
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

describe('diffvit train --config', () => {
  // A model in the config file keeps the keys it sets; the conditioning it leaves out follows the data.
  const numClasses = async (name: string, model: object, ...flags: string[]) => {
    const config = join(dir, `${name}.json`), out = join(dir, name);
    writeFileSync(config, JSON.stringify({ model }));
    expect(await trainCommand(['--config', config, '--steps', '1', '--batch', '2', '--out', out, '--sample-every', '0', '--precision', 'float32', ...flags])).toBe(0);
    const { model: trained, extra } = loadCheckpoint(join(out, 'checkpoint.safetensors'));
    const classes = trained.config.num_classes;
    trained.dispose();
    for (const t of extra.values()) t.dispose();
    return classes;
  };
  const tiny = { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 1, heads: 1 };

  test('a model without num_classes is conditioned on the data\'s classes, unless --unconditional', async () => {
    expect(await numClasses('inherit', tiny)).toBe(4);
    expect(await numClasses('uncond-flag', tiny, '--unconditional')).toBe(0);
    expect(await numClasses('explicit', { ...tiny, num_classes: 0 })).toBe(0);
  });
});
