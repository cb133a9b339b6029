/**
 * Samplers: a known answer (F ≡ 0 makes D the exact denoiser of N(0, σ_data²) data, whose ODE
 * solution is x(σ) = x(σ_max)·sqrt(σ²+σ_d²)/sqrt(σ_max²+σ_d²)), and the fused float32 Heun sampler
 * against the twin's float64 edm_heun_sampler run on the same network.
 */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { backendOf } from '../lib/backend/backend.js';
import { guidanceIntervalOption } from '../lib/cli/guidance_interval.js';
import { GuidedNetwork } from '../lib/diffusion/guidance.js';
import { generate, SAMPLERS } from '../lib/diffusion/sample.js';
import { edmSigmas } from '../lib/diffusion/samplers/common.js';
import { ddimSigmas } from '../lib/diffusion/samplers/ddim.js';
import { DiffusionViT } from '../lib/models/diffusion_vit.js';
import { describeEachBackend, expectClose, randomValues } from './helpers.js';

const CONFIG = { arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 32, depth: 3, heads: 2, num_classes: 3 } as const;

/** The largest |value|: the scale a sampler's error is measured against. */
const maxAbs = (v: ArrayLike<number>) => Array.from(v).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/** The twin's edm_heun_sampler in float64 on a Denoise callback. */
function heunReference(D: (x: Float64Array, s: number) => Float64Array, latents: Float64Array, steps: number): Float64Array {
  const t = edmSigmas(steps);
  let x = latents.map((v) => v * t[0]);
  for (let k = 0; k < steps; k++) {
    const tc = t[k], tn = t[k + 1];
    const dc = D(x, tc);
    const d = x.map((v, i) => (v - dc[i]) / tc);
    let xn = x.map((v, i) => v + (tn - tc) * d[i]);
    if (k < steps - 1) {
      const dn = D(xn, tn);
      const d2 = xn.map((v, i) => (v - dn[i]) / tn);
      xn = x.map((v, i) => v + (tn - tc) * (0.5 * d[i] + 0.5 * d2[i]));
    }
    x = xn;
  }
  return x;
}

/** The network's batch at σ on either side of the interval [0.5, 10]: 3 rows (conditional only) or 6 (and the other half), with the matching guidance. */
function expectSecondHalfInsideInterval(net: GuidedNetwork, device: string): void {
  const x = dv.randn([3, 3, 8, 8], { generator: new dv.Generator(1), device });
  for (const [sigma, rows] of [[0.5, 3], [0.6, 6], [10, 6], [11, 3]] as const) {
    const F = net.evaluate(x, sigma);
    expect([F.shape[0], net.guidanceAt(sigma)]).toEqual([rows, rows === 6 ? 3 : 1]);
    F.dispose();
  }
  x.dispose();
  net.dispose();
}

