/**
 * Checks shared by the model and trainer tests (IU-ViT, ASCEND with rope, U-Net): a whole-network
 * gradient check; a run of 6 steps must equal 3 steps, a checkpoint, Trainer.resume and 3 more —
 * the losses and every tensor of the run's state bit for bit; and a held-out loss to see a short
 * run learn.
 */
import { expect } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import { ShapesDataset } from '../lib/data/dataset.js';
import { BatchSampler } from '../lib/data/loader.js';
import { edmLoss } from '../lib/diffusion/edm.js';
import * as dv from '../lib/index.js';
import type { Module } from '../lib/nn/module.js';
import { type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { expectClose, randomValues, toF32 } from './helpers.js';

/** A network F(x, c_noise, labels) of 3-channel 8×8 images with 4 classes. */
interface Network extends Module {
  forward(x: dv.Tensor, cNoise: dv.Tensor, labels: dv.Tensor | null): dv.Tensor;
}

/**
 * Random values in every parameter of `m` (zero-initialised layers would hide their inputs), of size
 * `scale`, parameter i from seed `seed + i`: the same values for the same model and seed.
 */
export function randomizeParameters(m: Module, seed: number, scale: number): void {
  for (const p of m.parameters()) dv.assign_(p, Float32Array.from(toF32(randomValues(p.size, seed++, scale))));
}

/**
 * Every parameter of `m` and its input against central differences: random values in every
 * parameter first (zero-initialised layers would hide their inputs' gradients), then for each
 * tensor the tape's gradient of loss = sum(w · F(x)) along one random direction against the
 * difference quotient. float32 forward passes: the quotient carries ~1e-6 relative rounding of the
 * loss over h and O(h²) truncation; the bound is relative to sum |g·v|, not to the (possibly
 * cancelling) sum; the worst seen is 2.1e-3 (a U-Net GroupNorm weight), and a smaller h lets
 * rounding dominate (1e-2 at h = 1e-3). `scale`: the random parameters' size; products of
 * activations (SwiGLU, normalised q·k) need smaller ones to keep the loss near-linear over h.
 * Returns how many tensors were checked.
 */
export function expectNetworkGradients(m: Network, scale = 0.4): number {
  randomizeParameters(m, 10, scale);
  const B = 2;
  const x = dv.tensor(Float32Array.from(toF32(randomValues(B * 3 * 64, 1, 1))), [B, 3, 8, 8]);
  x.requiresGrad = true;
  const c = dv.tensor([0.3, -0.7]), labels = dv.tensor([2, 3], [2], 'int32');
  const w = dv.tensor(Float32Array.from(toF32(randomValues(B * 3 * 64, 2, 1))), [B, 3, 8, 8]);
  const loss = () => dv.noGrad(() => dv.scope(() => dv.sum(dv.mul(m.forward(x, c, labels), w)).item()));
  dv.scope(() => dv.sum(dv.mul(m.forward(x, c, labels), w)).backward());
  const tensors: [string, dv.Tensor][] = [['x', x], ...m.namedParameters()];
  for (const [k, [name, t]] of tensors.entries()) {
    const g = t.grad!.data();
    const v = Float32Array.from(toF32(randomValues(t.size, 1000 + k, 1)));
    let analytic = 0, norm = 0;
    for (let i = 0; i < v.length; i++) {
      analytic += g[i] * v[i];
      norm += Math.abs(g[i] * v[i]);
    }
    const base = t.data(), h = 1e-2;
    const at = (s: number) => {
      dv.assign_(t, base.map((b, i) => b + s * v[i]));
      return loss();
    };
    const numeric = (at(h) - at(-h)) / (2 * h);
    dv.assign_(t, base);
    expect(Math.abs(numeric - analytic), `${name}: numeric ${numeric}, analytic ${analytic}`).toBeLessThanOrEqual(5e-3 * norm);
  }
  for (const t of [x, c, labels, w]) t.dispose();
  return tensors.length;
}

/**
 * The trainer's EDM loss on one fixed batch of 64 held-out 32×32 shapes with fixed sigmas and noise
 * (a training step's own loss is too noisy to compare runs by).
 */
export function heldOutLoss(t: Trainer): number {
  const held = new BatchSampler(new ShapesDataset(99, 64), { batchSize: 64, seed: 99 }).batch(0);
  return dv.noGrad(() => dv.scope(() => edmLoss(t.denoiser, dv.tensor(held.images, [64, 3, 32, 32]),
    dv.tensor(held.labels, [64], 'int32'), { generator: new dv.Generator(123) }).item()));
}

/**
 * F and every parameter's gradient of a network made by `make` (the same weights each call) on
 * `device` against the host's, for sum(w · F) on fixed inputs. Sums run in another order on another
 * device, so each tensor is compared relative to its largest value (single elements near zero can
 * cancel). Returns a function that runs the device pass again (e.g. to count what it leaves behind).
 */
export function expectNetworkMatchesHost(make: () => Network, device: string): () => void {
  const run = (where: string) => dv.scope(() => {
    const m = make().to(where);
    const x = dv.tensor(Float32Array.from(randomValues(2 * 3 * 64, 3, 1)), [2, 3, 8, 8], { device: where });
    const c = dv.tensor([0.2, -1.1], [2], { device: where }), labels = dv.tensor([1, 3], [2], { dtype: 'int32', device: where });
    const w = dv.tensor(Float32Array.from(randomValues(2 * 3 * 64, 4, 1)), [2, 3, 8, 8], { device: where });
    const F = m.forward(x, c, labels);
    dv.sum(dv.mul(F, w)).backward();
    const out = [F.data(), ...m.parameters().map((p) => p.grad!.data())];
    m.dispose();
    return out;
  });
  const ref = run('cpu'), got = run(device);
  ref.forEach((r, i) => {
    const scale = new Float64Array(r.length).fill(r.reduce((mx, v) => Math.max(mx, Math.abs(v)), 0));
    expectClose(got[i], Float64Array.from(r), { atol: 0, rtol: 1e-5, scale }, i === 0 ? 'F' : `gradient ${i}`);
  });
  return () => void run(device);
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

/** CUDA graphs alive in the addon (0 where it has no CUDA backend). */
export const liveCudaGraphs = (): number => (native as { cudaGraphCount?: () => number }).cudaGraphCount?.() ?? 0;

/**
 * `steps` steps of `config` on the host, on `device` and, where `device` is a CUDA one, in a CUDA
 * graph: the losses agree to 1e-5. AdamW turns rounding-level differences of a near-zero gradient
 * element (a zero-initialised adaLN weight's) into up to one step (lr) of its weight, so the weights
 * agree within 5 % of a step host against device and 0.1 % graph against eager. `afterStep` runs
 * after each step of each run; every run's graphs are gone once its trainer is disposed.
 */
export function expectDeviceStepsMatchHost(config: TrainConfig, device: string, backend: string, steps: number,
  afterStep: (config: TrainConfig, step: number, graphsBefore: number) => void = () => {}): void {
  const configs: TrainConfig[] = [{ ...config }, { ...config, device }];
  if (backend === 'cuda') configs.push({ ...config, device, cudaGraph: true });
  const runs = configs.map((c) => {
    const before = liveCudaGraphs(), t = new Trainer(c);
    const losses = Array.from({ length: steps }, (_, i) => {
      const loss = t.trainStep().loss;
      afterStep(c, i + 1, before);
      return loss;
    });
    const weights = t.model.parameters().map((p) => p.data());
    t.dispose();
    expect(liveCudaGraphs()).toBe(before);
    return { losses, weights };
  });
  const compare = (a: (typeof runs)[0], b: (typeof runs)[0], what: string, lrShare: number) => {
    expectClose(a.losses, b.losses, { rtol: 1e-5, atol: 0 }, `${what}: losses`);
    a.weights.forEach((w, i) => expectClose(w, Float64Array.from(b.weights[i]), { rtol: 1e-4, atol: lrShare * config.lr }, `${what}: parameter ${i}`));
  };
  compare(runs[1], runs[0], 'device vs host', 5e-2);
  if (runs[2]) compare(runs[2], runs[1], 'cuda graph vs eager', 1e-3);
}

