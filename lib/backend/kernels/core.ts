/** Buffers and the elementwise kernels (native/addon/bind_elementwise.cpp, bind_reduce.cpp). */

export type NativeDType = 'float32' | 'int32';

/**
 * A typed block of one device's memory, made by that device's Backend (lib/backend/backend.ts).
 * Tensors are views over one; kernels take buffers plus element offsets.
 */
export interface DeviceBuffer {
  /** The device string of the backend that owns it ('cpu', 'cuda:0', ...). */
  readonly device: string;
  readonly dtype: NativeDType;
  readonly numel: number;
  readonly disposed: boolean;
  dispose(): void;
}

/**
 * The addon's buffer (native/addon/buffer_object.cpp): host memory ('cpu') or the CUDA device's
 * ('cuda:0'); read and write copy to and from the host (waiting for the device).
 */
export interface NativeBuffer extends DeviceBuffer {
  readonly device: 'cpu' | 'cuda:0';
  read(offset: number, count: number): Float32Array | Int32Array;
  write(offset: number, data: Float32Array | Int32Array): void;
}

export type UnaryOpName =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'silu' | 'gelu_tanh' | 'affine' | 'square' | 'abs' | 'relu'
  | 'tanh' | 'sigmoid' | 'pow' | 'reciprocal' | 'sin' | 'cos';
export type BinaryOpName = 'add' | 'sub' | 'mul' | 'div';

export interface CoreKernels {
  fill(args: {
    out: DeviceBuffer; offset: number; n: number; value: number;
  }): void;
  copyStrided(args: {
    src: DeviceBuffer; srcOffset: number; srcStrides: number[]; dst: DeviceBuffer; dstOffset: number;
    dstStrides: number[]; shape: number[];
  }): void;
  randomFill(args: {
    out: DeviceBuffer; offset: number; n: number; distribution: 'normal' | 'uniform'; seed: number;
    counter: number; a: number; b: number;
  }): void;
  unary(args: {
    op: UnaryOpName; x: DeviceBuffer; xOffset: number; out: DeviceBuffer; outOffset: number; n: number;
    alpha: number; beta: number;
  }): void;
  unaryGrad(args: {
    op: UnaryOpName; x: DeviceBuffer; xOffset: number; dy: DeviceBuffer; dyOffset: number; dx: DeviceBuffer;
    dxOffset: number; n: number; alpha: number; beta: number;
  }): void;
  binary(args: {
    op: BinaryOpName; a: DeviceBuffer; aOffset: number; aStrides: number[]; b: DeviceBuffer; bOffset: number;
    bStrides: number[]; out: DeviceBuffer; outOffset: number; shape: number[];
  }): void;
  axpby(args: {
    dst: DeviceBuffer; dstOffset: number; src: DeviceBuffer; srcOffset: number; n: number; alpha: number;
    beta: number;
  }): void;
  /**
   * axpby on pairs t = 0.. of counts[t] elements from dstOffsets[t] of dsts[t] and srcOffsets[t] of
   * srcs[t], in one call (one pass over all of them on the CPU): the EMA of every parameter. No dst
   * may share memory with another dst or a src.
   */
  axpbyMany(args: {
    dsts: DeviceBuffer[]; dstOffsets: number[]; srcs: DeviceBuffer[]; srcOffsets: number[]; counts: number[]; alpha: number;
    beta: number;
  }): void;
  /** out[o, i] = sum_r x[o, r, i] for a contiguous (outer, r, inner) view. */
  reduceSum(args: {
    x: DeviceBuffer; xOffset: number; out: DeviceBuffer; outOffset: number; outer: number; r: number;
    inner: number;
  }): void;
  /**
   * out[outOffset] = the sum of the squares of elements [offsets[t], offsets[t] + counts[t]) of every
   * xs[t], accumulated in float64 (the gradient norm of all parameters in one reduction).
   */
  sumSquares(args: {
    xs: DeviceBuffer[]; offsets: number[]; counts: number[]; out: DeviceBuffer; outOffset: number;
  }): void;
}
