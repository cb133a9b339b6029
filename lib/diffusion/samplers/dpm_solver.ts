/**
 * DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) for x-prediction with α = 1, σ(t) = t:
 * λ = −ln σ, h_i = λ_{i+1} − λ_i, x_{i+1} = (σ_{i+1}/σ_i)·x_i − (e^{−h_i} − 1)·D̂_i, where
 * D̂_i = (1 + 1/(2r_i))·D_i − 1/(2r_i)·D_{i−1}, r_i = h_{i−1}/h_i (first order on the first step
 * and on the final step to σ = 0, where the update is x = D).
 *
 * Everything stays on the latents' device, in float32: D_i comes out of the fused sampler kernel
 * (the guidance mix and an Euler step to σ = 0, x − σ·d), and the update is two in-place axpby
 * passes; the coefficients are float64 scalars. Each step is a profiler range `step <i>` (lib/profiler).
 */
import { mulScalar } from '../../ops/elementwise.js';
import { edmSamplerUpdate } from '../../ops/edm.js';
import { axpby_ } from '../../ops/inplace.js';
import { range } from '../../profiler/range.js';
import { keep, scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { GuidedNetwork } from '../guidance.js';
import { edmSigmas, type StepCallback } from './common.js';

export function dpmSolver2M(net: GuidedNetwork, latents: Tensor, sigmas: Float64Array = edmSigmas(18), onStep?: StepCallback): Tensor {
  let x = keep(mulScalar(latents, sigmas[0]));
  // D_{i−1}: the previous step's denoised images (null on the first step).
  let previous = null as Tensor | null; // (assigned in the step ranges' closures)
  let hPrev = 0;
  const N = sigmas.length - 1;
  try {
    for (let i = 0; i < N; i++) {
      const sigma = sigmas[i], next = sigmas[i + 1];
      range(`step ${i}`, () => {
        // D_i(x) = x + (0 − σ)·d, d = (x − D_w)/σ: the fused update with h = −σ.
        const denoised = keep(scope(() =>
          edmSamplerUpdate({ F: net.evaluate(x, sigma), x, sigma, guidance: net.guidanceAt(sigma), base: x, h: -sigma }).xNext));
        if (next === 0) {
          x.dispose();
          x = denoised;
          previous?.dispose();
          previous = null;
        } else {
          const h = Math.log(sigma) - Math.log(next);
          const ratio = next / sigma;
          const expm = Math.expm1(-h); // e^{−h} − 1
          if (!previous) {
            axpby_(x, denoised, ratio, -expm); // x = ratio·x − expm·D
          } else {
            const r = hPrev / h;
            const a = 1 + 1 / (2 * r), b = 1 / (2 * r);
            axpby_(previous, denoised, expm * b, -expm * a); // −expm·D̂ = −expm·(a·D − b·D_prev), into D_prev's storage
            axpby_(x, previous, ratio, 1); // x = ratio·x − expm·D̂
            previous.dispose();
          }
          previous = denoised;
          hPrev = h;
        }
      });
      onStep?.(i + 1, N, next);
    }
  } catch (e) {
    x.dispose();
    previous?.dispose();
    throw e;
  }
  previous?.dispose();
  return x;
}
