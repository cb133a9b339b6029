/**
 * Masked-token training (lib/models/token_mask.ts, TrainConfig.maskRatio): the masks, the gathers
 * that drop and restore tokens against host index arithmetic, the IU-ViT's masked forward (a mask
 * that keeps everything changes nothing; dropped pixels reach nothing), a gradient check of the
 * masked network, the masked EDM loss against a float64 reference, a masked run that resumes bit
 * for bit, and the errors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { EDMDenoiser, edmLoss, preconditioning } from '../lib/diffusion/edm.js';
import * as dv from '../lib/index.js';
import type { ModelConfig } from '../lib/models/configs.js';
import { IUViT } from '../lib/models/diffusion_vit.js';
import { disposeTokenMask, drawTokenMask, dropTokens, keptPatches, keptTokens, restoreTokens, type TokenMask } from '../lib/models/token_mask.js';
import { Module } from '../lib/nn/module.js';
import { edmTrainingNoise } from '../lib/ops/edm.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { cli } from './cli_harness.js';
import { describeEachBackend, expectClose, fromValues, randomValues, testDevice, toF32 } from './helpers.js';
import { expectDeviceStepsMatchHost, expectNetworkGradients, expectNetworkMatchesHost, expectResumeBitExact, liveCudaGraphs, randomizeParameters } from './trainer_checks.js';

/** 8×8 images in 2×2 patches (16 tokens), 4 classes. */
const TINY: ModelConfig = { arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 16, depth: 3, heads: 2, freq_dim: 8, num_classes: 4 };
/** The same with time and label as tokens before the patches (the mask must leave those). */
const TOKENS: ModelConfig = { ...TINY, time_cond: 'token' };

/** The rows of a mask, read back: keep (B, K) and fill (B, N). */
function rows(mask: TokenMask): { keep: Int32Array; fill: Int32Array } {
  return { keep: mask.keep.toArray() as Int32Array, fill: mask.fill.toArray() as Int32Array };
}

describe('token masks', () => {
  test('each image keeps K distinct patches in order; fill is keep inverted, the zero row elsewhere', () => {
    const B = 3, N = 10, mask = drawTokenMask(B, N, 0.45, 5, 7);
    const K = keptTokens(N, 0.45);
    expect(K).toBe(6);
    expect([mask.tokens, mask.kept, mask.keep.shape, mask.fill.shape]).toEqual([N, K, [B, K], [B, N]]);
    const { keep, fill } = rows(mask);
    for (let b = 0; b < B; b++) {
      const mine = Array.from(keep.subarray(b * K, (b + 1) * K));
      for (const [j, r] of mine.entries()) {
        expect(r - b * N).toBeGreaterThanOrEqual(0);
        expect(r - b * N).toBeLessThan(N);
        if (j) expect(r).toBeGreaterThan(mine[j - 1]);
        expect(fill[r]).toBe(b * K + j);
      }
      const dropped = Array.from({ length: N }, (_, n) => b * N + n).filter((r) => !mine.includes(r));
      expect(dropped.map((r) => fill[r])).toEqual(dropped.map(() => B * K));
    }
    disposeTokenMask(mask);
  });

  test('a pure function of (seed, step): another step or seed draws another mask; every patch is kept as often', () => {
    const draw = (seed: number, step: number) => {
      const m = drawTokenMask(4, 16, 0.5, seed, step);
      const r = Array.from(rows(m).keep);
      disposeTokenMask(m);
      return r;
    };
    expect(draw(3, 9)).toEqual(draw(3, 9));
    expect(draw(3, 10)).not.toEqual(draw(3, 9));
    expect(draw(4, 9)).not.toEqual(draw(3, 9));
    // 100 steps × 4 images keep 8 of 16: each patch 200 times in expectation (binomial sd 10).
    const counts = new Array(16).fill(0);
    for (let step = 0; step < 100; step++) for (const r of draw(1, step)) counts[r % 16]++;
    for (const c of counts) expect(Math.abs(c - 200)).toBeLessThan(50);
  });

  test('a ratio keeps at least one token and must be in [0, 1)', () => {
    expect(keptTokens(16, 0)).toBe(16);
    expect(keptTokens(16, 0.99)).toBe(1);
    for (const ratio of [1, -0.1, Number.NaN]) {
      expect(() => drawTokenMask(2, 16, ratio, 0, 0)).toThrow(`diffvit.drawTokenMask: argument 'ratio' expected a fraction in [0, 1), received ${ratio}`);
    }
  });
});

