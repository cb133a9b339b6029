/**
 * EDM's stochastic Heun sampler (Algorithm 2). With churn = 0 (the default) it is the deterministic
 * 2nd-order sampler: 18 steps = 35 evaluations of D.
 */
import { axpy, type Denoise, direction, edmSigmas, type StepCallback } from './common.js';

export interface HeunOptions {
  /** S_churn: total noise added back (0 = deterministic). */
  churn?: number;
  sMin?: number;
  sMax?: number;
  sNoise?: number;
  /** Standard-normal draws of the latents' size, for churn noise. */
  noise?: () => Float64Array;
}

export function heunSampler(D: Denoise, latents: Float64Array, sigmas: Float64Array = edmSigmas(18), options: HeunOptions = {}, onStep?: StepCallback): Float64Array {
  const churn = options.churn ?? 0, sMin = options.sMin ?? 0, sMax = options.sMax ?? Infinity, sNoise = options.sNoise ?? 1;
  const N = sigmas.length - 1;
  if (churn > 0 && !options.noise) throw new Error("diffvit.heunSampler: argument 'noise' expected a noise source when churn > 0, received none");
  let x: Float64Array = latents.map((v) => v * sigmas[0]);
  for (let i = 0; i < N; i++) {
    const tCur = sigmas[i], tNext = sigmas[i + 1];
    // Alg. 2 lines 4-6: raise the noise level temporarily to t_hat.
    const gamma = churn > 0 && tCur >= sMin && tCur <= sMax ? Math.min(churn / N, Math.SQRT2 - 1) : 0;
    const tHat = tCur + gamma * tCur;
    let xHat: Float64Array = x;
    if (gamma > 0) xHat = axpy(x, Math.sqrt(tHat * tHat - tCur * tCur) * sNoise, options.noise!());
    // Euler step (line 8), then the 2nd-order correction unless stepping to σ = 0 (lines 9-11).
    const d = direction(xHat, D(xHat, tHat), tHat);
    let xNext: Float64Array = axpy(xHat, tNext - tHat, d);
    if (i < N - 1) {
      const d2 = direction(xNext, D(xNext, tNext), tNext);
      for (let k = 0; k < d.length; k++) d[k] = 0.5 * d[k] + 0.5 * d2[k];
      xNext = axpy(xHat, tNext - tHat, d);
    }
    x = xNext;
    onStep?.(i + 1, N, tNext);
  }
  return x;
}
