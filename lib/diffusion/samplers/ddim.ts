/**
 * Deterministic DDIM (Song et al. 2021, η = 0) on its own time grid: uniformly spaced timesteps of
 * the 1000-step linear-β DDPM schedule (β 1e-4 … 0.02), as σ_t = sqrt(1/ᾱ_t − 1) (EDM Table 1,
 * "VP" column), clipped to [σ_min, σ_max]. In σ-space its update x' = D + (σ'/σ)(x − D) is exactly
 * an Euler step, so it runs on the fused Euler kernel.
 */
import type { Tensor } from '../../tensor/tensor.js';
import type { GuidedNetwork } from '../guidance.js';
import type { StepCallback } from './common.js';
import { eulerSampler } from './euler.js';

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

export function ddimSampler(net: GuidedNetwork, latents: Tensor, sigmas: Float64Array = ddimSigmas(50), onStep?: StepCallback): Tensor {
  return eulerSampler(net, latents, sigmas, onStep);
}
