/**
 * Euler on the probability-flow ODE dx/dσ = (x − D(x; σ))/σ (EDM Algorithm 1 without the
 * 2nd-order step), each step one fused kernel: D from F, the guidance mix and the update. Each
 * step is a profiler range `step <i>` (lib/profiler).
 */
import { mulScalar } from '../../ops/elementwise.js';
import { edmSamplerUpdate } from '../../ops/edm.js';
import { range } from '../../profiler/range.js';
import { keep, scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { GuidedNetwork } from '../guidance.js';
import { edmSigmas, type StepCallback } from './common.js';

export function eulerSampler(net: GuidedNetwork, latents: Tensor, sigmas: Float64Array = edmSigmas(18), onStep?: StepCallback): Tensor {
  let x = keep(mulScalar(latents, sigmas[0]));
  for (let i = 0; i + 1 < sigmas.length; i++) {
    range(`step ${i}`, () => {
      const next = scope(() => {
        const F = net.evaluate(x, sigmas[i]);
        return edmSamplerUpdate({ F, x, sigma: sigmas[i], guidance: net.guidanceAt(sigmas[i]), base: x, h: sigmas[i + 1] - sigmas[i] }).xNext;
      });
      x.dispose();
      x = keep(next);
    });
    onStep?.(i + 1, sigmas.length - 1, sigmas[i + 1]);
  }
  return x;
}
