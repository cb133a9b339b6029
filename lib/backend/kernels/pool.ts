/**
 * Native entry points of the pool kernel family (native/addon/bind_pool.cpp, native/cpu/simd/pool.cpp):
 * max/avg pooling and bilinear resizing of contiguous NCHW planes, forward only. Offsets are in
 * elements; x and y must not overlap.
 */
import type { DeviceBuffer } from './core.js';

export interface PoolKernels {
  /**
   * y (planes, OH, OW) = the maximum of x (planes, height, width) over each kernelH×kernelW window
   * (stride, -inf padding; NaN propagates). OH = ⌊(height + 2·padH - kernelH) / strideH⌋ + 1, or the
   * ceiling in ceilMode with the last window starting inside the input or its left padding
   * (PyTorch's rule), likewise OW. Requires padH <= kernelH / 2 and padW <= kernelW / 2.
   */
  maxPool2d(args: {
    x: DeviceBuffer; xOffset: number; y: DeviceBuffer; yOffset: number; planes: number; height: number;
    width: number; kernelH: number; kernelW: number; strideH: number; strideW: number; padH: number;
    padW: number; ceilMode: boolean;
  }): void;
  /**
   * y = the mean of each window, same geometry as maxPool2d. countIncludePad divides by the window
   * clipped to the padded input; otherwise by the number of input pixels it covers.
   */
  avgPool2d(args: {
    x: DeviceBuffer; xOffset: number; y: DeviceBuffer; yOffset: number; planes: number; height: number;
    width: number; kernelH: number; kernelW: number; strideH: number; strideW: number; padH: number;
    padW: number; ceilMode: boolean; countIncludePad: boolean;
  }): void;
  /**
   * y (planes, outH, outW) = x (planes, inH, inW) resized bilinearly, as PyTorch's
   * F.interpolate(x, size, mode='bilinear', align_corners) (no antialiasing).
   */
  resizeBilinear(args: {
    x: DeviceBuffer; xOffset: number; y: DeviceBuffer; yOffset: number; planes: number; inH: number;
    inW: number; outH: number; outW: number; alignCorners: boolean;
  }): void;
}
