/**
 * EDM2's learned loss weighting (model config learned_weighting; lib/nn/log_variance.ts): the
 * parameters it adds and leaves alone, the loss L/e^u + u against a float64 reference, its
 * gradients by central differences, the plain EDM loss at u = 0, masks, the U-Net, a checkpoint,
 * and training steps eager, on the device and in a CUDA graph.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { EDMDenoiser, edmLoss, preconditioning } from '../lib/diffusion/edm.js';
import * as dv from '../lib/index.js';
import { fullConfig, type ModelConfig } from '../lib/models/configs.js';
import { drawTokenMask } from '../lib/models/token_mask.js';
import { edmTrainingNoise } from '../lib/ops/edm.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { describeEachBackend, randomValues, toF32 } from './helpers.js';
import { expectDeviceStepsMatchHost, randomizeParameters } from './trainer_checks.js';

const TINY: ModelConfig = { arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 16, depth: 3, heads: 2, freq_dim: 8, num_classes: 4, learned_weighting: true };
const UNET: ModelConfig = { arch: 'unet', img_size: 8, in_chans: 3, dim: 8, heads: 2, channels: [4, 8], norm_groups: 2, freq_dim: 8, num_classes: 4, learned_weighting: true };

const images = (seed: number) => dv.tensor(Float32Array.from(toF32(randomValues(3 * 3 * 64, seed, 1))), [3, 3, 8, 8]);
const LABELS = [0, 3, 4];

/** edmLoss of `model` on fixed images, labels and noise (generator seed 21). */
function loss(model: dv.DiffusionViT, mask: dv.TokenMask | null = null): number {
  return dv.noGrad(() => dv.scope(() => edmLoss(new EDMDenoiser(model), images(7), dv.tensor(LABELS, [3], 'int32'),
    { generator: new dv.Generator(21), P_mean: -0.3, P_std: 1.3, mask }).item()));
}

