/** Runtime, buffer and elementwise entry points of the native addon (native/addon/bind_runtime.cpp, bind_elementwise.cpp). */

export type NativeDType = 'float32' | 'int32';

/** A typed block of native memory (native/addon/buffer_object.cpp). Tensors are views over one. */
export interface NativeBuffer {
  readonly disposed: boolean;
  readonly numel: number;
  readonly dtype: NativeDType;
  readonly device: 'cpu';
  dispose(): void;
  read(offset: number, count: number): Float32Array | Int32Array;
  write(offset: number, data: Float32Array | Int32Array): void;
}

export type UnaryOpName =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'silu' | 'gelu_tanh' | 'affine' | 'square' | 'abs' | 'relu'
  | 'tanh' | 'sigmoid' | 'pow' | 'reciprocal' | 'sin' | 'cos';
export type BinaryOpName = 'add' | 'sub' | 'mul' | 'div';

export interface NativeInfo {
  cpuFeatures: Record<string, boolean>;
  cpuLevel: 'avx512' | 'avx2' | 'scalar';
  cpuBestLevel: 'avx512' | 'avx2' | 'scalar';
  cpuLevelNote: string;
  threads: number;
  cudaBuilt: boolean;
  cudaStatus: string;
  buildFlags: string;
}

export interface NativeMemoryStats {
  liveBuffers: number;
  liveBytes: number;
  peakBytes: number;
  totalAllocations: number;
  /** Freed blocks kept by the caching allocator for reuse. */
  cachedBytes: number;
}

export interface CoreKernels {
  NativeBuffer: new (device: 'cpu', dtype: NativeDType, numel: number) => NativeBuffer;
  info(): NativeInfo;
  memoryStats(): NativeMemoryStats;
  /** Returns the caching allocator's free blocks to the system. */
  emptyCache(): void;
  setThreads(threads: number): void;
  setCpuLevel(level: 'avx512' | 'avx2' | 'scalar'): void;

  fill(out: NativeBuffer, offset: number, n: number, value: number): void;
  copyStrided(src: NativeBuffer, srcOffset: number, srcStrides: number[], dst: NativeBuffer, dstOffset: number,
    dstStrides: number[], shape: number[]): void;
  randomFill(out: NativeBuffer, offset: number, n: number, distribution: 'normal' | 'uniform', seed: number,
    counter: number, a: number, b: number): void;
  unary(op: UnaryOpName, x: NativeBuffer, xOffset: number, out: NativeBuffer, outOffset: number, n: number,
    alpha: number, beta: number): void;
  unaryGrad(op: UnaryOpName, x: NativeBuffer, xOffset: number, dy: NativeBuffer, dyOffset: number, dx: NativeBuffer,
    dxOffset: number, n: number, alpha: number, beta: number): void;
  binary(op: BinaryOpName, a: NativeBuffer, aOffset: number, aStrides: number[], b: NativeBuffer, bOffset: number,
    bStrides: number[], out: NativeBuffer, outOffset: number, shape: number[]): void;
  axpby(dst: NativeBuffer, dstOffset: number, src: NativeBuffer, srcOffset: number, n: number, alpha: number,
    beta: number): void;
  /** out[o, i] = sum_r x[o, r, i] for a contiguous (outer, r, inner) view. */
  reduceSum(x: NativeBuffer, xOffset: number, out: NativeBuffer, outOffset: number, outer: number, r: number,
    inner: number): void;
  /** Sum of squares of n elements, accumulated in float64 (gradient norms). */
  sumSquares(x: NativeBuffer, xOffset: number, n: number): number;
}
