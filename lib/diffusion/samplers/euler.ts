/** Euler on the probability-flow ODE dx/dσ = (x − D(x; σ))/σ (EDM Algorithm 1 without the 2nd-order step). */
import { axpy, type Denoise, direction, edmSigmas, type StepCallback } from './common.js';

export function eulerSampler(D: Denoise, latents: Float64Array, sigmas: Float64Array = edmSigmas(18), onStep?: StepCallback): Float64Array {
  let x: Float64Array = latents.map((v) => v * sigmas[0]);
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const d = direction(x, D(x, sigmas[i]), sigmas[i]);
    x = axpy(x, sigmas[i + 1] - sigmas[i], d);
    onStep?.(i + 1, sigmas.length - 1, sigmas[i + 1]);
  }
  return x;
}
