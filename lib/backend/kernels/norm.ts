/** Native entry points of the norm kernel family (native/addon/bind_norm.cpp, native/cpu/simd/norm.cpp). */
import type { NativeBuffer } from './core.js';

export interface NormKernels {
  /**
   * y = softmax of x over the middle axis of a contiguous (outer, n, inner) layout, stabilised by
   * the max; inner = 1 is softmax over the last axis.
   */
  softmax(x: NativeBuffer, xOffset: number, y: NativeBuffer, yOffset: number, outer: number, n: number,
    inner: number): void;
  /** dx = y * (dy - sum_n(dy * y)) over the same (outer, n, inner) layout; y is softmax's output. */
  softmaxBackward(y: NativeBuffer, yOffset: number, dy: NativeBuffer, dyOffset: number, dx: NativeBuffer,
    dxOffset: number, outer: number, n: number, inner: number): void;
  /**
   * y = (x - mean) * rstd [* weight] [+ bias] over rows of a contiguous (rows, cols) x, with
   * rstd = 1 / sqrt(biased var + eps). weight/bias (cols) may be null (no affine). When given,
   * mean and rstd (rows) receive the row statistics for the backward.
   */
  layerNorm(x: NativeBuffer, xOffset: number, weight: NativeBuffer | null, weightOffset: number,
    bias: NativeBuffer | null, biasOffset: number, y: NativeBuffer, yOffset: number, mean: NativeBuffer | null,
    meanOffset: number, rstd: NativeBuffer | null, rstdOffset: number, rows: number, cols: number, eps: number): void;
  /**
   * Gradients of layerNorm from its saved mean/rstd: dx (rows, cols), dweight and dbias (cols),
   * each null when not wanted; dweight/dbias are overwritten, summed over rows in an order that does
   * not depend on the thread count. weight null = no affine.
   */
  layerNormBackward(x: NativeBuffer, xOffset: number, weight: NativeBuffer | null, weightOffset: number,
    mean: NativeBuffer, meanOffset: number, rstd: NativeBuffer, rstdOffset: number, dy: NativeBuffer,
    dyOffset: number, dx: NativeBuffer | null, dxOffset: number, dweight: NativeBuffer | null, dweightOffset: number,
    dbias: NativeBuffer | null, dbiasOffset: number, rows: number, cols: number): void;
}
