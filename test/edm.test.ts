/** The fused EDM kernels against the unfused composition of ops (and float64 for the coefficients). */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { backendOf } from '../lib/backend/backend.js';
import { coefficientTensors, EDMDenoiser, edmLoss, preconditioning, sampleTrainingSigmas } from '../lib/diffusion/edm.js';
import { DiffusionViT } from '../lib/models/diffusion_vit.js';
import { edmNoiseInputs, edmSamplerUpdate, edmTrainingNoise, edmWeightedLoss } from '../lib/ops/edm.js';
import { expectClose, fromValues, randomValues } from './helpers.js';

const SHAPES: [number, number, number, number][] = [[1, 1, 1, 1], [3, 3, 5, 5], [2, 1, 17, 3]];
const SIGMAS = [0.002, 0.7, 80];

describe('EDM preconditioning', () => {
  test('coefficients match EDM Table 1', () => {
    const sd = 0.5;
    for (const s of [0.002, 0.5, 3, 80]) {
      const c = preconditioning(s, sd);
      expect(c.c_skip).toBeCloseTo(sd ** 2 / (s ** 2 + sd ** 2), 14);
      expect(c.c_out).toBeCloseTo((s * sd) / Math.sqrt(s ** 2 + sd ** 2), 14);
      expect(c.c_in).toBeCloseTo(1 / Math.sqrt(s ** 2 + sd ** 2), 14);
      expect(c.c_noise).toBeCloseTo(Math.log(s) / 4, 14);
      expect(c.weight * c.c_out ** 2).toBeCloseTo(1, 12); // λ·c_out² = 1: unit effective weight
    }
  });
});

describe.each(SHAPES)('fused EDM step on (%i, %i, %i, %i)', (B, C, H, W) => {
  const shape = [B, C, H, W];
  const n = B * C * H * W;
  const sigmas = Array.from({ length: B }, (_, i) => SIGMAS[i % SIGMAS.length]);

  test('(a) noise injection + input scaling equals randn·σ + y, then ·c_in', () => {
    dv.scope(() => {
      const y = fromValues(randomValues(n, 1, 0.5), shape);
      const s = dv.tensor(Float32Array.from(sigmas), [B]);
      const fused = edmNoiseInputs(y, s, new dv.Generator(9, 4));
      const c = coefficientTensors(sigmas);
      const noise = dv.randn(shape, { generator: new dv.Generator(9, 4) });
      const xNoisy = dv.add(y, dv.mul(noise, dv.tensor(Float32Array.from(sigmas), [B, 1, 1, 1])));
      expectClose(fused.xNoisy.data(), xNoisy.data(), { atol: 1e-6, rtol: 1e-6 }, 'x_noisy');
      expectClose(fused.xIn.data(), dv.mul(xNoisy, c.c_in).data(), { atol: 1e-6, rtol: 1e-6 }, 'x_in');
    });
  });

  test('(b) weighted loss and dL/dF equal the autograd of the composition', () => {
    dv.scope(() => {
      const y = fromValues(randomValues(n, 2, 0.5), shape);
      const xNoisy = fromValues(randomValues(n, 3, 2), shape);
      const s = dv.tensor(Float32Array.from(sigmas), [B]);
      const F1 = fromValues(randomValues(n, 4), shape, true);
      const fused = edmWeightedLoss(F1, xNoisy, y, s);
      fused.backward();
      const F2 = fromValues(randomValues(n, 4), shape, true);
      const c = coefficientTensors(sigmas);
      const D = dv.add(dv.mul(xNoisy, c.c_skip), dv.mul(F2, c.c_out));
      const loss = dv.mean(dv.mul(c.weight, dv.square(dv.sub(D, y))));
      loss.backward();
      expectClose([fused.item()], [loss.item()], { atol: 0, rtol: 1e-5 }, 'loss');
      expectClose(F1.grad!.data(), F2.grad!.data(), { atol: 1e-7, rtol: 1e-5 }, 'dL/dF');
    });
  });

  test('(c) guided Euler and Heun updates equal the composition', () => {
    dv.scope(() => {
      const x = fromValues(randomValues(n, 5, 3), shape);
      const xHat = fromValues(randomValues(n, 6, 3), shape);
      const dPrev = fromValues(randomValues(n, 7), shape);
      const Fc = fromValues(randomValues(n, 8), shape), Fu = fromValues(randomValues(n, 9), shape);
      const sigma = 1.7, w = 2.5, h = -0.4;
      const { c_skip, c_out } = preconditioning(sigma);
      const Dc = dv.add(dv.mul(x, c_skip), dv.mul(Fc, c_out)), Du = dv.add(dv.mul(x, c_skip), dv.mul(Fu, c_out));
      const Dw = dv.add(Du, dv.mul(dv.sub(Dc, Du), w));
      const d = dv.mul(dv.sub(x, Dw), 1 / sigma);
      // Euler from x
      const euler = edmSamplerUpdate({ F: dv.concat([Fc, Fu], 0), x, sigma, guidance: w, base: x, h });
      expectClose(euler.d.data(), d.data(), { atol: 1e-5, rtol: 1e-5 }, 'd');
      expectClose(euler.xNext.data(), dv.add(x, dv.mul(d, h)).data(), { atol: 1e-5, rtol: 1e-5 }, 'euler');
      // Heun's correction from x_hat with the averaged slope
      const heun = edmSamplerUpdate({ F: dv.concat([Fc, Fu], 0), x, sigma, guidance: w, base: xHat, h, dPrev, a: 0.5, b: 0.5 });
      const expected = dv.add(xHat, dv.mul(dv.add(dv.mul(dPrev, 0.5), dv.mul(d, 0.5)), h));
      expectClose(heun.xNext.data(), expected.data(), { atol: 1e-5, rtol: 1e-5 }, 'heun');
      // unguided: F holds one half
      const plain = edmSamplerUpdate({ F: Fc, x, sigma, base: x, h });
      const dc = dv.mul(dv.sub(x, Dc), 1 / sigma);
      expectClose(plain.xNext.data(), dv.add(x, dv.mul(dc, h)).data(), { atol: 1e-5, rtol: 1e-5 }, 'unguided');
    });
  });
});

