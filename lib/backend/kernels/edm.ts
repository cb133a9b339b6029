/** Native entry points of the fused EDM step (native/addon/bind_edm.cpp, native/cpu/edm.cpp). */
import type { NativeBuffer } from './core.js';

export interface EdmKernels {
  /** x_noisy = y + σ·n (n from Philox(seed) at counter + i), x_in = c_in(σ)·x_noisy. */
  edmNoise(y: NativeBuffer, yOffset: number, sigma: NativeBuffer, sigmaOffset: number, batch: number, per: number,
    seed: number, counter: number, sigmaData: number, xNoisy: NativeBuffer, xIn: NativeBuffer): void;
  /** Mean of λ(σ)(c_skip·x_noisy + c_out·F − y)²; writes d(loss)/dF. */
  edmLoss(F: NativeBuffer, FOffset: number, xNoisy: NativeBuffer, y: NativeBuffer, yOffset: number, sigma: NativeBuffer,
    sigmaOffset: number, batch: number, per: number, sigmaData: number, dF: NativeBuffer): number;
  /** D from F (guidance-mixed when guided), d = (x − D)/σ, x_next = base + h(a·dPrev + b·d). */
  edmSamplerStep(F: NativeBuffer, x: NativeBuffer, base: NativeBuffer, dPrev: NativeBuffer | null, dOut: NativeBuffer,
    xNext: NativeBuffer, batch: number, per: number, guided: boolean, guidance: number, sigma: number, sigmaData: number,
    h: number, a: number, b: number): void;
}
