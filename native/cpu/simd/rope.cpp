// RoPE, vectorised through VF (compiled once per ISA level) and parallel over (batch, token) rows:
// each row reads its token's cos/sin row once for all of its rotated groups.
#include <cstring>

#include "core/thread_pool.h"
#include "cpu/rope.h"
#include "cpu/simd/rows.h"

namespace dv::cpu::DV_ISA {

void rope(const float* x, float* y, const float* cos, const float* sin, int64_t batch, int64_t tokens,
          int64_t groups, int64_t rotated_groups, int64_t dim, bool inverse) {
  const int64_t half = dim / 2, row = groups * dim, copied = (groups - rotated_groups) * dim;
  // Multiplying by ±1 is exact: the inverse is the same arithmetic with s negated.
  const VF sign = VF::set1(inverse ? -1.0f : 1.0f);
  parallel_for(batch * tokens, row_grain(row), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* cr = cos + (r % tokens) * half;
      const float* sr = sin + (r % tokens) * half;
      const float* xr = x + r * row;
      float* yr = y + r * row;
      for (int64_t g = 0; g < rotated_groups; ++g) {
        const float* xa = xr + g * dim;
        float* ya = yr + g * dim;
        for_lanes(half, [&](int64_t i, int lanes) {
          const VF a = load_lanes(xa + i, lanes), b = load_lanes(xa + half + i, lanes);
          const VF c = load_lanes(cr + i, lanes), s = load_lanes(sr + i, lanes) * sign;
          store_lanes(fmadd(VF::zero() - b, s, a * c), ya + i, lanes);
          store_lanes(fmadd(a, s, b * c), ya + half + i, lanes);
        });
      }
      if (copied) std::memcpy(yr + rotated_groups * dim, xr + rotated_groups * dim, size_t(copied) * sizeof(float));
    }
  });
}

}  // namespace dv::cpu::DV_ISA
