/** The fused EDM kernels against the unfused composition of ops (and float64 for the coefficients). */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { backendOf } from '../lib/backend/backend.js';
import { coefficientTensors, EDMDenoiser, edmLoss, preconditioning, sampleTrainingSigmas } from '../lib/diffusion/edm.js';
import { DiffusionViT } from '../lib/models/diffusion_vit.js';
import { edmNoiseInputs, edmSamplerUpdate, edmTrainingNoise, edmWeightedLoss } from '../lib/ops/edm.js';
import { type CloseOptions, describeEachBackend, expectClose, fromValues, randomValues } from './helpers.js';

const SHAPES: [number, number, number, number][] = [[1, 1, 1, 1], [3, 3, 5, 5], [2, 1, 17, 3]];
const SIGMAS = [0.002, 0.7, 80];

// Host float64 arithmetic, no kernel: runs once, not per backend.
describe('EDM preconditioning', () => {
  test('coefficients match EDM Table 1', () => {
    const sd = 0.5;
    for (const s of [0.002, 0.5, 3, 80]) {
      const c = preconditioning(s, sd);
      expectClose([c.c_skip, c.c_out, c.c_in, c.c_noise],
        [sd ** 2 / (s ** 2 + sd ** 2), (s * sd) / Math.sqrt(s ** 2 + sd ** 2), 1 / Math.sqrt(s ** 2 + sd ** 2), Math.log(s) / 4],
        { dtype: 'float64', kind: 'formula' }, `c_skip, c_out, c_in, c_noise at σ ${s}`);
      // λ·c_out² = 1: unit effective weight
      expectClose([c.weight * c.c_out ** 2], [1], { dtype: 'float64', kind: 'identity' }, `λ·c_out² at σ ${s}`);
    }
  });
});

// Fused kernels against the composition of ops: the table's rows for the noising, the loss and the step.
const NOISE_TOL: CloseOptions = { dtype: 'float32', kind: 'edmNoise' };
const LOSS_TOL: CloseOptions = { dtype: 'float32', kind: 'edmLoss' };
const STEP_TOL: CloseOptions = { dtype: 'float32', kind: 'composition' };

/** The coefficient tensors (made on the cpu) on `device`. */
function coefficientsOn(sigmas: ArrayLike<number>, device: string) {
  const c = coefficientTensors(sigmas);
  return { c_skip: c.c_skip.to(device), c_out: c.c_out.to(device), c_in: c.c_in.to(device), c_noise: c.c_noise.to(device), weight: c.weight.to(device) };
}

// Every suite runs once per backend (the cpu once per kernel level); fromValues puts its tensors on the suite's device.
describeEachBackend('fused EDM kernels', ({ device }) => describe.each(SHAPES)('step on (%i, %i, %i, %i)', (B, C, H, W) => {
  const shape = [B, C, H, W];
  const n = B * C * H * W;
  const sigmas = Array.from({ length: B }, (_, i) => SIGMAS[i % SIGMAS.length]);
  const on = { device };

  test('(a) noise injection + input scaling equals randn·σ + y, then ·c_in', () => {
    dv.scope(() => {
      const y = fromValues(randomValues(n, 1, 0.5), shape);
      const s = dv.tensor(Float32Array.from(sigmas), [B], on);
      const fused = edmNoiseInputs(y, s, new dv.Generator(9, 4));
      expect(fused.xIn.device).toBe(device);
      const c = coefficientsOn(sigmas, device);
      const noise = dv.randn(shape, { generator: new dv.Generator(9, 4), device });
      const xNoisy = dv.add(y, dv.mul(noise, dv.tensor(Float32Array.from(sigmas), [B, 1, 1, 1], on)));
      expectClose(fused.xNoisy.data(), xNoisy.data(), NOISE_TOL, 'x_noisy');
      expectClose(fused.xIn.data(), dv.mul(xNoisy, c.c_in).data(), NOISE_TOL, 'x_in');
    });
  });

  test('(b) weighted loss and dL/dF equal the autograd of the composition', () => {
    dv.scope(() => {
      const y = fromValues(randomValues(n, 2, 0.5), shape);
      const xNoisy = fromValues(randomValues(n, 3, 2), shape);
      const s = dv.tensor(Float32Array.from(sigmas), [B], on);
      const F1 = fromValues(randomValues(n, 4), shape, true);
      const fused = edmWeightedLoss(F1, xNoisy, y, s);
      fused.backward();
      const F2 = fromValues(randomValues(n, 4), shape, true);
      const c = coefficientsOn(sigmas, device);
      const D = dv.add(dv.mul(xNoisy, c.c_skip), dv.mul(F2, c.c_out));
      const loss = dv.mean(dv.mul(c.weight, dv.square(dv.sub(D, y))));
      loss.backward();
      expectClose([fused.item()], [loss.item()], LOSS_TOL, 'loss');
      expectClose(F1.grad!.data(), F2.grad!.data(), { ...LOSS_TOL, grad: true }, 'dL/dF');
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
      expectClose(euler.d.data(), d.data(), STEP_TOL, 'd');
      expectClose(euler.xNext.data(), dv.add(x, dv.mul(d, h)).data(), STEP_TOL, 'euler');
      // Heun's correction from x_hat with the averaged slope
      const heun = edmSamplerUpdate({ F: dv.concat([Fc, Fu], 0), x, sigma, guidance: w, base: xHat, h, dPrev, a: 0.5, b: 0.5 });
      const expected = dv.add(xHat, dv.mul(dv.add(dv.mul(dPrev, 0.5), dv.mul(d, 0.5)), h));
      expectClose(heun.xNext.data(), expected.data(), STEP_TOL, 'heun');
      // unguided: F holds one half
      const plain = edmSamplerUpdate({ F: Fc, x, sigma, base: x, h });
      const dc = dv.mul(dv.sub(x, Dc), 1 / sigma);
      expectClose(plain.xNext.data(), dv.add(x, dv.mul(dc, h)).data(), STEP_TOL, 'unguided');
    });
  });
}));

