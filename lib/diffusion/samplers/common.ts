/**
 * What every sampler shares: the state x in float64 (as EDM's generate.py keeps it), a denoiser
 * callback D(x; σ) that already applies classifier-free guidance, and the EDM time steps.
 */

/** D(x; σ) on the whole batch, float64 in and out. */
export type Denoise = (x: Float64Array, sigma: number) => Float64Array;

/** Optional per-step hook (progress bars, step pictures). */
export type StepCallback = (step: number, steps: number, sigma: number) => void;

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

/** x + h·d elementwise (float64). */
export function axpy(x: Float64Array, h: number, d: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] + h * d[i];
  return out;
}

/** The ODE direction d = (x − D(x; σ))/σ. */
export function direction(x: Float64Array, denoised: Float64Array, sigma: number): Float64Array {
  const d = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) d[i] = (x[i] - denoised[i]) / sigma;
  return d;
}