describeEachBackend('dropping and restoring tokens', ({ device }) => {
  test('dropTokens, restoreTokens and keptPatches against host index arithmetic, and their gradients', () => {
    const B = 2, N = 9, D = 7, mask = drawTokenMask(B, N, 0.4, 2, 3, device);
    const K = mask.kept, { keep } = rows(mask);
    const values = toF32(randomValues(B * N * D, 11, 1));
    const x = fromValues(values, [B, N, D], true);
    const kept = dropTokens(x, mask);
    expect(kept.shape).toEqual([B, K, D]);
    const want = Float64Array.from({ length: B * K * D }, (_, i) => values[keep[Math.floor(i / D)] * D + (i % D)]);
    expectClose(kept.data(), want, { atol: 0, rtol: 0 }, 'dropTokens');
    const back = restoreTokens(kept, mask);
    const restored = Float64Array.from({ length: B * N * D }, (_, i) => (keep.includes(Math.floor(i / D)) ? values[i] : 0));
    expectClose(back.data(), restored, { atol: 0, rtol: 0 }, 'restoreTokens');
    // d/dx sum(w · restore(drop(x))) = w at the kept tokens, 0 at the dropped.
    const w = toF32(randomValues(B * N * D, 12, 1));
    dv.sum(dv.mul(back, fromValues(w, [B, N, D]))).backward();
    expectClose(x.grad!.data(), Float64Array.from(w, (v, i) => (keep.includes(Math.floor(i / D)) ? v : 0)), { atol: 0, rtol: 0 }, 'gradient');
    // Images (B, C, 6, 6) in 2×2 patches: patch n = (row, col) holds pixel (c, 2row+i, 2col+j) at (i·2 + j)·C + c.
    const C = 3, img = toF32(randomValues(B * C * 36, 13, 1));
    const patches = keptPatches(fromValues(img, [B, C, 6, 6]), mask, 2);
    expect(patches.shape).toEqual([B, K, 4 * C]);
    const ref = new Float64Array(B * K * 4 * C);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < K; j++) {
        const n = keep[b * K + j] - b * N, row = Math.floor(n / 3), col = n % 3;
        for (let i = 0; i < 2; i++) for (let jj = 0; jj < 2; jj++) for (let c = 0; c < C; c++) {
          ref[(b * K + j) * 4 * C + (i * 2 + jj) * C + c] = img[((b * C + c) * 6 + 2 * row + i) * 6 + 2 * col + jj];
        }
      }
    }
    expectClose(patches.data(), ref, { atol: 0, rtol: 0 }, 'keptPatches');
    for (const t of [x, kept, back, patches]) t.dispose();
    disposeTokenMask(mask);
  });
});

/** An IU-ViT whose forward applies a fixed mask (drawn on the input's device): for the shared network checks. */
class MaskedNetwork extends Module {
  readonly inner: IUViT;
  constructor(config: ModelConfig, private readonly ratio: number) {
    super();
    this.inner = this.child('inner', new IUViT(config, { seed: 1 }));
  }

  /** (Called in a scope, which frees the mask: the gradients' gathers read it until then.) */
  forward(x: dv.Tensor, cNoise: dv.Tensor, labels: dv.Tensor | null): dv.Tensor {
    return this.inner.forward(x, cNoise, labels, null, drawTokenMask(x.shape[0], this.inner.nPatches, this.ratio, 9, 4, x.device));
  }
}

