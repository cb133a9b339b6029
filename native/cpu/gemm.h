// Batched GEMM: C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias), row-major, op =
// transpose or not; the bias and activation are an optional epilogue. beta == 0 ignores C's
// previous contents (which may be uninitialised).
#pragma once
#include <cstdint>
#include <string>

#include "cpu/isa.h"

namespace dv::cpu {
// Activation applied by the GEMM epilogue.
enum class GemmAct : int { none, gelu_tanh };

// How the products are computed (torch.set_float32_matmul_precision's role):
//   float32  fp32 operands, fp32 FMA accumulation.
//   bf16     alpha * op(A) and op(B) rounded to bfloat16 (round to nearest even; zero and
//            subnormal inputs become signed zero, NaN stays NaN, as VCVTNEPS2BF16 does), their
//            exact products accumulated in fp32, fp32 C. On AMX (TDPBF16PS: 16 x 16 x 32 per
//            instruction), on AVX512_BF16 (vdpbf16ps: two k-steps per instruction) or, on every
//            other CPU and kernel level, by rounding the packed panels and running the fp32
//            kernel: the same numerics up to the order of each k pair's two additions (and the
//            bf16 instructions flushing subnormal sums to zero).
enum class MatmulPrecision : int { float32 = 0, bf16 = 1 };

struct GemmArgs {
  const float* a;
  const float* b;
  float* c;
  int64_t batch, m, n, k;
  bool trans_a, trans_b;  // A is stored k x m (trans_a) or m x k; B is n x k (trans_b) or k x n
  float alpha, beta;
  int64_t stride_a, stride_b, stride_c;  // elements between batch items (0 broadcasts)
  int64_t lda, ldb, ldc;                 // elements between rows as stored
  // Epilogue, applied to each element of C once its K sum is complete (while the tile is still
  // in cache): C = act(C + bias[j]), bias (n) broadcast over rows and batch items. `pre`, when
  // set, receives C + bias before the activation, in C's layout (stride_c, ldc). The defaults
  // leave C as alpha * op(A) op(B) + beta * C.
  const float* bias = nullptr;
  GemmAct act = GemmAct::none;
  float* pre = nullptr;
  MatmulPrecision precision = MatmulPrecision::float32;
};


// Which kernel bf16 GEMMs run on at the active kernel level: the first of amx, avx512bf16,
// emulated that the level, the CPU and the OS allow, at or after the limit (tests and benchmarks
// set it to compare the kernels on one machine; process-wide, amx unless set).
enum class Bf16Path : int { amx, avx512bf16, emulated };
Bf16Path bf16_path();
void set_bf16_path_limit(Bf16Path first);
const char* bf16_path_name(Bf16Path path);         // 'amx', 'avx512bf16', 'emulated'
const char* bf16_path_description(Bf16Path path);  // one line for `diffvit info`

}  // namespace dv::cpu

DV_ISA_DECLARE(void gemm(const dv::cpu::GemmArgs& args);)

#if DV_X86
namespace dv::cpu::avx512 {
// args.precision == bf16 on vdpbf16ps; only where cpu_features().avx512bf16.
void gemm_bf16(const dv::cpu::GemmArgs& args);
// args.precision == bf16 on AMX tiles; only where bf16_path() is amx (the OS granted the tiles).
void gemm_bf16_amx(const dv::cpu::GemmArgs& args);
}  // namespace dv::cpu::avx512
#endif

namespace dv::cpu {
inline void gemm(const GemmArgs& args) {
#if DV_X86
  if (args.precision == MatmulPrecision::bf16) {
    const Bf16Path path = bf16_path();
    if (path == Bf16Path::amx) return avx512::gemm_bf16_amx(args);
    if (path == Bf16Path::avx512bf16) return avx512::gemm_bf16(args);
  }
#endif
  DV_DISPATCH(gemm, args);
}
}  // namespace dv::cpu
