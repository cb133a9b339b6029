/** Native entry points of the fused EDM step (native/addon/bind_edm.cpp, native/cpu/edm.cpp). */
import type { DeviceBuffer } from './core.js';

export interface EdmKernels {
  /**
   * x_noisy = y + σ·n (n from Philox(seed) at counter + i), x_in = c_in(σ)·x_noisy. With drawSigma
   * it first writes the training noise levels into sigma: σ_b = exp(pMean + pStd·z_b), z_b from
   * Philox(seed) at sigmaCounter + b, in float64 rounded to float32 (else sigma is read and the three
   * are ignored). cNoise (optional) receives c_noise = ln(σ)/4 per image.
   */
  edmNoise(args: {
    y: DeviceBuffer; yOffset: number; sigma: DeviceBuffer; sigmaOffset: number; batch: number; per: number;
    seed: number; counter: number; sigmaData: number; xNoisy: DeviceBuffer; xIn: DeviceBuffer;
    drawSigma: boolean; sigmaCounter: number; pMean: number; pStd: number; cNoise: DeviceBuffer | null; cNoiseOffset: number;
  }): void;
  /**
   * Mean of λ(σ)(c_skip·x_noisy + c_out·F − y)², accumulated in float64 and stored as float32 at
   * loss[lossOffset] (on the device: nothing is read back); writes d(loss)/dF.
   */
  edmLoss(args: {
    F: DeviceBuffer; FOffset: number; xNoisy: DeviceBuffer; y: DeviceBuffer; yOffset: number;
    sigma: DeviceBuffer; sigmaOffset: number; batch: number; per: number; sigmaData: number; dF: DeviceBuffer;
    loss: DeviceBuffer; lossOffset: number;
  }): void;
  /** D from F (guidance-mixed when guided), d = (x − D)/σ, x_next = base + h(a·dPrev + b·d). */
  edmSamplerStep(args: {
    F: DeviceBuffer; x: DeviceBuffer; base: DeviceBuffer; dPrev: DeviceBuffer | null; dOut: DeviceBuffer;
    xNext: DeviceBuffer; batch: number; per: number; guided: boolean; guidance: number; sigma: number;
    sigmaData: number; h: number; a: number; b: number;
  }): void;
}
