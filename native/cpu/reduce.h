// Reductions: sums over the middle axis of (outer, r, inner), and the sum of squares behind
// gradient clipping and the NaN guard (a NaN/Inf anywhere makes it non-finite).
#pragma once
#include <cstdint>

#include "cpu/isa.h"

DV_ISA_DECLARE(
    // out[o*inner + i] = sum_r x[(o*r_len + r)*inner + i]
    void reduce_sum(const float* x, float* out, int64_t outer, int64_t r_len, int64_t inner);
    double sum_squares(const float* x, int64_t n);)

namespace dv::cpu {
inline void reduce_sum(const float* x, float* out, int64_t outer, int64_t r_len, int64_t inner) {
  DV_DISPATCH(reduce_sum, x, out, outer, r_len, inner);
}
inline double sum_squares(const float* x, int64_t n) { DV_DISPATCH(sum_squares, x, n); }
}  // namespace dv::cpu
