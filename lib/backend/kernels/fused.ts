/**
 * Native entry points of the fused transformer-block kernels (native/addon/bind_fused.cpp,
 * native/cpu/simd/fused.cpp) and of the GEMM with a bias/activation epilogue (native/cpu/simd/gemm.cpp).
 * Activations are contiguous (batch, tokens, cols); the per-batch-item vectors (shift, scale, gate)
 * are `batch` rows of `cols` floats, `stride` elements apart (adaLN's column slices, read in place).
 */
import type { DeviceBuffer } from './core.js';
import type { MatmulPrecision } from './gemm.js';

/** The activation a GEMM epilogue applies. */
export type EpilogueAct = 'none' | 'gelu_tanh';

export interface FusedKernels {
  /**
   * y = (x - mean) * rstd * (1 + scale[b]) + shift[b] over the rows of x (no affine LayerNorm then
   * adaLN modulation, one pass), rstd = 1 / sqrt(biased var + eps). mean and rstd (batch * tokens)
   * receive the row statistics when given.
   */
  layerNormModulate(args: {
    x: DeviceBuffer; xOffset: number; shift: DeviceBuffer; shiftOffset: number; shiftStride: number;
    scale: DeviceBuffer; scaleOffset: number; scaleStride: number; y: DeviceBuffer; yOffset: number;
    mean: DeviceBuffer | null; meanOffset: number; rstd: DeviceBuffer | null; rstdOffset: number;
    batch: number; tokens: number; cols: number; eps: number;
  }): void;
  /**
   * Gradients of layerNormModulate from its saved mean/rstd, in one pass: dx (batch, tokens, cols),
   * dshift = sum over tokens of dy and dscale = sum over tokens of dy * xh (batch, cols), each null when
   * not wanted; the sums do not depend on the thread count.
   */
  layerNormModulateBackward(args: {
    x: DeviceBuffer; xOffset: number; scale: DeviceBuffer; scaleOffset: number; scaleStride: number;
    mean: DeviceBuffer; meanOffset: number; rstd: DeviceBuffer; rstdOffset: number; dy: DeviceBuffer;
    dyOffset: number; dx: DeviceBuffer | null; dxOffset: number; dshift: DeviceBuffer | null;
    dshiftOffset: number; dscale: DeviceBuffer | null; dscaleOffset: number; batch: number; tokens: number;
    cols: number;
  }): void;
  /** out = x + gate[b] * y (gated residual). */
  addGated(args: {
    x: DeviceBuffer; xOffset: number; gate: DeviceBuffer; gateOffset: number; gateStride: number;
    y: DeviceBuffer; yOffset: number; out: DeviceBuffer; outOffset: number; batch: number; tokens: number;
    cols: number;
  }): void;
  /** dy = gate[b] * dout and dgate[b] = sum over tokens of y * dout, each null when not wanted. */
  addGatedBackward(args: {
    gate: DeviceBuffer; gateOffset: number; gateStride: number; y: DeviceBuffer; yOffset: number;
    dout: DeviceBuffer; doutOffset: number; dy: DeviceBuffer | null; dyOffset: number;
    dgate: DeviceBuffer | null; dgateOffset: number; batch: number; tokens: number; cols: number;
  }): void;
  /**
   * out (rows, outFeatures) = act(x Wᵀ + bias): x (rows, inFeatures) contiguous, W (outFeatures,
   * inFeatures) with rows ldw apart, or stored transposed when weightTransposed; bias (outFeatures) or
   * null. pre, when given, receives x Wᵀ + bias before the activation. The bias and activation run as the
   * GEMM's epilogue on each output tile while it is in cache.
   */
  linearAct(args: {
    x: DeviceBuffer; xOffset: number; weight: DeviceBuffer; weightOffset: number; weightTransposed: boolean;
    ldw: number; bias: DeviceBuffer | null; biasOffset: number; out: DeviceBuffer; outOffset: number;
    pre: DeviceBuffer | null; preOffset: number; rows: number; outFeatures: number; inFeatures: number;
    act: EpilogueAct; precision: MatmulPrecision;
  }): void;
  /** dh = dout * gelu_tanh'(h) over (rows, cols) and dbias = sum over rows of dh (null: not wanted), one pass. */
  geluBackwardBias(args: {
    h: DeviceBuffer; hOffset: number; dout: DeviceBuffer; doutOffset: number; dh: DeviceBuffer;
    dhOffset: number; dbias: DeviceBuffer | null; dbiasOffset: number; rows: number; cols: number;
  }): void;
}
