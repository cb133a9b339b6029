// RoPE on the GPU (rope.cu), as cpu/rope.h.
#pragma once
#include "cpu/rope.h"

namespace dv::cuda {
void rope(const float* x, float* y, const float* cos, const float* sin, int64_t batch, int64_t tokens, int64_t groups,
          int64_t rotated_groups, int64_t dim, bool inverse);
}  // namespace dv::cuda