test('fused EDM kernels reject bad sigmas and shapes', () => {
  dv.scope(() => {
    const y = dv.randn([2, 1, 2, 2]);
    expect(() => edmNoiseInputs(y, dv.tensor([0.5, 0], [2]))).toThrow(/diffvit\.edmNoise: argument 'sigma' expected positive finite sigmas, received 0 at index 1/);
    expect(() => edmNoiseInputs(y, dv.tensor([0.5], [1]))).toThrow(/diffvit\.edmNoiseInputs: argument 'sigmas' expected shape \[2\]/);
    expect(() => edmWeightedLoss(dv.randn([2, 1, 2, 3]), y, y, dv.tensor([1, 1], [2]))).toThrow(/argument 'F' expected shape \[2, 1, 2, 2\]/);
    expect(() => edmSamplerUpdate({ F: dv.randn([3, 1, 2, 2]), x: y, sigma: 1, base: y, h: 1 })).toThrow(/argument 'F' expected 2 or 4 \(guided\) images/);
  });
});

test('edmLoss (fused) equals the unfused D composition, loss and parameter gradients', () => {
  dv.scope(() => {
    const model = new DiffusionViT({ arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 32, depth: 3, heads: 2, num_classes: 3 }, { seed: 4 });
    for (const p of model.parameters()) dv.keep(p);
    // give the zero-initialised adaLN/final layers values so every path carries gradient
    for (const p of model.parameters()) p.buffer.write(p.offset, Float32Array.from(randomValues(p.size, p.size, 0.05)));
    const D = new EDMDenoiser(model);
    const y = fromValues(randomValues(4 * 3 * 64, 21, 0.5), [4, 3, 8, 8]);
    const labels = dv.tensor([0, 1, 2, 3], [4], 'int32');
    const fused = edmLoss(D, y, labels, { generator: new dv.Generator(5) });
    fused.backward();
    const fusedGrads = model.parameters().map((p) => p.grad!.data());
    model.zeroGrad();
    const g = new dv.Generator(5);
    const sigmas = Float64Array.from(Float32Array.from(sampleTrainingSigmas(4, { generator: g })));
    const noise = dv.mul(dv.randn(y.shape, { generator: g }), dv.tensor(Float32Array.from(sigmas), [4, 1, 1, 1]));
    const c = coefficientTensors(sigmas);
    const unfused = dv.mean(dv.mul(c.weight, dv.square(dv.sub(D.forward(dv.add(y, noise), sigmas, labels), y))));
    unfused.backward();
    expectClose([fused.item()], [unfused.item()], { atol: 0, rtol: 1e-5 }, 'loss');
    model.parameters().forEach((p, i) => expectClose(fusedGrads[i], p.grad!.data(), { atol: 1e-6, rtol: 1e-3 }, `grad ${i}`));
    model.dispose();
  });
});

