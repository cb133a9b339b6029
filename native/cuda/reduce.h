// Reductions on the GPU (reduce.cu), as cpu/reduce.h.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/reduce.h"

namespace dv::cuda {
void reduce_sum(const float* x, float* out, int64_t outer, int64_t r_len, int64_t inner);
// *out (device, float32) = sum over every tensor t of sum_i xs[t][i]², accumulated in float64: the
// multi-tensor reduction behind the gradient norm, one launch for all tensors.
void sum_squares(const std::vector<const float*>& xs, const std::vector<int64_t>& counts, float* out);
}  // namespace dv::cuda
