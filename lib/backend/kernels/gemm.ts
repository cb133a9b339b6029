/** The GEMM kernel (native/addon/bind_gemm.cpp, native/cpu/simd/gemm.cpp). */
import type { DeviceBuffer } from './core.js';

/** 'float32': fp32 products; 'bf16': operands rounded to bfloat16, fp32 accumulation (native/cpu/gemm.h). */
export type MatmulPrecision = 'float32' | 'bf16';

export interface GemmKernels {
  /**
   * C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for b < batch; row-major with leading
   * dimensions lda/ldb/ldc; op(A) is m x k (A stored k x m when transA), op(B) is k x n (B stored
   * n x k when transB); batch strides in elements, 0 broadcasts A or B. beta = 0 ignores C.
   * `precision` is the caller's (lib/tensor/autocast.ts).
   */
  gemm(args: {
    a: DeviceBuffer; aOffset: number; b: DeviceBuffer; bOffset: number; c: DeviceBuffer; cOffset: number;
    batch: number; m: number; n: number; k: number; transA: boolean; transB: boolean; alpha: number;
    beta: number; strideA: number; strideB: number; strideC: number; lda: number; ldb: number; ldc: number;
    precision: MatmulPrecision;
  }): void;
}
