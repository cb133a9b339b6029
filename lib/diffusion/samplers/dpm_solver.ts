/**
 * DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) for x-prediction with α = 1, σ(t) = t:
 * λ = −ln σ, h_i = λ_{i+1} − λ_i, x_{i+1} = (σ_{i+1}/σ_i)·x_i − (e^{−h_i} − 1)·D̂_i, where
 * D̂_i = (1 + 1/(2r_i))·D_i − 1/(2r_i)·D_{i−1}, r_i = h_{i−1}/h_i (first order on the first step
 * and on the final step to σ = 0, where the update is x = D). State kept in float64.
 */
import { type Denoise, edmSigmas, type StepCallback } from './common.js';

export function dpmSolver2M(D: Denoise, latents: Float64Array, sigmas: Float64Array = edmSigmas(18), onStep?: StepCallback): Float64Array {
  let x: Float64Array = latents.map((v) => v * sigmas[0]);
  let previous: Float64Array | null = null;
  let hPrev = 0;
  const N = sigmas.length - 1;
  for (let i = 0; i < N; i++) {
    const denoised = D(x, sigmas[i]);
    if (sigmas[i + 1] === 0) {
      x = denoised;
    } else {
      const h = Math.log(sigmas[i]) - Math.log(sigmas[i + 1]);
      const ratio = sigmas[i + 1] / sigmas[i];
      const expm = Math.expm1(-h); // e^{−h} − 1
      const next = new Float64Array(x.length);
      if (!previous) {
        for (let k = 0; k < x.length; k++) next[k] = ratio * x[k] - expm * denoised[k];
      } else {
        const r = hPrev / h;
        const a = 1 + 1 / (2 * r), b = 1 / (2 * r);
        for (let k = 0; k < x.length; k++) next[k] = ratio * x[k] - expm * (a * denoised[k] - b * previous[k]);
      }
      x = next;
      hPrev = h;
    }
    previous = denoised;
    onStep?.(i + 1, N, sigmas[i + 1]);
  }
  return x;
}
