/**
 * EDM's stochastic Heun sampler (Algorithm 2). With churn = 0 (the default) it is the deterministic
 * 2nd-order sampler: 18 steps = 35 evaluations of D. Each Euler step and each 2nd-order correction
 * is one fused kernel (D from F, guidance mix, update). Each step (both evaluations) is a profiler
 * range `step <i>` (lib/profiler).
 */
import { randn } from '../../ops/creation.js';
import { add, mulScalar } from '../../ops/elementwise.js';
import { edmSamplerUpdate } from '../../ops/edm.js';
import type { Generator } from '../../tensor/random.js';
import { range } from '../../profiler/range.js';
import { keep, scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { GuidedNetwork } from '../guidance.js';
import { edmSigmas, type StepCallback } from './common.js';

export interface HeunOptions {
  /** S_churn: total noise added back (0 = deterministic). */
  churn?: number;
  sMin?: number;
  sMax?: number;
  sNoise?: number;
  /** Source of the churn noise. */
  generator?: Generator;
}

export function heunSampler(net: GuidedNetwork, latents: Tensor, sigmas: Float64Array = edmSigmas(18), options: HeunOptions = {}, onStep?: StepCallback): Tensor {
  const churn = options.churn ?? 0, sMin = options.sMin ?? 0, sMax = options.sMax ?? Infinity, sNoise = options.sNoise ?? 1;
  const N = sigmas.length - 1;
  if (churn > 0 && !options.generator) throw new Error("diffvit.heunSampler: argument 'generator' expected a noise source when churn > 0, received none");
  let x = keep(mulScalar(latents, sigmas[0]));
  for (let i = 0; i < N; i++) {
    const tCur = sigmas[i], tNext = sigmas[i + 1];
    range(`step ${i}`, () => {
      const next = scope(() => {
        // Alg. 2 lines 4-6: raise the noise level temporarily to t_hat.
        const gamma = churn > 0 && tCur >= sMin && tCur <= sMax ? Math.min(churn / N, Math.SQRT2 - 1) : 0;
        const tHat = tCur + gamma * tCur;
        const xHat = gamma > 0 ? add(x, mulScalar(randn(x.shape, { generator: options.generator, device: x.device }), Math.sqrt(tHat * tHat - tCur * tCur) * sNoise)) : x;
        // Euler step (line 8), then the 2nd-order correction unless stepping to σ = 0 (lines 9-11).
        const euler = edmSamplerUpdate({ F: net.evaluate(xHat, tHat), x: xHat, sigma: tHat, guidance: net.guidanceAt(tHat), base: xHat, h: tNext - tHat });
        if (i === N - 1) return euler.xNext;
        const F2 = net.evaluate(euler.xNext, tNext);
        return edmSamplerUpdate({ F: F2, x: euler.xNext, sigma: tNext, guidance: net.guidanceAt(tNext), base: xHat, h: tNext - tHat, dPrev: euler.d, a: 0.5, b: 0.5 }).xNext;
      });
      x.dispose();
      x = keep(next);
    });
    onStep?.(i + 1, N, tNext);
  }
  return x;
}
