/**
 * Checks shared by the trainer tests (IU-ViT and U-Net): a run of 6 steps must equal 3 steps, a
 * checkpoint, Trainer.resume and 3 more — the losses and every tensor of the run's state bit for
 * bit; and a held-out loss to see a short run learn.
 */
import { expect } from 'vitest';

import { ShapesDataset } from '../lib/data/dataset.js';
import { BatchSampler } from '../lib/data/loader.js';
import { edmLoss } from '../lib/diffusion/edm.js';
import * as dv from '../lib/index.js';
import { type TrainConfig, Trainer } from '../lib/train/trainer.js';

/**
 * The trainer's EDM loss on one fixed batch of 64 held-out 32×32 shapes with fixed sigmas and noise
 * (a training step's own loss is too noisy to compare runs by).
 */
export function heldOutLoss(t: Trainer): number {
  const held = new BatchSampler(new ShapesDataset(99, 64), { batchSize: 64, seed: 99 }).batch(0);
  return dv.noGrad(() => dv.scope(() => edmLoss(t.denoiser, dv.tensor(held.images, [64, 3, 32, 32]),
    dv.tensor(held.labels, [64], 'int32'), { generator: new dv.Generator(123) }).item()));
}

/** Every tensor of a run's state (raw weights, AdamW moments, EMA), read to the host. */
export function trainerState(t: Trainer): Float32Array[] {
  return [...t.optimizer.params, ...t.optimizer.expAvg, ...t.optimizer.expAvgSq, ...t.ema.shadow].map((p) => p.data());
}

/**
 * Runs the check for `config` with the checkpoint at `path`; returns the uninterrupted and the
 * resumed trainers (the caller disposes them) and the 6 losses.
 */
export function expectResumeBitExact(config: TrainConfig, path: string): { whole: Trainer; resumed: Trainer; losses: number[] } {
  const whole = new Trainer(config);
  const losses = Array.from({ length: 6 }, () => whole.trainStep().loss);
  const first = new Trainer(config);
  const split = Array.from({ length: 3 }, () => first.trainStep().loss);
  first.save(path);
  first.dispose();
  const resumed = Trainer.resume(path);
  expect(resumed.step).toBe(3);
  for (let i = 0; i < 3; i++) split.push(resumed.trainStep().loss);
  expect(split).toEqual(losses);
  const a = trainerState(whole), b = trainerState(resumed);
  expect(b.length).toBe(a.length);
  a.forEach((v, i) => expect(Buffer.from(b[i].buffer).equals(Buffer.from(v.buffer)), `tensor ${i}`).toBe(true));
  return { whole, resumed, losses };
}
