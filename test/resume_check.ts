/**
 * The resume check of the trainer tests: a run of 6 steps must equal 3 steps, a checkpoint,
 * Trainer.resume and 3 more — the losses and every tensor of the run's state bit for bit.
 */
import { expect } from 'vitest';

import { type TrainConfig, Trainer } from '../lib/train/trainer.js';

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