// The ops' argument checks (and the addon's sigma check behind edmNoiseInputs): run once, on the cpu.
test('fused EDM kernels reject bad sigmas and shapes', () => {
  dv.scope(() => {
    const y = dv.randn([2, 1, 2, 2]);
    expect(() => edmNoiseInputs(y, dv.tensor([0.5, 0], [2]))).toThrow(/diffvit\.edmNoise: argument 'sigma' expected positive finite sigmas, received 0 at index 1/);
    expect(() => edmNoiseInputs(y, dv.tensor([0.5], [1]))).toThrow(/diffvit\.edmNoiseInputs: argument 'sigmas' expected shape \[2\]/);
    expect(() => edmWeightedLoss(dv.randn([2, 1, 2, 3]), y, y, dv.tensor([1, 1], [2]))).toThrow(/argument 'F' expected shape \[2, 1, 2, 2\]/);
    expect(() => edmSamplerUpdate({ F: dv.randn([3, 1, 2, 2]), x: y, sigma: 1, base: y, h: 1 })).toThrow(/argument 'F' expected 2 or 4 \(guided\) images/);
  });
});

/** fn's result and how many times it read device memory back to the host. */
function countingReads<T>(device: string, fn: () => T): { value: T; reads: number } {
  const backend = backendOf(device), read = backend.read;
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

describeEachBackend('EDM training noise and loss', ({ device }) => {
  // The tests through a model put it on the suite's device.
  const modelTest = test;

  modelTest(`edmLoss (fused) equals the unfused D composition, loss and parameter gradients`, () => {
    dv.scope(() => {
      const model = new DiffusionViT({ arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 32, depth: 3, heads: 2, num_classes: 3 }, { seed: 4, device });
      for (const p of model.parameters()) dv.keep(p);
      // give the zero-initialised adaLN/final layers values so every path carries gradient
      for (const p of model.parameters()) dv.assign_(p, Float32Array.from(randomValues(p.size, p.size, 0.05)));
      const D = new EDMDenoiser(model);
      const y = fromValues(randomValues(4 * 3 * 64, 21, 0.5), [4, 3, 8, 8]);
      const labels = dv.tensor([0, 1, 2, 3], [4], { dtype: 'int32', device });
      const fused = edmLoss(D, y, labels, { generator: new dv.Generator(5) });
      fused.backward();
      const fusedGrads = model.parameters().map((p) => p.grad!.data());
      model.zeroGrad();
      const g = new dv.Generator(5);
      const sigmas = Float64Array.from(Float32Array.from(sampleTrainingSigmas(4, { generator: g })));
      const noise = dv.mul(dv.randn(y.shape, { generator: g, device }), dv.tensor(Float32Array.from(sigmas), [4, 1, 1, 1], { device }));
      const c = coefficientsOn(sigmas, device);
      const unfused = dv.mean(dv.mul(c.weight, dv.square(dv.sub(D.forward(dv.add(y, noise), sigmas, labels), y))));
      unfused.backward();
      expectClose([fused.item()], [unfused.item()], { dtype: 'float32', kind: 'edmModel' }, 'loss');
      model.parameters().forEach((p, i) => expectClose(fusedGrads[i], p.grad!.data(), { dtype: 'float32', kind: 'edmModel', grad: true }, `grad ${i}`));
      model.dispose();
    });
  });

  test('edmTrainingNoise draws the σ and c_noise of sampleTrainingSigmas bit for bit, then the noise of edmNoiseInputs', () => {
    dv.scope(() => {
      for (const [P_mean, P_std] of [[-1.2, 1.2], [-0.3, 1.3], [0.5, 2]]) {
        const B = 301, y = fromValues(randomValues(B * 6, 31, 0.5), [B, 1, 2, 3]);
        const host = new dv.Generator(7, 5), drawer = new dv.Generator(7, 5);
        const sigmas = Float32Array.from(sampleTrainingSigmas(B, { generator: host, P_mean, P_std }));
        const reference = edmNoiseInputs(y, dv.tensor(sigmas, [B], { device }), host, 0.5);
        const drawn = edmTrainingNoise(y, drawer, { P_mean, P_std });
        expect(drawn.xIn.device).toBe(device);
        expect(drawn.sigmas.data()).toEqual(sigmas);
        expect(drawn.cNoise.data()).toEqual(Float32Array.from(sigmas, (s) => Math.log(s) / 4));
        expect(drawn.xNoisy.data()).toEqual(reference.xNoisy.data());
        expect(drawn.xIn.data()).toEqual(reference.xIn.data());
        expect(drawer.state()).toEqual(host.state());
      }
    });
  });

  test('σ, c_noise, the noise, dL/dF and the sampler step are bit-identical to the cpu backend\'s (same seed and counter)', () => {
    // Awkward sizes: 3 images of 257 values, so normal pairs straddle images; an odd starting counter
    // (3) and an even one (4) take both the pairwise and the element-by-element paths of the kernels.
    const B = 3, per = 257, shape = [B, 1, 1, per], n = B * per;
    const yv = Float32Array.from(randomValues(n, 51, 0.5)), Fv = Float32Array.from(randomValues(2 * n, 52));
    const dPrev = Float32Array.from(randomValues(n, 53)), base = Float32Array.from(randomValues(n, 54, 3));
    const run = (on: string, counter: number) => dv.scope(() => {
      const y = dv.tensor(yv, shape, { device: on });
      const g = new dv.Generator(11, counter);
      const drawn = edmTrainingNoise(y, g, { P_mean: -0.4, P_std: 1.4 });
      const again = edmNoiseInputs(y, drawn.sigmas, g, 0.3);
      const F = dv.tensor(Fv.subarray(0, n), shape, { device: on });
      F.requiresGrad = true;
      const loss = edmWeightedLoss(F, drawn.xNoisy, y, drawn.sigmas);
      loss.backward();
      const step = edmSamplerUpdate({
        F: dv.tensor(Fv, [2 * B, 1, 1, per], { device: on }), x: drawn.xNoisy, sigma: 2.3, guidance: 1.7,
        base: dv.tensor(base, shape, { device: on }), h: -0.35, dPrev: dv.tensor(dPrev, shape, { device: on }), a: 0.5, b: 0.5,
      });
      return {
        values: [drawn.sigmas, drawn.cNoise, drawn.xNoisy, drawn.xIn, again.xNoisy, again.xIn, F.grad!, step.d, step.xNext].map((t) => t.data()),
        loss: loss.item(),
      };
    });
    const names = ['sigmas', 'cNoise', 'xNoisy', 'xIn', 'xNoisy (given σ)', 'xIn (given σ)', 'dL/dF', 'd', 'xNext'];
    for (const counter of [3, 4]) {
      const here = run(device, counter), cpu = run('cpu', counter);
      names.forEach((name, i) => expect(here.values[i], `${name}, counter ${counter}`).toEqual(cpu.values[i]));
      // The float64 loss sum is ordered differently per backend: equal to float32 rounding.
      expectClose([here.loss], [cpu.loss], { dtype: 'float32', kind: 'edmLoss' }, 'loss');
    }
  });

  modelTest(`edmLoss and its backward read nothing back to the host; dL/dF scales with the upstream gradient`, () => {
    dv.scope(() => {
      const model = new DiffusionViT({ arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 32, depth: 1, heads: 2, num_classes: 3 }, { seed: 4, device });
      for (const p of model.parameters()) dv.keep(p);
      const D = new EDMDenoiser(model);
      const y = fromValues(randomValues(2 * 3 * 64, 22, 0.5), [2, 3, 8, 8]);
      const labels = dv.tensor([0, 2], [2], { dtype: 'int32', device });
      const { value: loss, reads } = countingReads(device, () => {
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
      dv.backward(again, { grad: dv.tensor([2.5], [], { device }) });
      model.parameters().forEach((p, i) => expectClose(p.grad!.data(), grads[i].map((g) => 2.5 * g), { dtype: 'float32', kind: 'gradScale', grad: true }, `grad ${i}`));
      model.dispose();
    });
  });
});
