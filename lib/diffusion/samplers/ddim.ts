/**
 * Deterministic DDIM (Song et al. 2021, η = 0) on its own time grid: uniformly spaced timesteps of
 * the 1000-step linear-β DDPM schedule (β 1e-4 … 0.02), as σ_t = sqrt(1/ᾱ_t − 1) (EDM Table 1,
 * "VP" column), clipped to [σ_min, σ_max]. In σ-space the update is x' = D + (σ'/σ)(x − D).
 */
import type { Denoise, StepCallback } from './common.js';

export function ddimSigmas(steps: number, sigmaMin = 0.002, sigmaMax = 80): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`diffvit.ddimSigmas: argument 'steps' expected an integer >= 1, received ${steps}`);
  const T = 1000;
  const alphaBar = new Float64Array(T);
  let prod = 1;
  for (let t = 0; t < T; t++) {
    prod *= 1 - (1e-4 + (t / (T - 1)) * (0.02 - 1e-4));
    alphaBar[t] = prod;
  }
  const out = new Float64Array(steps + 1);
  for (let i = 0; i < steps; i++) {
    const t = Math.round(((T - 1) * (steps - 1 - i)) / Math.max(steps - 1, 1));
    out[i] = Math.min(sigmaMax, Math.max(sigmaMin, Math.sqrt(1 / alphaBar[t] - 1)));
  }
  out[steps] = 0;
  return out;
}

export function ddimSampler(D: Denoise, latents: Float64Array, sigmas: Float64Array = ddimSigmas(50), onStep?: StepCallback): Float64Array {
  let x: Float64Array = latents.map((v) => v * sigmas[0]);
  for (let i = 0; i + 1 < sigmas.length; i++) {
    const denoised = D(x, sigmas[i]);
    const ratio = sigmas[i + 1] / sigmas[i];
    const next = new Float64Array(x.length);
    for (let k = 0; k < x.length; k++) next[k] = denoised[k] + ratio * (x[k] - denoised[k]);
    x = next;
    onStep?.(i + 1, sigmas.length - 1, sigmas[i + 1]);
  }
  return x;
}
