// Batched GEMM: C[b] = act(alpha * op(A[b]) * op(B[b]) + beta * C[b] + bias), row-major, op =
// transpose or not; the bias and activation are an optional epilogue. beta == 0 ignores C's
// previous contents (which may be uninitialised).
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dv::cpu {
// Activation applied by the GEMM epilogue.
enum class GemmAct : int { none, gelu_tanh };

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
};
}  // namespace dv::cpu

DV_ISA_DECLARE(void gemm(const dv::cpu::GemmArgs& args);)

namespace dv::cpu {
inline void gemm(const GemmArgs& args) { DV_DISPATCH(gemm, args); }
}  // namespace dv::cpu
