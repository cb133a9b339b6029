/** Native entry points of the GEMM family (native/addon/bind_gemm.cpp, bind_peak.cpp, native/cpu/simd/gemm.cpp). */
import type { NativeBuffer } from './core.js';

/** 'float32': fp32 products; 'bf16': operands rounded to bfloat16, fp32 accumulation (native/cpu/gemm.h). */
export type MatmulPrecision = 'float32' | 'bf16';

export interface GemmKernels {
  /**
   * C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for b < batch; row-major with leading
   * dimensions lda/ldb/ldc; op(A) is m x k (A stored k x m when transA), op(B) is k x n (B stored
   * n x k when transB); batch strides in elements, 0 broadcasts A or B. beta = 0 ignores C.
   * Computed at the process-wide matmul precision (setMatmulPrecision).
   */
  gemm(a: NativeBuffer, aOffset: number, b: NativeBuffer, bOffset: number, c: NativeBuffer, cOffset: number,
    batch: number, m: number, n: number, k: number, transA: boolean, transB: boolean, alpha: number, beta: number,
    strideA: number, strideB: number, strideC: number, lda: number, ldb: number, ldc: number): void;
  setMatmulPrecision(precision: MatmulPrecision): void;
  /** Throws while DIFFVIT_MATMUL_PRECISION holds an invalid value and no precision was set. */
  getMatmulPrecision(): MatmulPrecision;
  /** The kernel bf16 GEMMs run on at the active CPU level. */
  bf16GemmPath(): { path: 'avx512bf16' | 'emulated'; description: string };
  /**
   * Measured GFLOP/s of independent multiply-add chains at the active CPU level: fp32 FMAs
   * ('float32') or vdpbf16ps ('bf16'; AVX512_BF16 at the avx512 level only), on the calling
   * thread or on every pool thread.
   */
  fmaPeak(kind: MatmulPrecision, allThreads: boolean): number;
}
