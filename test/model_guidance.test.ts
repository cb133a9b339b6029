/**
 * Model guidance (Tang et al. 2025; TrainConfig.modelGuidance): the guided target y + w·c_out·(F_c − F_∅)
 * against float64 (with and without a token mask), its stop-gradient, w = 0 as the plain loss, the
 * Trainer's per-image weights and ramp, the step cost, errors, and steps on the device and in a
 * CUDA graph.
 */
import { describe, expect, test } from 'vitest';

import { EDMDenoiser, edmNoisedLoss, type ModelGuidanceTarget, preconditioning } from '../lib/diffusion/edm.js';
import * as dv from '../lib/index.js';
import type { ModelConfig } from '../lib/models/configs.js';
import { drawTokenMask, keptPatches } from '../lib/models/token_mask.js';
import { edmTrainingNoise } from '../lib/ops/edm.js';
import { MODEL_GUIDANCE_RAMP } from '../lib/train/config.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { describeEachBackend, expectClose, randomValues, toF32 } from './helpers.js';
import { expectDeviceStepsMatchHost, randomizeParameters } from './trainer_checks.js';

const TINY: ModelConfig = { arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 16, depth: 3, heads: 2, freq_dim: 8, num_classes: 4 };
const B = 3, PIXELS = 3 * 8 * 8;
const LABELS = [0, 4, 2]; // the second image's label was dropped: w = 0 for it
const W = [0.6, 0, 0.6];

const images = (seed: number) => dv.tensor(Float32Array.from(toF32(randomValues(B * PIXELS, seed, 1))), [B, 3, 8, 8]);

/** The model-guided loss of `m` on fixed images and noise (generator seed 21), with this mask. */
function guidedLoss(m: dv.IUViT, weights: number[], mask: dv.TokenMask | null = null): dv.Tensor {
  const y = images(7), labels = dv.tensor(LABELS, [B], 'int32');
  const noise = edmTrainingNoise(y, new dv.Generator(21), { P_mean: -0.3, P_std: 1.3 });
  const guidance: ModelGuidanceTarget = { weight: dv.tensor(weights, [B]), nullLabels: dv.full([B], 4, { dtype: 'int32' }) };
  return edmNoisedLoss(new EDMDenoiser(m), noise, y, labels, { mask, modelGuidance: guidance });
}

describe('model guidance', () => {
  const m = new dv.IUViT(TINY, { seed: 4 });
  randomizeParameters(m, 40, 0.3);

  test('the loss: mean λ(σ)(D_c − y − w·c_out·(F_c − F_∅))² over the (kept) pixels, against float64', () => {
    for (const masked of [false, true]) {
      const mask = masked ? drawTokenMask(B, 16, 0.5, 1, 1) : null;
      dv.scope(() => {
        const got = guidedLoss(m, W, mask).item();
        const y = images(7), labels = dv.tensor(LABELS, [B], 'int32');
        const noise = edmTrainingNoise(y, new dv.Generator(21), { P_mean: -0.3, P_std: 1.3 });
        // The network's two outputs (float32) and the pixels the loss covers: the reference is the mixing maths.
        const keptOf = (t: dv.Tensor) => (mask ? keptPatches(t, mask, 2) : t).data();
        const Fc = keptOf(m.forward(noise.xIn, noise.cNoise, labels, null, mask));
        const Fu = keptOf(m.forward(noise.xIn, noise.cNoise, dv.full([B], 4, { dtype: 'int32' }), null, mask));
        const xn = keptOf(noise.xNoisy), yv = keptOf(y), sigmas = noise.sigmas.data();
        const n = Fc.length / B;
        let want = 0;
        for (let b = 0; b < B; b++) {
          const k = preconditioning(sigmas[b]);
          for (let i = b * n; i < (b + 1) * n; i++) {
            const target = yv[i] + W[b] * k.c_out * (Fc[i] - Fu[i]);
            want += k.weight * (k.c_skip * xn[i] + k.c_out * Fc[i] - target) ** 2;
          }
        }
        want /= Fc.length;
        expect(Math.abs(got - want), masked ? 'masked' : 'every token').toBeLessThan(2e-6 * want);
        // and the guidance moved it: the unguided loss differs
        expect(Math.abs(guidedLoss(m, [0, 0, 0], mask).item() - want)).toBeGreaterThan(1e-4 * want);
      });
      if (mask) dv.disposeTokenMask(mask);
    }
  });

  test('w = 0 is the plain EDM loss, bit for bit', () => {
    dv.scope(() => {
      const y = images(7), labels = dv.tensor(LABELS, [B], 'int32');
      const plain = edmNoisedLoss(new EDMDenoiser(m), edmTrainingNoise(y, new dv.Generator(21), { P_mean: -0.3, P_std: 1.3 }), y, labels).item();
      expect(guidedLoss(m, [0, 0, 0]).item()).toBe(plain);
    });
  });

  test('the target is held fixed: the gradients are those of the plain loss on the guided target (fused loss and learned weighting)', () => {
    for (const config of [TINY, { ...TINY, learned_weighting: true }]) {
      const net = new dv.IUViT(config, { seed: 4 });
      randomizeParameters(net, 40, 0.3);
      const grads = (run: () => dv.Tensor) => {
        net.zeroGrad();
        dv.scope(() => run().backward());
        const g = net.parameters().map((p) => p.grad!.data());
        net.zeroGrad();
        return g;
      };
      const guided = grads(() => guidedLoss(net, W));
      const onTarget = grads(() => {
        const y = images(7), labels = dv.tensor(LABELS, [B], 'int32');
        const noise = edmTrainingNoise(y, new dv.Generator(21), { P_mean: -0.3, P_std: 1.3 });
        // the guided target, computed outside the graph, as plain data
        const target = dv.noGrad(() => {
          const Fc = net.forward(noise.xIn, noise.cNoise, labels).data(), Fu = net.forward(noise.xIn, noise.cNoise, dv.full([B], 4, { dtype: 'int32' })).data();
          const yv = y.data(), sigmas = noise.sigmas.data();
          return dv.tensor(yv.map((v, i) => v + W[Math.floor(i / PIXELS)] * preconditioning(sigmas[Math.floor(i / PIXELS)]).c_out * (Fc[i] - Fu[i])), [B, 3, 8, 8]);
        });
        return edmNoisedLoss(new EDMDenoiser(net), noise, target, labels);
      });
      const where = config.learned_weighting ? 'learned weighting' : 'fused loss';
      guided.forEach((g, i) => expectClose(g, Float64Array.from(onTarget[i]), { rtol: 1e-4, atol: 1e-6 * Math.max(...onTarget[i].map(Math.abs)) }, `${where}: parameter ${i}`));
      net.dispose();
    }
  });
});

