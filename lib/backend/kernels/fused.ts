/**
 * Native entry points of the fused transformer-block kernels (native/addon/bind_fused.cpp,
 * native/cpu/simd/fused.cpp) and of the GEMM with a bias/activation epilogue (native/cpu/simd/gemm.cpp).
 * Activations are contiguous (batch, tokens, cols); the per-batch-item vectors (shift, scale, gate)
 * are `batch` rows of `cols` floats, `stride` elements apart (adaLN's column slices, read in place).
 */
import type { NativeBuffer } from './core.js';

/** The activation a GEMM epilogue applies. */
export type EpilogueAct = 'none' | 'gelu_tanh';

export interface FusedKernels {
  /**
   * y = (x - mean) * rstd * (1 + scale[b]) + shift[b] over the rows of x (no affine LayerNorm then
   * adaLN modulation, one pass), rstd = 1 / sqrt(biased var + eps). mean and rstd (batch * tokens)
   * receive the row statistics when given.
   */
  layerNormModulate(x: NativeBuffer, xOffset: number, shift: NativeBuffer, shiftOffset: number, shiftStride: number,
    scale: NativeBuffer, scaleOffset: number, scaleStride: number, y: NativeBuffer, yOffset: number,
    mean: NativeBuffer | null, meanOffset: number, rstd: NativeBuffer | null, rstdOffset: number, batch: number,
    tokens: number, cols: number, eps: number): void;
  /**
   * Gradients of layerNormModulate from its saved mean/rstd, in one pass: dx (batch, tokens, cols),
   * dshift = sum over tokens of dy and dscale = sum over tokens of dy * xh (batch, cols), each null when
   * not wanted; the sums do not depend on the thread count.
   */
  layerNormModulateBackward(x: NativeBuffer, xOffset: number, scale: NativeBuffer, scaleOffset: number,
    scaleStride: number, mean: NativeBuffer, meanOffset: number, rstd: NativeBuffer, rstdOffset: number,
    dy: NativeBuffer, dyOffset: number, dx: NativeBuffer | null, dxOffset: number, dshift: NativeBuffer | null,
    dshiftOffset: number, dscale: NativeBuffer | null, dscaleOffset: number, batch: number, tokens: number,
    cols: number): void;
  /** out = x + gate[b] * y (gated residual). */
  addGated(x: NativeBuffer, xOffset: number, gate: NativeBuffer, gateOffset: number, gateStride: number,
    y: NativeBuffer, yOffset: number, out: NativeBuffer, outOffset: number, batch: number, tokens: number,
    cols: number): void;
  /** dy = gate[b] * dout and dgate[b] = sum over tokens of y * dout, each null when not wanted. */
  addGatedBackward(gate: NativeBuffer, gateOffset: number, gateStride: number, y: NativeBuffer, yOffset: number,
    dout: NativeBuffer, doutOffset: number, dy: NativeBuffer | null, dyOffset: number, dgate: NativeBuffer | null,
    dgateOffset: number, batch: number, tokens: number, cols: number): void;
  /**
   * out (rows, outFeatures) = act(x Wᵀ + bias): x (rows, inFeatures) contiguous, W (outFeatures,
   * inFeatures) with rows ldw apart, or stored transposed when weightTransposed; bias (outFeatures) or
   * null. pre, when given, receives x Wᵀ + bias before the activation. The bias and activation run as the
   * GEMM's epilogue on each output tile while it is in cache.
   */
  linearAct(x: NativeBuffer, xOffset: number, weight: NativeBuffer, weightOffset: number, weightTransposed: boolean,
    ldw: number, bias: NativeBuffer | null, biasOffset: number, out: NativeBuffer, outOffset: number,
    pre: NativeBuffer | null, preOffset: number, rows: number, outFeatures: number, inFeatures: number,
    act: EpilogueAct): void;
  /** dh = dout * gelu_tanh'(h) over (rows, cols) and dbias = sum over rows of dh (null: not wanted), one pass. */
  geluBackwardBias(h: NativeBuffer, hOffset: number, dout: NativeBuffer, doutOffset: number, dh: NativeBuffer,
    dhOffset: number, dbias: NativeBuffer | null, dbiasOffset: number, rows: number, cols: number): void;
}