// Every suite runs once per backend (the cpu once per kernel level): the model lives on the suite's
// device, and generate() samples there.
describeEachBackend('samplers', ({ device }) => {
  const samplerTest = test;

  describe('samplers on the Gaussian ODE (F ≡ 0: D(x; σ) = x·σ_d²/(σ²+σ_d²))', () => {
    // adaLN-Zero initialises the final Linear to zero; without final_conv the network output is 0,
    // so every sampler multiplies the latents by a factor that a scalar float64 run of its update
    // rule gives independently; the exact ODE factor is σ_d/sqrt(σ_max²+σ_d²) per unit latent.
    const model = new DiffusionViT({ ...CONFIG, final_conv: false }, { seed: 1, device });
    const D = (x: number, s: number) => (x * 0.25) / (s * s + 0.25);
    const scalarRun: Record<string, (t: Float64Array) => number> = {
      euler: (t) => t.slice(0, -1).reduce((x, tc, k) => x + (t[k + 1] - tc) * (x - D(x, tc)) / tc, t[0]),
      ddim: (t) => t.slice(0, -1).reduce((x, tc, k) => x + (t[k + 1] - tc) * (x - D(x, tc)) / tc, t[0]),
      heun: (t) => t.slice(0, -1).reduce((x, tc, k) => {
        const tn = t[k + 1], d = (x - D(x, tc)) / tc, xn = x + (tn - tc) * d;
        return k === t.length - 2 ? xn : x + (tn - tc) * (0.5 * d + 0.5 * (xn - D(xn, tn)) / tn);
      }, t[0]),
      dpmpp2m: (t) => {
        let x = t[0], prev = 0, hPrev = 0;
        for (let k = 0; k + 1 < t.length; k++) {
          const den = D(x, t[k]);
          if (t[k + 1] === 0) x = den;
          else {
            const h = Math.log(t[k] / t[k + 1]), r = hPrev / h;
            const dHat = k === 0 ? den : (1 + 1 / (2 * r)) * den - prev / (2 * r);
            x = (t[k + 1] / t[k]) * x - Math.expm1(-h) * dHat;
            hPrev = h;
          }
          prev = den;
        }
        return x;
      },
    };
    samplerTest.each([...SAMPLERS])(`%s multiplies the latents by its scalar update factor`, (sampler) => {
      const labels = Int32Array.from([0, 1, 2, 3]);
      const { images } = generate(model, { sampler, labels, guidance: 3, seed: 5 });
      const latents = dv.scope(() => dv.randn([4, 3, 8, 8], { generator: new dv.Generator(5) }).data());
      const factor = scalarRun[sampler](sampler === 'ddim' ? ddimSigmas(50) : edmSigmas(18));
      expectClose(images, Array.from(latents, (l) => l * factor), { dtype: 'float32', kind: 'sampler', scale: latents }, `${sampler} images`);
    });
    samplerTest.each([...SAMPLERS])(`%s keeps its state on the device: one read back, the final images`, (sampler) => {
      const backend = backendOf(device), read = backend.read;
      const sizes: number[] = [];
      backend.read = (buffer, offset, count) => {
        sizes.push(count);
        return read.call(backend, buffer, offset, count);
      };
      try {
        generate(model, { sampler, labels: Int32Array.from([0, 1, 2]), guidance: 2, guidanceInterval: [0.5, 10], steps: 6, seed: 5 });
      } finally {
        backend.read = read;
      }
      expect(sizes).toEqual([3 * 3 * 8 * 8]);
    });
    samplerTest(`Heun converges to the exact ODE solution as steps grow`, () => {
      const exact = (80 * 0.5) / Math.sqrt(80 * 80 + 0.25);
      const { images } = generate(model, { count: 2, steps: 200, seed: 6 });
      const latents = dv.scope(() => dv.randn([2, 3, 8, 8], { generator: new dv.Generator(6) }).data());
      expectClose(images, Array.from(latents, (l) => l * exact), { dtype: 'float32', kind: 'samplerConvergence' }, 'Heun, 200 steps');
    });
  });

  samplerTest(`fused Heun with guidance equals the float64 reference sampler`, () => {
    const model = new DiffusionViT(CONFIG, { seed: 2, device });
    for (const p of model.parameters()) dv.assign_(p, Float32Array.from(randomValues(p.size, p.size + 1, 0.05)));
    const labels = Int32Array.from([2, 0, 1]);
    const { images } = generate(model, { labels, guidance: 2.5, steps: 10, seed: 9 });
    const net = new GuidedNetwork(model, [3, 3, 8, 8], { labels, guidance: 2.5 });
    const latents = dv.scope(() => Float64Array.from(dv.randn([3, 3, 8, 8], { generator: new dv.Generator(9) }).data()));
    const reference = heunReference(net.denoise, latents, 10);
    net.dispose();
    expectClose(images, reference, { dtype: 'float32', kind: 'samplerReference', scale: new Float64Array(images.length).fill(maxAbs(reference)) },
      'fused Heun vs float64');
    model.dispose();
  });

  describe('guidance in a limited interval (Kynkäänniemi et al. 2024)', () => {
    const model = new DiffusionViT(CONFIG, { seed: 3, device });
    for (const p of model.parameters()) dv.assign_(p, Float32Array.from(randomValues(p.size, p.size + 3, 0.05)));
    const labels = Int32Array.from([1, 2, 0]);
    const latents = dv.scope(() => Float64Array.from(dv.randn([3, 3, 8, 8], { generator: new dv.Generator(4) }).data()));
    const interval = [0.5, 10] as const; // edmSigmas(10) has levels on both sides of each end

    samplerTest(`fused Heun guides only at lo < σ <= hi, as the float64 reference does`, () => {
      const { images } = generate(model, { labels, guidance: 3, guidanceInterval: interval, steps: 10, seed: 4 });
      const guided = new GuidedNetwork(model, [3, 3, 8, 8], { labels, guidance: 3 });
      const plain = new GuidedNetwork(model, [3, 3, 8, 8], { labels });
      const reference = heunReference((x, s) => (s > interval[0] && s <= interval[1] ? guided : plain).denoise(x, s), latents, 10);
      const everywhere = generate(model, { labels, guidance: 3, steps: 10, seed: 4 }).images;
      guided.dispose();
      plain.dispose();
      const scale = maxAbs(reference);
      expectClose(images, reference, { dtype: 'float32', kind: 'samplerReference', scale: new Float64Array(images.length).fill(scale) },
        'fused Heun with a guidance interval vs float64');
      let fromEverywhere = 0;
      for (let i = 0; i < images.length; i++) fromEverywhere = Math.max(fromEverywhere, Math.abs(images[i] - everywhere[i]));
      expect(fromEverywhere / scale).toBeGreaterThan(1e-3); // the interval did change the samples (by 4e-3)
    });

    samplerTest(`an interval holding every level is plain guidance; one holding none is guidance 1`, () => {
      for (const sampler of SAMPLERS) {
        const all = generate(model, { sampler, labels, guidance: 3, guidanceInterval: [0, Infinity], steps: 6, seed: 4 }).images;
        expect(all).toEqual(generate(model, { sampler, labels, guidance: 3, steps: 6, seed: 4 }).images);
        const none = generate(model, { sampler, labels, guidance: 3, guidanceInterval: [100, 200], steps: 6, seed: 4 }).images;
        expect(none).toEqual(generate(model, { sampler, labels, steps: 6, seed: 4 }).images);
      }
    });

    samplerTest(`the network runs the unconditional half only inside the interval`, () => {
      expectSecondHalfInsideInterval(new GuidedNetwork(model, [3, 3, 8, 8], { labels, guidance: 3, guidanceInterval: interval }), device);
    });

    samplerTest(`a bad interval is an error that names it`, () => {
      for (const bad of [[2, 1], [-1, 3], [Number.NaN, 1]] as const) {
        expect(() => generate(model, { labels, guidance: 3, guidanceInterval: bad })).toThrow(/'guidanceInterval' expected 0 <= lo < hi, received/);
      }
    });
  });

  describe('autoguidance (Karras et al. 2024): guiding away from a weaker model', () => {
    const randomModel = (seed: number, config: typeof CONFIG | { [k: string]: unknown } = CONFIG) => {
      const m = new DiffusionViT(config as typeof CONFIG, { seed, device });
      for (const p of m.parameters()) dv.assign_(p, Float32Array.from(randomValues(p.size, p.size + seed, 0.05)));
      return m;
    };
    const model = randomModel(5), guide = randomModel(6);
    const labels = Int32Array.from([2, 1, 0]);
    const latents = dv.scope(() => Float64Array.from(dv.randn([3, 3, 8, 8], { generator: new dv.Generator(8) }).data()));

    samplerTest(`fused Heun equals the float64 mix D_guide + w·(D_model − D_guide) of the two conditional networks`, () => {
      const { images } = generate(model, { labels, guidance: 2.5, guide, steps: 10, seed: 8 });
      // the reference mixes two separately evaluated conditional (unguided) networks in float64
      const main = new GuidedNetwork(model, [3, 3, 8, 8], { labels }), weak = new GuidedNetwork(guide, [3, 3, 8, 8], { labels });
      const reference = heunReference((x, s) => {
        const Dm = main.denoise(x, s), Dg = weak.denoise(x, s);
        return Dg.map((g, i) => g + 2.5 * (Dm[i] - g));
      }, latents, 10);
      main.dispose();
      weak.dispose();
      expectClose(images, reference, { dtype: 'float32', kind: 'samplerReference', scale: new Float64Array(images.length).fill(maxAbs(reference)) },
        'autoguided Heun vs float64');
      // and it is not classifier-free guidance at the same scale
      const cfg = generate(model, { labels, guidance: 2.5, steps: 10, seed: 8 }).images;
      expect(maxAbs(cfg.map((v, i) => v - images[i])) / maxAbs(reference)).toBeGreaterThan(1e-2);
    });

    samplerTest(`a model guided by itself samples as without guidance; guidance 1 never runs the guide`, () => {
      for (const sampler of SAMPLERS) {
        const plain = generate(model, { sampler, labels, steps: 6, seed: 4 }).images;
        expectClose(generate(model, { sampler, labels, guidance: 3, guide: model, steps: 6, seed: 4 }).images, plain,
          { dtype: 'float32', kind: 'samplerReference', scale: new Float64Array(plain.length).fill(maxAbs(plain)) }, `${sampler} guided by itself`);
        expect(generate(model, { sampler, labels, guidance: 1, guide, steps: 6, seed: 4 }).images).toEqual(plain);
      }
    });

    samplerTest(`the guide's half is evaluated only inside the guidance interval, and without labels too`, () => {
      expectSecondHalfInsideInterval(new GuidedNetwork(model, [3, 3, 8, 8], { labels, guidance: 3, guidanceInterval: [0.5, 10], guide }), device);
      // an unconditional model is guided by its guide (classifier-free guidance would have nothing to use)
      const uncond = randomModel(7, { ...CONFIG, num_classes: 0 }), weakUncond = randomModel(8, { ...CONFIG, num_classes: 0 });
      const plain = generate(uncond, { count: 2, steps: 4, seed: 3 }).images;
      const guided = generate(uncond, { count: 2, guidance: 3, guide: weakUncond, steps: 4, seed: 3 }).images;
      expect(maxAbs(guided.map((v, i) => v - plain[i]))).toBeGreaterThan(1e-3);
      uncond.dispose();
      weakUncond.dispose();
    });

    samplerTest(`a guide of other images or conditioning is an error that names what differs`, () => {
      const otherClasses = randomModel(9, { ...CONFIG, num_classes: 5 });
      expect(() => generate(model, { labels, guidance: 2, guide: otherClasses })).toThrow(/'guide' expected a model with the sampled model's num_classes \(3\), received 5/);
      otherClasses.dispose();
      const otherSize = randomModel(9, { ...CONFIG, img_size: 16 });
      expect(() => generate(model, { labels, guidance: 2, guide: otherSize })).toThrow(/'guide' expected a model with the sampled model's img_size \(8\), received 16/);
      otherSize.dispose();
    });
  });
});

// CLI option parsing, no kernel: runs once, not per backend.
test('--guidance-interval LO,HI parses, with inf, and names the flag when it cannot', () => {
  expect(guidanceIntervalOption('sample', '0.3,5')).toEqual([0.3, 5]);
  expect(guidanceIntervalOption('sample', '1, inf')).toEqual([1, Infinity]);
  expect(guidanceIntervalOption('sample', undefined)).toBeUndefined();
  for (const bad of ['5,1', '1', '1,2,3', ',2', 'a,b', '-1,2']) {
    expect(() => guidanceIntervalOption('eval shapes', bad)).toThrow(`diffvit eval shapes: --guidance-interval LO,HI expected two numbers with 0 <= LO < HI (HI may be 'inf'), received '${bad}'`);
  }
});