describe('learned loss weighting', () => {
  test('adds logvar.linear (freq_dim -> 1, zero) last: every other parameter keeps its initial values; off by default', () => {
    expect(fullConfig({ ...TINY, learned_weighting: undefined }).learned_weighting).toBe(false);
    for (const config of [TINY, UNET]) {
      const a = new dv.DiffusionViT(config, { seed: 5 }), b = new dv.DiffusionViT({ ...config, learned_weighting: false }, { seed: 5 });
      const pa = new Map(a.namedParameters()), pb = new Map(b.namedParameters());
      expect(pa.get('logvar.linear.weight')!.shape).toEqual([1, 8]);
      expect([...pa.get('logvar.linear.weight')!.data(), ...pa.get('logvar.linear.bias')!.data()].every((v) => v === 0)).toBe(true);
      expect([...pa.keys()].filter((k) => !k.startsWith('logvar.'))).toEqual([...pb.keys()]);
      for (const [k, p] of pb) expect(pa.get(k)!.data(), k).toEqual(p.data());
      a.dispose();
      b.dispose();
    }
  });

  test('at u = 0 it is the plain EDM loss (with and without a mask, IU-ViT and U-Net)', () => {
    for (const config of [TINY, UNET]) {
      const a = new dv.DiffusionViT(config, { seed: 2 }), b = new dv.DiffusionViT({ ...config, learned_weighting: false }, { seed: 2 });
      randomizeParameters(b, 3, 0.3);
      const shared = new Map(b.namedParameters());
      for (const [k, p] of a.namedParameters()) if (shared.has(k)) dv.assign_(p, shared.get(k)!.data());
      expect(Math.abs(loss(a) - loss(b))).toBeLessThan(1e-6 * loss(b));
      if (config.arch !== 'unet') {
        const mask = drawTokenMask(3, 16, 0.5, 1, 1);
        expect(Math.abs(loss(a, mask) - loss(b, mask))).toBeLessThan(1e-6 * loss(b, mask));
        dv.disposeTokenMask(mask);
      }
      a.dispose();
      b.dispose();
    }
  });

  test('the loss: the mean over samples of L/e^u + u, L = mean λ(σ)(c_skip·x + c_out·F − y)², against float64', () => {
    const m = new dv.IUViT(TINY, { seed: 4 });
    randomizeParameters(m, 40, 0.3);
    dv.scope(() => {
      const y = images(7), labels = dv.tensor(LABELS, [3], 'int32');
      const got = edmLoss(new EDMDenoiser(m), y, labels, { generator: new dv.Generator(21), P_mean: -0.3, P_std: 1.3 }).item();
      const noise = edmTrainingNoise(y, new dv.Generator(21), { P_mean: -0.3, P_std: 1.3 });
      const F = m.forward(noise.xIn, noise.cNoise, labels).data(), xn = noise.xNoisy.data(), yv = y.data();
      const u = m.logvar!.forward(noise.cNoise).data(), sigmas = noise.sigmas.data();
      expect(new Set(u).size).toBe(3); // three noise levels, three weights
      let want = 0;
      for (let b = 0; b < 3; b++) {
        const k = preconditioning(sigmas[b]);
        let L = 0;
        for (let i = b * 192; i < (b + 1) * 192; i++) L += k.weight * (k.c_skip * xn[i] + k.c_out * F[i] - yv[i]) ** 2;
        want += (L / 192) * Math.exp(-u[b]) + u[b];
      }
      want /= 3;
      expect(Math.abs(got - want)).toBeLessThan(2e-6 * Math.abs(want) + 1e-7);
    });
    m.dispose();
  });

  test("gradients of the loss: u's parameters, the network's last layer and its first against central differences", () => {
    const m = new dv.IUViT(TINY, { seed: 6 });
    randomizeParameters(m, 60, 0.3);
    const params = new Map(m.namedParameters());
    dv.scope(() => edmLoss(new EDMDenoiser(m), images(7), dv.tensor(LABELS, [3], 'int32'), { generator: new dv.Generator(21), P_mean: -0.3, P_std: 1.3 }).backward());
    for (const [k, name] of ['logvar.linear.weight', 'logvar.linear.bias', 'final.linear.weight', 'patch_embed.weight'].entries()) {
      const t = params.get(name)!, g = t.grad!.data(), base = t.data();
      const v = Float32Array.from(toF32(randomValues(t.size, 100 + k, 1)));
      let analytic = 0, norm = 0;
      for (let i = 0; i < v.length; i++) {
        analytic += g[i] * v[i];
        norm += Math.abs(g[i] * v[i]);
      }
      const at = (s: number) => {
        dv.assign_(t, base.map((b, i) => b + s * v[i]));
        return loss(m);
      };
      const h = 1e-2, numeric = (at(h) - at(-h)) / (2 * h);
      dv.assign_(t, base);
      expect(norm).toBeGreaterThan(0);
      expect(Math.abs(numeric - analytic), `${name}: numeric ${numeric}, analytic ${analytic}`).toBeLessThanOrEqual(5e-3 * norm);
    }
    m.dispose();
  });

  test('a checkpoint keeps u; config errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-logvar-'));
    const m = new dv.IUViT(TINY, { seed: 8 });
    randomizeParameters(m, 80, 0.3);
    dv.saveCheckpoint(join(dir, 'm.safetensors'), m);
    const { model } = dv.loadCheckpoint(join(dir, 'm.safetensors'));
    expect(model.config.learned_weighting).toBe(true);
    expect(loss(model)).toBe(loss(m));
    model.dispose();
    m.dispose();
    rmSync(dir, { recursive: true, force: true });
    expect(() => fullConfig({ ...TINY, learned_weighting: 1 as unknown as boolean })).toThrow("diffvit.modelConfig: 'learned_weighting' expected a boolean, received 1");
    expect(() => fullConfig({ ...UNET, learned_weighting: 'yes' as unknown as boolean })).toThrow(`'learned_weighting' expected a boolean, received "yes"`);
  });
});

const RUN: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 3, heads: 2, num_classes: 4, learned_weighting: true },
  data: { kind: 'shapes', seed: 0, size: 64 },
  batchSize: 8, steps: 4, lr: 2e-3, warmupSteps: 1, emaHalfLifeImages: 50, matmulPrecision: 'float32',
};

describe('training with learned weighting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-logvar-train-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('u learns: after a few steps it differs between noise levels', () => {
    const t = new Trainer(RUN);
    for (let i = 0; i < 4; i++) expect(Number.isFinite(t.trainStep().loss)).toBe(true);
    const model = t.model as dv.IUViT;
    const u = dv.scope(() => model.logvar!.forward(dv.tensor([-1, 0, 1])).data());
    expect(Math.abs(u[0] - u[2])).toBeGreaterThan(1e-4);
    t.dispose();
  });

});

describeEachBackend('training with learned weighting on the device', ({ device, backend }) => {
  test(`steps on the device${backend === 'cuda' ? ', eager and in a CUDA graph,' : ''} equal the host's within tolerance`, () => {
    expectDeviceStepsMatchHost(RUN, device, backend, 3);
  });
});
