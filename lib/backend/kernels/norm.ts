/** Native entry points of the norm kernel family (native/addon/bind_norm.cpp, native/cpu/simd/norm.cpp). */
import type { DeviceBuffer } from './core.js';

export interface NormKernels {
  /**
   * y = softmax of x over the middle axis of a contiguous (outer, n, inner) layout, stabilised by
   * the max; inner = 1 is softmax over the last axis.
   */
  softmax(args: {
    x: DeviceBuffer; xOffset: number; y: DeviceBuffer; yOffset: number; outer: number; n: number;
    inner: number;
  }): void;
  /** dx = y * (dy - sum_n(dy * y)) over the same (outer, n, inner) layout; y is softmax's output. */
  softmaxBackward(args: {
    y: DeviceBuffer; yOffset: number; dy: DeviceBuffer; dyOffset: number; dx: DeviceBuffer; dxOffset: number;
    outer: number; n: number; inner: number;
  }): void;
  /**
   * y = (x - mean) * rstd [* weight] [+ bias] over rows of a contiguous (rows, cols) x, with
   * rstd = 1 / sqrt(biased var + eps). weight/bias (cols) may be null (no affine). When given,
   * mean and rstd (rows) receive the row statistics for the backward.
   */
  layerNorm(args: {
    x: DeviceBuffer; xOffset: number; weight: DeviceBuffer | null; weightOffset: number;
    bias: DeviceBuffer | null; biasOffset: number; y: DeviceBuffer; yOffset: number; mean: DeviceBuffer | null;
    meanOffset: number; rstd: DeviceBuffer | null; rstdOffset: number; rows: number; cols: number; eps: number;
  }): void;
  /**
   * Gradients of layerNorm from its saved mean/rstd: dx (rows, cols), dweight and dbias (cols),
   * each null when not wanted; dweight/dbias are overwritten, summed over rows in an order that does
   * not depend on the thread count. weight null = no affine.
   */
  layerNormBackward(args: {
    x: DeviceBuffer; xOffset: number; weight: DeviceBuffer | null; weightOffset: number; mean: DeviceBuffer;
    meanOffset: number; rstd: DeviceBuffer; rstdOffset: number; dy: DeviceBuffer; dyOffset: number;
    dx: DeviceBuffer | null; dxOffset: number; dweight: DeviceBuffer | null; dweightOffset: number;
    dbias: DeviceBuffer | null; dbiasOffset: number; rows: number; cols: number;
  }): void;
}
