// Fused optimiser updates: one pass over the parameters, updating them and their moment buffers in
// place.
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu/elementwise.h"
#include "cpu/isa.h"

namespace dv::cpu {
// AdamW (torch.optim.AdamW, decoupled weight decay). Every derived scalar is computed once by the
// caller in float64 and then rounded, as PyTorch does: 1 - 0.999 taken in float32 would be off by
// 1.3e-5 relative (0.999f is not 0.999), and that error would scale every v.
//   one_minus_beta1/2 = 1 - beta1/2, decay = 1 - lr*weight_decay,
//   step_size = lr / (1 - beta1^step), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^step).
// grad_scale multiplies each gradient as it is read (the clipping of a step whose scale is known
// only on the device; 1 otherwise, which leaves g unchanged).
struct AdamWParams {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  float decay, step_size, inv_sqrt_bc2;
  float grad_scale = 1;
};

// One tensor of a multi-tensor update: n elements of each.
struct AdamWTensor {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  int64_t n;
};

// The control block of a training step captured whole in a CUDA graph: float32 values in device
// memory that the replayed kernels read, because a graph freezes its kernels' scalar arguments.
// The host writes `enabled` and the per-step values (from the learning rate, the step count and
// the images seen, rounded from float64 as the eager step rounds them) before each replay; the
// graph's train_step_control kernel writes `apply` and `grad_scale` from the step's loss and
// gradient norm.
namespace step_control {
enum : int { enabled, apply, grad_scale, decay, step_size, inv_sqrt_bc2, ema_beta, ema_one_minus_beta, size };
}

// The data-dependent part of the control block, as the eager step decides it on the host: the step
// applies when the host enabled it (not in the graph's warm-up run) and the loss and the gradient
// norm sqrt(sum_squares) are finite, and its gradients are
// scaled by grad_clip / (norm + 1e-6) when grad_clip > 0 and norm > grad_clip (in float64).
// stats = [loss, sum of squared gradients].
inline void train_step_control_value(float loss, float sum_squares, double grad_clip, float* control) {
  const double norm = std::sqrt(static_cast<double>(sum_squares));
  const bool finite = std::isfinite(loss) && std::isfinite(norm);
  control[step_control::apply] = finite && control[step_control::enabled] != 0.f ? 1.f : 0.f;
  control[step_control::grad_scale] = grad_clip > 0 && norm > grad_clip ? static_cast<float>(grad_clip / (norm + 1e-6)) : 1.f;
}
}  // namespace dv::cpu

DV_ISA_DECLARE(
    // For each of the n elements:
    //   g *= grad_scale;  p *= decay;  m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g²;
    //   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
    void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
               const dv::cpu::AdamWParams& h);
    // adamw on `count` tensors in one parallel pass over their elements (the same values as one
    // adamw call each).
    void adamw_many(const dv::cpu::AdamWTensor* tensors, int64_t count, const dv::cpu::AdamWParams& h);)

namespace dv::cpu {
inline void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWParams& h) {
  DV_DISPATCH(adamw, param, grad, exp_avg, exp_avg_sq, n, h);
}
inline void adamw_many(const AdamWTensor* tensors, int64_t count, const AdamWParams& h) {
  DV_DISPATCH(adamw_many, tensors, count, h);
}

// The graph-capturable step kernels (cuda/optim.h runs them on the device, reading the control
// block there); on the host they read the block directly.
inline void train_step_control(const float* stats, float* control, double grad_clip) {
  train_step_control_value(stats[0], stats[1], grad_clip, control);
}

// adamw with decay, step_size, inv_sqrt_bc2 and grad_scale from the control block (h gives the
// betas and eps); nothing when the block says the step does not apply.
inline void adamw_controlled(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             const AdamWParams& h, const float* control) {
  if (control[step_control::apply] == 0.f) return;
  AdamWParams c = h;
  c.grad_scale = control[step_control::grad_scale];
  c.decay = control[step_control::decay];
  c.step_size = control[step_control::step_size];
  c.inv_sqrt_bc2 = control[step_control::inv_sqrt_bc2];
  adamw(param, grad, exp_avg, exp_avg_sq, n, c);
}

// The EMA update shadow = beta·shadow + (1-beta)·param (axpby) with beta from the control block;
// nothing when the step does not apply.
inline void ema_controlled(float* shadow, const float* param, int64_t n, const float* control) {
  if (control[step_control::apply] == 0.f) return;
  axpby(shadow, param, n, control[step_control::ema_beta], control[step_control::ema_one_minus_beta]);
}
}  // namespace dv::cpu
