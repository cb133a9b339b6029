// Fused scaled-dot-product attention, forward and backward, FlashAttention-2 style: for each
// (batch, head) the queries and keys are walked in blocks, S = Q Kᵀ·scale exists only one block
// at a time (in a per-thread buffer), softmax is computed online, and the backward recomputes P
// from the saved log-sum-exp instead of storing the N×N matrix.
//
// Every (B, H, N, D) operand is a strided view: element (b, h, n, d) sits at
//   data[b*sb + h*sh + n*sn + d]
// (d has stride 1; the other strides are arbitrary and may be 0 for inputs, e.g. keys shared by
// every head). q, k, v can therefore be read in place from the (B, N, 3, H, D) qkv projection, and
// the gradients can be written into one such buffer.
#pragma once
#include <cstdint>

#include "cpu/gemm.h"
#include "cpu/isa.h"

namespace dv::cpu {

constexpr int64_t kAttentionMaxHeadDim = 256;

struct AttnIn {
  const float* data;
  int64_t sb, sh, sn;  // element strides of the batch, head and token dims
};
struct AttnOut {
  float* data;
  int64_t sb, sh, sn;
};

struct AttentionForwardArgs {
  int64_t batch, heads, nq, nk, d;  // 1 <= d <= kAttentionMaxHeadDim, nk >= 1
  float scale;
  AttnIn q, k, v;  // q: (B, H, Nq, D); k, v: (B, H, Nk, D)
  AttnOut o;       // (B, H, Nq, D), written
  float* lse;      // (B, H, Nq) contiguous, written: log sum_j exp(S_ij); nullptr skips it (inference)
  // bf16: the CUDA backend multiplies Q·Kᵀ and P·V on tensor cores (bf16 operands, fp32
  // accumulation and softmax); the CPU always computes in fp32.
  MatmulPrecision precision = MatmulPrecision::float32;
};

struct AttentionBackwardArgs {
  int64_t batch, heads, nq, nk, d;
  float scale;
  AttnIn q, k, v;
  AttnIn o;          // the forward output
  AttnIn dout;       // d(loss)/dO, (B, H, Nq, D)
  const float* lse;  // (B, H, Nq) contiguous, from the forward
  AttnOut dq, dk, dv;  // written (overwritten, not accumulated); must not overlap each other or the inputs
  MatmulPrecision precision = MatmulPrecision::float32;  // as in the forward
};

}  // namespace dv::cpu

DV_ISA_DECLARE(
    void attention_forward(const dv::cpu::AttentionForwardArgs& args);
    void attention_backward(const dv::cpu::AttentionBackwardArgs& args);)

namespace dv::cpu {
inline void attention_forward(const AttentionForwardArgs& args) { DV_DISPATCH(attention_forward, args); }
inline void attention_backward(const AttentionBackwardArgs& args) { DV_DISPATCH(attention_backward, args); }
}  // namespace dv::cpu
