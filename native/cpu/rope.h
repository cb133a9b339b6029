// Rotary position embedding (RoPE), the "rotate half" convention: within each group of `dim`
// floats, pair i < dim/2 is (i, i + dim/2) and turns by the angle whose cos/sin are row t of the
// tables. Row-parallel on the native pool; each output element is one thread's two products and a
// sum, so results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

DV_ISA_DECLARE(
    // x, y: contiguous (batch, tokens, groups, dim), y not overlapping x; cos, sin: contiguous
    // (tokens, dim / 2); dim even. For groups g < rotated_groups and pairs i < dim / 2, with
    // a = x[i], b = x[i + dim/2], c = cos[t][i], s = sin[t][i] (s negated when `inverse`):
    //   y[i] = a*c - b*s,  y[i + dim/2] = b*c + a*s;
    // groups g >= rotated_groups are copied unchanged. inverse undoes the forward rotation (and is
    // its transpose, so also its gradient).
    void rope(const float* x, float* y, const float* cos, const float* sin, int64_t batch, int64_t tokens,
              int64_t groups, int64_t rotated_groups, int64_t dim, bool inverse);)

namespace dv::cpu {
inline void rope(const float* x, float* y, const float* cos, const float* sin, int64_t batch, int64_t tokens,
                 int64_t groups, int64_t rotated_groups, int64_t dim, bool inverse) {
  DV_DISPATCH(rope, x, y, cos, sin, batch, tokens, groups, rotated_groups, dim, inverse);
}
}  // namespace dv::cpu