const images = (seed: number, device = 'cpu') => dv.tensor(Float32Array.from(randomValues(2 * 3 * 64, seed, 1)), [2, 3, 8, 8], { device });

describe('the masked IU-ViT', () => {
  test('a mask that keeps every token gives the unmasked output exactly (with and without extra tokens)', () => {
    for (const config of [TINY, TOKENS]) {
      const m = new IUViT(config, { seed: 2 });
      randomizeParameters(m, 20, 0.4);
      const [plain, masked] = dv.scope(() => {
        const x = images(1), c = dv.tensor([0.3, -0.7]), labels = dv.tensor([2, 1], [2], 'int32');
        const all = drawTokenMask(2, m.nPatches, 0, 0, 0);
        return [m.forward(x, c, labels).data(), m.forward(x, c, labels, null, all).data()];
      });
      expect(masked).toEqual(plain);
      m.dispose();
    }
  });

  test('the blocks see only the kept patches: changing the dropped pixels changes no output', () => {
    for (const config of [TINY, TOKENS]) {
      const m = new IUViT(config, { seed: 3 });
      randomizeParameters(m, 40, 0.4);
      dv.scope(() => {
        const mask = drawTokenMask(2, m.nPatches, 0.5, 1, 2);
        const { keep } = rows(mask);
        const x = images(5).data(), changed = Float32Array.from(x);
        // Pixel (c, y, x) of image b lies in patch (y/2)·4 + x/2.
        for (let i = 0; i < changed.length; i++) {
          const b = Math.floor(i / 192), y = Math.floor(i / 8) % 8, col = i % 8;
          if (!keep.includes(b * 16 + Math.floor(y / 2) * 4 + Math.floor(col / 2))) changed[i] += 3;
        }
        const c = dv.tensor([0.3, -0.7]), labels = dv.tensor([2, 1], [2], 'int32');
        const out = (v: Float32Array) => m.forward(dv.tensor(v, [2, 3, 8, 8]), c, labels, null, mask).data();
        const a = out(x);
        expect(out(changed)).toEqual(a);
        // ...while the unmasked model sees them.
        expect(m.forward(dv.tensor(changed, [2, 3, 8, 8]), c, labels).data()).not.toEqual(m.forward(dv.tensor(x, [2, 3, 8, 8]), c, labels).data());
      });
      m.dispose();
    }
  });

  test('gradient check of the masked network: every parameter and the input against central differences', () => {
    // Parameters of 0.3: at 0.4 this adaLN model's loss curves over h (unmasked too).
    for (const config of [TINY, TOKENS]) {
      const m = new MaskedNetwork(config, 0.6);
      expect(expectNetworkGradients(m, 0.3)).toBe(1 + [...m.namedParameters()].length);
      m.dispose();
    }
  });

  test('the masked EDM loss: the mean of λ(σ)(c_skip·x + c_out·F − y)² over the kept patches, against float64', () => {
    const m = new IUViT(TINY, { seed: 4 });
    randomizeParameters(m, 60, 0.4);
    const D = new EDMDenoiser(m);
    dv.scope(() => {
      const y = images(7), labels = dv.tensor([0, 3], [2], 'int32');
      const mask = drawTokenMask(2, 16, 0.5, 3, 1);
      const loss = edmLoss(D, y, labels, { generator: new dv.Generator(21), mask }).item();
      // The same draws, then the reference on the host from the network output.
      const noise = edmTrainingNoise(y, new dv.Generator(21), { P_mean: -1.2, P_std: 1.2 });
      const F = m.forward(noise.xIn, noise.cNoise, labels, null, mask).data(), xn = noise.xNoisy.data(), yv = y.data();
      const sigmas = noise.sigmas.data(), { keep } = rows(mask);
      let sum = 0, count = 0;
      for (let i = 0; i < yv.length; i++) {
        const b = Math.floor(i / 192), py = Math.floor(i / 8) % 8, px = i % 8;
        if (!keep.includes(b * 16 + Math.floor(py / 2) * 4 + Math.floor(px / 2))) continue;
        const k = preconditioning(sigmas[b]);
        sum += k.weight * (k.c_skip * xn[i] + k.c_out * F[i] - yv[i]) ** 2;
        count++;
      }
      expect(count).toBe(2 * 8 * 12);
      expect(Math.abs(loss - sum / count)).toBeLessThan(1e-5 * (sum / count));
    });
    m.dispose();
  });

  test('errors: a mask of another batch or grid, a rope model, the U-Net', () => {
    const m = new IUViT(TINY);
    dv.scope(() => {
      const x = images(1), c = dv.tensor([0.3, -0.7]), labels = dv.tensor([2, 1], [2], 'int32');
      expect(() => m.forward(x, c, labels, null, drawTokenMask(3, 16, 0.5, 0, 0))).toThrow(
        "diffvit.DiffusionViT: argument 'mask' expected a mask of 2 images of 16 patches on 'cpu', received one of 3 images of 16 on 'cpu'");
      expect(() => m.forward(x, c, labels, null, drawTokenMask(2, 4, 0.5, 0, 0))).toThrow('received one of 2 images of 4');
      const rope = new IUViT({ ...TINY, rope: true, dim: 16, heads: 2 });
      expect(() => rope.forward(x, c, labels, null, drawTokenMask(2, 16, 0.5, 0, 0))).toThrow("diffvit.DiffusionViT: argument 'mask' expected null for a rope model");
      rope.dispose();
      const unet = new dv.DiffusionViT({ arch: 'unet', img_size: 8, in_chans: 3, dim: 8, heads: 2, channels: [4], norm_groups: 2, num_classes: 4 });
      expect(() => edmLoss(new EDMDenoiser(unet), x, labels, { mask: drawTokenMask(2, 16, 0.5, 0, 0) })).toThrow(
        "diffvit.edmLoss: option 'mask' expected an IU-ViT/ASCEND network (patch tokens to drop), received arch 'unet'");
      unet.dispose();
    });
    m.dispose();
  });
});

