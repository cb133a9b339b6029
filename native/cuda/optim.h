// The fused AdamW update on the GPU (optim.cu), as cpu/optim.h.
#pragma once
#include "cpu/optim.h"

namespace dv::cuda {
void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
           const cpu::AdamWParams& h);
}  // namespace dv::cuda
