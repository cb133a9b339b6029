/**
 * Native entry points of the conv kernel family (native/addon/bind_conv.cpp, native/cpu/simd/conv.cpp)
 * and of the embedding gather/scatter (native/addon/bind_embedding.cpp, native/cpu/embedding.cpp).
 * Offsets are in elements.
 */
import type { DeviceBuffer } from './core.js';

export interface ConvKernels {
  /**
   * cols (batch, channels·kernelH·kernelW, OH·OW) from x (batch, channels, height, width), NCHW:
   * row (c, i, j), column (oh, ow) = x[n, c, oh·strideH - padH + i, ow·strideW - padW + j], 0 in
   * the zero padding. OH = (height + 2·padH - kernelH) / strideH + 1 (floor), likewise OW.
   */
  im2col(args: {
    x: DeviceBuffer; xOffset: number; cols: DeviceBuffer; colsOffset: number; batch: number; channels: number;
    height: number; width: number; kernelH: number; kernelW: number; strideH: number; strideW: number;
    padH: number; padW: number;
  }): void;
  /**
   * The adjoint of im2col: x (batch, channels, height, width) = the sum of the cols entries read
   * from each pixel (x is overwritten). Deterministic for any thread count.
   */
  col2im(args: {
    cols: DeviceBuffer; colsOffset: number; x: DeviceBuffer; xOffset: number; batch: number; channels: number;
    height: number; width: number; kernelH: number; kernelW: number; strideH: number; strideW: number;
    padH: number; padW: number;
  }): void;
  /**
   * out (...indicesShape, dim) = table (rows, dim) gathered at the int32 indices (contiguous). Every
   * index is checked to lie in [0, rows) before anything is written.
   */
  embedding(args: {
    table: DeviceBuffer; tableOffset: number; rows: number; dim: number; indices: DeviceBuffer;
    indicesOffset: number; indicesShape: number[]; out: DeviceBuffer; outOffset: number;
  }): void;
  /**
   * dtable (rows, dim) = 0, then dtable[indices[k]] += dy[k] for every k in index order (repeated
   * indices add up); dy is (...indicesShape, dim). Indices are checked as in embedding().
   */
  embeddingBackward(args: {
    dy: DeviceBuffer; dyOffset: number; indices: DeviceBuffer; indicesOffset: number; indicesShape: number[];
    dtable: DeviceBuffer; dtableOffset: number; rows: number; dim: number;
  }): void;
}
