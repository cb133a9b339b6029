// The fused AdamW update on the GPU (optim.cu), as cpu/optim.h.
#pragma once
#include "cpu/optim.h"

namespace dv::cuda {
void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
           const cpu::AdamWParams& h);
// One launch per tensor (a launch costs microseconds here, and a captured step replays them all).
void adamw_many(const cpu::AdamWTensor* tensors, int64_t count, const cpu::AdamWParams& h);
// The step kernels a captured training step replays, reading the control block in device memory
// (cpu/optim.h step_control).
void train_step_control(const float* stats, float* control, double grad_clip);
void adamw_controlled(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                      const cpu::AdamWParams& h, const float* control);
void ema_controlled(float* shadow, const float* param, int64_t n, const float* control);
}  // namespace dv::cuda