/** fn's result and how many times it read device memory back to the host. */
function countingReads<T>(fn: () => T): { value: T; reads: number } {
  const backend = backendOf('cpu'), read = backend.read;
  let reads = 0;
  backend.read = (...args) => {
    reads++;
    return read.apply(backend, args);
  };
  try {
    return { value: fn(), reads };
  } finally {
    backend.read = read;
  }
}

test('edmTrainingNoise draws the σ and c_noise of sampleTrainingSigmas bit for bit, then the noise of edmNoiseInputs', () => {
  dv.scope(() => {
    for (const [P_mean, P_std] of [[-1.2, 1.2], [-0.3, 1.3], [0.5, 2]]) {
      const B = 301, y = fromValues(randomValues(B * 6, 31, 0.5), [B, 1, 2, 3]);
      const host = new dv.Generator(7, 5), device = new dv.Generator(7, 5);
      const sigmas = Float32Array.from(sampleTrainingSigmas(B, { generator: host, P_mean, P_std }));
      const reference = edmNoiseInputs(y, dv.tensor(sigmas, [B]), host, 0.5);
      const drawn = edmTrainingNoise(y, device, { P_mean, P_std });
      expect(drawn.sigmas.data()).toEqual(sigmas);
      expect(drawn.cNoise.data()).toEqual(Float32Array.from(sigmas, (s) => Math.log(s) / 4));
      expect(drawn.xNoisy.data()).toEqual(reference.xNoisy.data());
      expect(drawn.xIn.data()).toEqual(reference.xIn.data());
      expect(device.state()).toEqual(host.state());
    }
  });
});

test('edmLoss and its backward read nothing back to the host; dL/dF scales with the upstream gradient', () => {
  dv.scope(() => {
    const model = new DiffusionViT({ arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 32, depth: 1, heads: 2, num_classes: 3 }, { seed: 4 });
    for (const p of model.parameters()) dv.keep(p);
    const D = new EDMDenoiser(model);
    const y = fromValues(randomValues(2 * 3 * 64, 22, 0.5), [2, 3, 8, 8]);
    const labels = dv.tensor([0, 2], [2], 'int32');
    const { value: loss, reads } = countingReads(() => {
      const l = edmLoss(D, y, labels, { generator: new dv.Generator(3) });
      l.backward();
      return l;
    });
    expect(reads).toBe(0);
    // The same loss through a scaled upstream gradient: every parameter gradient scales with it.
    const grads = model.parameters().map((p) => p.grad!.data());
    model.zeroGrad();
    const again = edmLoss(D, y, labels, { generator: new dv.Generator(3) });
    expect(again.item()).toBe(loss.item());
    dv.backward(again, { grad: dv.tensor([2.5], []) });
    model.parameters().forEach((p, i) => expectClose(p.grad!.data(), grads[i].map((g) => 2.5 * g), { atol: 1e-7, rtol: 1e-6 }, `grad ${i}`));
    model.dispose();
  });
});