describeEachBackend('the masked IU-ViT on the device', ({ device }) => {
  test("masked forward and every parameter's gradient equal the host's", () => {
    expect(testDevice()).toBe(device);
    expectNetworkMatchesHost(() => {
      const m = new MaskedNetwork(TOKENS, 0.5);
      randomizeParameters(m, 30, 0.4);
      return m;
    }, device);
  });
});

const RUN: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 3, heads: 2, num_classes: 4 },
  data: { kind: 'shapes', seed: 0, size: 64 },
  batchSize: 8, steps: 6, lr: 2e-3, warmupSteps: 2, emaHalfLifeImages: 50,
  maskRatio: 0.5, maskUntil: 0.5,
};

describe('masked training', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-mask-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('masked steps until maskUntil of the run, then full ones: the losses differ from an unmasked run exactly there, and a split run resumes bit for bit', () => {
    const { whole, resumed, losses } = expectResumeBitExact(RUN, join(dir, 'masked.safetensors'));
    const plain = new Trainer({ ...RUN, maskRatio: 0 });
    const plainLosses = Array.from({ length: 6 }, () => plain.trainStep().loss);
    // The same batches and noise: the first (masked) loss differs, and the weights then differ too.
    expect(losses[0]).not.toBe(plainLosses[0]);
    expect(losses.every(Number.isFinite)).toBe(true);
    // After maskUntil (step 3 of 6) a step sees every token: a masked run's full-token step equals
    // an unmasked step from the same state and batch.
    const t = new Trainer({ ...RUN, maskUntil: 0 });
    expect(t.trainStep().loss).toBe(plainLosses[0]);
    for (const x of [whole, resumed, plain, t]) x.dispose();
  });

  /** The relative cost of step s of a run of n steps. */
  const stepCost = (t: Trainer, s: number, n: number) => t.relativeRunCost(s, s + 1, n);

  test('the relative cost of a step, for --minutes: 0.1 + 0.9 × the kept fraction while masked, then 1; of a run, their sum', () => {
    const t = new Trainer(RUN), plain = new Trainer({ ...RUN, maskRatio: 0 });
    // 16 patches of 8×8, half kept, masked until round(0.5 × total).
    expect([0, 2, 3, 5].map((s) => stepCost(t, s, 6))).toEqual([0.55, 0.55, 1, 1]);
    expect(stepCost(t, 5, 12)).toBe(0.55);
    expect(stepCost(plain, 0, 6)).toBe(1);
    // A run's cost, in closed form, is the sum of its steps' on either side of the switch and across it.
    for (const [from, to, n] of [[0, 6, 6], [2, 5, 6], [4, 6, 6], [1, 11, 12], [7, 7, 12], [0, 37, 41]]) {
      let sum = 0;
      for (let s = from; s < to; s++) sum += stepCost(t, s, n);
      expect(t.relativeRunCost(from, to, n), `${from}..${to} of ${n}`).toBeCloseTo(sum, 12);
    }
    expect(plain.relativeRunCost(3, 9, 12)).toBe(6);
    t.dispose();
    plain.dispose();
  });

  // --minutes resizes a run after its switch to full steps (to time them): the switch stays.
  test('a run resized after the switch keeps it at its step, and stores the fraction that is; before it, the switch moves', () => {
    const t = new Trainer(RUN);
    for (let i = 0; i < 2; i++) t.trainStep();
    t.setSteps(12); // before the switch (step 3 of 6): it moves to step 6 of 12
    expect([5, 6].map((s) => stepCost(t, s, 12))).toEqual([0.55, 1]);
    for (let i = 0; i < 6; i++) t.trainStep(); // steps 2..7: the switch at 6 is passed
    t.setSteps(40);
    expect(t.config.maskUntil).toBe(6 / 40);
    expect([5, 8, 20].map((s) => stepCost(t, s, 40))).toEqual([0.55, 1, 1]);
    expect(stepCost(t, 8, 100)).toBe(1); // nor does a longer total the budget tries move it
    // A trainer built from the stored config switches at the same step.
    const again = new Trainer({ ...RUN, steps: 40, maskUntil: t.config.maskUntil });
    expect([5, 6].map((s) => stepCost(again, s, 40))).toEqual([0.55, 1]);
    t.dispose();
    again.dispose();
  });

  test('errors: the ratio, maskUntil, a U-Net, rope', () => {
    expect(() => new Trainer({ ...RUN, maskRatio: 1 })).toThrow('diffvit.train: maskRatio expected a fraction in [0, 1) of the patch tokens to drop, received 1');
    expect(() => new Trainer({ ...RUN, maskUntil: 1.5 })).toThrow("diffvit.train: maskUntil expected a fraction in [0, 1] of the run's steps, received 1.5");
    expect(() => new Trainer({ ...RUN, model: 'unet-xs' })).toThrow("diffvit.train: maskRatio > 0 drops patch tokens and needs an IU-ViT/ASCEND model without rope, received arch 'unet'");
    expect(() => new Trainer({ ...RUN, model: { ...(RUN.model as ModelConfig), rope: true, dim: 32 } })).toThrow('needs an IU-ViT/ASCEND model without rope, received a rope model');
  });

  test('diffvit train --mask-ratio checks its value', async () => {
    const r = await cli(['train', '--mask-ratio', '1'], { stopBeforeWork: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--mask-ratio R expected a number >= 0 and < 1, received '1'/);
  });
});

describeEachBackend('masked training on the device', ({ device, backend }) => {
  test(`masked then full steps on the device${backend === 'cuda' ? ', eager and in a CUDA graph (captured again at the switch),' : ''} equal the host's within tolerance`, () => {
    // one live graph: the masked steps' until maskUntil (step 3 of 6), then the full steps'
    expectDeviceStepsMatchHost(RUN, device, backend, 6, (config, step, before) => {
      if (config.cudaGraph) expect(liveCudaGraphs(), `after step ${step}`).toBe(before + 1);
    });
  });
});
