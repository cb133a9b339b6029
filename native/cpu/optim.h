// Fused optimiser updates: one pass over the parameters, updating them and their moment buffers in
// place.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dv::cpu {
// AdamW (torch.optim.AdamW, decoupled weight decay). Every derived scalar is computed once by the
// caller in float64 and then rounded, as PyTorch does: 1 - 0.999 taken in float32 would be off by
// 1.3e-5 relative (0.999f is not 0.999), and that error would scale every v.
//   one_minus_beta1/2 = 1 - beta1/2, decay = 1 - lr*weight_decay,
//   step_size = lr / (1 - beta1^step), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^step).
struct AdamWParams {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  float decay, step_size, inv_sqrt_bc2;
};
}  // namespace dv::cpu

DV_ISA_DECLARE(
    // For each of the n elements:
    //   p *= decay;  m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g²;
    //   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
    void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
               const dv::cpu::AdamWParams& h);)

namespace dv::cpu {
inline void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWParams& h) {
  DV_DISPATCH(adamw, param, grad, exp_avg, exp_avg_sq, n, h);
}
}  // namespace dv::cpu
