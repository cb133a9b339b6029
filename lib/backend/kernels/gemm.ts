/** Native entry points of the GEMM family (native/addon/bind_gemm.cpp, native/cpu/simd/gemm.cpp). */
import type { NativeBuffer } from './core.js';

export interface GemmKernels {
  /**
   * C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for b < batch; row-major with leading
   * dimensions lda/ldb/ldc; op(A) is m x k (A stored k x m when transA), op(B) is k x n (B stored
   * n x k when transB); batch strides in elements, 0 broadcasts A or B. beta = 0 ignores C.
   */
  gemm(a: NativeBuffer, aOffset: number, b: NativeBuffer, bOffset: number, c: NativeBuffer, cOffset: number,
    batch: number, m: number, n: number, k: number, transA: boolean, transB: boolean, alpha: number, beta: number,
    strideA: number, strideB: number, strideC: number, lda: number, ldb: number, ldc: number): void;
}
