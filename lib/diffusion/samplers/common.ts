/**
 * What the samplers share: the EDM time steps, the network wrapper (GuidedNetwork: c_in scaling
 * and classifier-free guidance in one batch), and a progress callback.
 */

/**
 * D(x; σ) on the whole batch, float64 on the host in and out (GuidedNetwork.denoise): a float64
 * reference for tests. The samplers do not use it: they keep their state on the device.
 */
export type Denoise = (x: Float64Array, sigma: number) => Float64Array;

/**
 * Optional per-step hook (progress bars, step pictures). `batch`: the sampling batch the step
 * belongs to (generate's batchSize; 0 for the samplers called directly).
 */
export type StepCallback = (step: number, steps: number, sigma: number, batch?: number) => void;

/**
 * EDM eq. 5: σ_i = (σ_max^(1/ρ) + i/(N−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ for i < N, and σ_N = 0.
 */
export function edmSigmas(steps: number, sigmaMin = 0.002, sigmaMax = 80, rho = 7): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`diffvit.edmSigmas: argument 'steps' expected an integer >= 1, received ${steps}`);
  if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) throw new Error(`diffvit.edmSigmas: expected 0 < sigmaMin < sigmaMax, received ${sigmaMin}, ${sigmaMax}`);
  const t = new Float64Array(steps + 1);
  const a = sigmaMax ** (1 / rho), b = sigmaMin ** (1 / rho);
  for (let i = 0; i < steps; i++) t[i] = (a + (steps === 1 ? 0 : i / (steps - 1)) * (b - a)) ** rho;
  t[steps] = 0;
  return t;
}