const RUN: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 3, heads: 2, num_classes: 4 },
  data: { kind: 'shapes', seed: 0, size: 64 },
  batchSize: 8, steps: 8, lr: 2e-3, warmupSteps: 2, emaHalfLifeImages: 50, labelDropout: 0.3,
  maskRatio: 0.5, maskUntil: 0.5, modelGuidance: 0.75, matmulPrecision: 'float32',
};

describe('training with model guidance', () => {
  test('w per image: 0 where the label was dropped, ramped in linearly over the first quarter of the run', () => {
    const t = new Trainer(RUN);
    const weights = (t as unknown as { modelGuidanceWeights(l: Int32Array): Float32Array | null }).modelGuidanceWeights.bind(t);
    const labels = Int32Array.from([0, 4, 3, 4]);
    const rampSteps = MODEL_GUIDANCE_RAMP * RUN.steps; // 2
    const seen: number[][] = [];
    for (let i = 0; i < 4; i++) {
      seen.push(Array.from(weights(labels)!));
      t.trainStep();
    }
    expect(seen).toEqual([0, 1, 2, 3].map((s) => { const w = Math.fround(0.75 * Math.min(1, s / rampSteps)); return [w, 0, w, 0]; }));
    const plain = new Trainer({ ...RUN, modelGuidance: 0 });
    expect((plain as unknown as { modelGuidanceWeights(l: Int32Array): Float32Array | null }).modelGuidanceWeights(labels)).toBeNull();
    // The first step (w = 0 everywhere) equals the unguided run's; later ones differ.
    const guided = new Trainer(RUN);
    const a = [0, 1, 2].map(() => guided.trainStep().loss), b = [0, 1, 2].map(() => plain.trainStep().loss);
    expect(a[0]).toBe(b[0]);
    expect(a[2]).not.toBe(b[2]);
    for (const x of [t, plain, guided]) x.dispose();
  });

  test('step costs: the extra forward pass adds a third of the token work, masked or not', () => {
    const t = new Trainer(RUN);
    const costs = [0, 3, 4, 7].map((s) => t.relativeRunCost(s, s + 1, 8));
    expect(costs.map((c) => Number(c.toFixed(12)))).toEqual([0.7, 0.7, 1.3, 1.3]); // 0.1 + 0.9·(4/3)·(1/2 or 1)
    t.dispose();
  });

  test('errors: w outside [0, 1), an unconditional model; --model-guidance is checked', async () => {
    expect(() => new Trainer({ ...RUN, modelGuidance: 1 })).toThrow('diffvit.train: modelGuidance expected a weight w in [0, 1) (guidance scale 1/(1 − w)), received 1');
    expect(() => new Trainer({ ...RUN, modelGuidance: -0.1 })).toThrow('received -0.1');
    expect(() => new Trainer({ ...RUN, model: { ...(RUN.model as ModelConfig), num_classes: 0 } })).toThrow('diffvit.train: modelGuidance needs a class-conditional model (num_classes > 0)');
    const { cli } = await import('./cli_harness.js');
    const r = await cli(['train', '--model-guidance', '1'], { stopBeforeWork: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model-guidance W expected a number >= 0 and < 1, received '1'/);
  });
});

describeEachBackend('model-guided training on the device', ({ device, backend }) => {
  test(`masked then full model-guided steps on the device${backend === 'cuda' ? ', eager and in a CUDA graph,' : ''} equal the host's within tolerance`, () => {
    expectDeviceStepsMatchHost(RUN, device, backend, 6);
  });
});
