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
  /**
   * GroupNorm over x (batch, channels, spatial), contiguous: each item's channels fall in `groups`
   * groups of channels/groups (channels a multiple of groups), normalised over the group's
   * channels and pixels (biased variance), then an affine per item and channel and optionally
   * SiLU: y[b, c, :] = act(xh · scale[b·scaleStride + c] + shift[b·shiftStride + c]). scale null
   * = 1, shift null = 0; a stride of 0 broadcasts one row of `channels` (GroupNorm's weight/bias),
   * `channels` per item gives an adaptive scale/shift. mean and rstd (batch · groups) receive the
   * group statistics when given.
   */
  groupNorm(args: {
    x: DeviceBuffer; xOffset: number; scale: DeviceBuffer | null; scaleOffset: number; scaleStride: number;
    shift: DeviceBuffer | null; shiftOffset: number; shiftStride: number; y: DeviceBuffer; yOffset: number;
    mean: DeviceBuffer | null; meanOffset: number; rstd: DeviceBuffer | null; rstdOffset: number; batch: number;
    channels: number; groups: number; spatial: number; eps: number; silu: boolean;
  }): void;
  /**
   * Gradients of groupNorm from its saved mean/rstd, with g = dy · act'(xh · scale + shift):
   * dshift (batch, channels) = Σ_pixels g, dscale (batch, channels) = Σ_pixels g · xh, and dx
   * (batch, channels, spatial); each null when not wanted, overwritten. The same scale, shift and
   * silu as the forward.
   */
  groupNormBackward(args: {
    x: DeviceBuffer; xOffset: number; scale: DeviceBuffer | null; scaleOffset: number; scaleStride: number;
    shift: DeviceBuffer | null; shiftOffset: number; shiftStride: number; mean: DeviceBuffer; meanOffset: number;
    rstd: DeviceBuffer; rstdOffset: number; dy: DeviceBuffer; dyOffset: number; dx: DeviceBuffer | null;
    dxOffset: number; dscale: DeviceBuffer | null; dscaleOffset: number; dshift: DeviceBuffer | null;
    dshiftOffset: number; batch: number; channels: number; groups: number; spatial: number; silu: boolean;
  }): void;
}
