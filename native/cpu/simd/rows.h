// Row helpers shared by the norm and fused kernel families: padded and partial loads, LayerNorm
// row statistics, and the ordered combination of per-chunk partial sums that keeps reductions
// over rows independent of the thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/thread_pool.h"
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr int64_t kRowGrain = 16384;  // about this many elements per parallel chunk

// Rows per chunk so that one chunk holds about kRowGrain elements.
inline int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kRowGrain / std::max<int64_t>(1, cols)); }

// Loads len < W floats and fills the other lanes with `pad`: a row tail then goes through the
// same vector code as the body, with the padding chosen to be neutral (x - mean = 0, exp(-inf) = 0).
inline VF load_pad(const float* p, int len, float pad) {
  float tmp[VF::W];
  for (int k = 0; k < VF::W; ++k) tmp[k] = k < len ? p[k] : pad;
  return VF::load(tmp);
}

inline VF load_lanes(const float* p, int lanes) { return lanes == VF::W ? VF::load(p) : VF::load_partial(p, lanes); }
inline void store_lanes(VF v, float* p, int lanes) {
  if (lanes == VF::W) v.store(p);
  else v.store_partial(p, lanes);
}

// Sum of (x[i] - c) over n floats, four accumulators.
inline float sum_minus(const float* x, int64_t n, float c) {
  const VF vc = VF::set1(c);
  VF a0 = VF::zero(), a1 = VF::zero(), a2 = VF::zero(), a3 = VF::zero();
  int64_t i = 0;
  for (; i + 4 * VF::W <= n; i += 4 * VF::W) {
    a0 = a0 + (VF::load(x + i) - vc);
    a1 = a1 + (VF::load(x + i + VF::W) - vc);
    a2 = a2 + (VF::load(x + i + 2 * VF::W) - vc);
    a3 = a3 + (VF::load(x + i + 3 * VF::W) - vc);
  }
  for (; i + VF::W <= n; i += VF::W) a0 = a0 + (VF::load(x + i) - vc);
  if (i < n) a1 = a1 + (load_pad(x + i, int(n - i), c) - vc);  // padding lanes contribute 0
  return reduce_add((a0 + a1) + (a2 + a3));
}

// Sums of d and d^2 for d = x[i] - c over n floats.
inline void sum_dev(const float* x, int64_t n, float c, float& s1, float& s2) {
  const VF vc = VF::set1(c);
  VF a0 = VF::zero(), a1 = VF::zero(), q0 = VF::zero(), q1 = VF::zero();
  int64_t i = 0;
  for (; i + 2 * VF::W <= n; i += 2 * VF::W) {
    VF d0 = VF::load(x + i) - vc, d1 = VF::load(x + i + VF::W) - vc;
    a0 = a0 + d0;
    a1 = a1 + d1;
    q0 = fmadd(d0, d0, q0);
    q1 = fmadd(d1, d1, q1);
  }
  for (; i + VF::W <= n; i += VF::W) {
    VF d = VF::load(x + i) - vc;
    a0 = a0 + d;
    q0 = fmadd(d, d, q0);
  }
  if (i < n) {
    VF d = load_pad(x + i, int(n - i), c) - vc;
    a1 = a1 + d;
    q1 = fmadd(d, d, q1);
  }
  s1 = reduce_add(a0 + a1);
  s2 = reduce_add(q0 + q1);
}

// Mean and 1/sqrt(var + eps) of one row (biased variance), in float32 without cancellation:
//  - the mean is x[0] + mean(x - x[0]): with a large common offset (1000 ± 1) the differences are
//    small (and exact for values within a factor 2 of x[0]), so the offset costs no precision in
//    the sum; only the final float32 mean is rounded, to half an ulp of the offset;
//  - the variance is the corrected two-pass formula (Chan, Golub & LeVeque 1983),
//    (sum d^2 - (sum d)^2 / n) / n with d = x - mean: never the difference of two large squares,
//    and the (sum d)^2 term removes the first-order effect of rounding in the mean.
inline void row_stats(const float* x, int64_t n, float eps, float& mean, float& rstd) {
  if (n == 0) {  // an empty row: define mean 0, variance 0
    mean = 0.0f;
    rstd = 1.0f / std::sqrt(eps);
    return;
  }
  const float inv_n = 1.0f / float(n);
  const float mu = x[0] + sum_minus(x, n, x[0]) * inv_n;
  float s1, s2;
  sum_dev(x, n, mu, s1, s2);
  const float var = std::max(0.0f, (s2 - s1 * s1 * inv_n) * inv_n);
  mean = mu;
  rstd = 1.0f / std::sqrt(var + eps);
}

// Whole and partial vectors over `cols` columns: fn(i, lanes).
template <typename F>
inline void for_lanes(int64_t cols, F fn) {
  for (int64_t i = 0; i < cols; i += VF::W) fn(i, int(std::min<int64_t>(VF::W, cols - i)));
}

// One row of the LayerNorm backward, xh = (x - mu) * rs. Adds dy to sum_dy and dy * xh to
// sum_dy_xh (either may be null: the caller's partial sums for the shift/bias and scale/weight
// gradients) and, when dx is set, writes dx = rs * (g - mean(g) - xh * mean(g * xh)) with
// g = dy * mult(i, lanes), the per-column factor on xh (LayerNorm weight, 1 + adaLN scale), or
// g = dy where mult is nullptr. Tail lanes: x padded with the mean (xh = 0) and dy zero-filled,
// so they add exact zeros. g is parked in dx so that pass 2 subtracts mean(g) from the very
// values that were summed (recomputing the product could be fused into an FMA there and leave
// rounding residue times rstd).
template <typename Mult>
inline void layer_norm_backward_row(const float* xr, const float* gr, float mu, float rs, int64_t cols, float inv_n,
                                    float* sum_dy, float* sum_dy_xh, float* dr, Mult mult) {
  const VF vm = VF::set1(mu), vr = VF::set1(rs);
  VF sg = VF::zero(), sgx = VF::zero();
  for_lanes(cols, [&](int64_t i, int lanes) {
    VF xh = ((lanes == VF::W ? VF::load(xr + i) : load_pad(xr + i, lanes, mu)) - vm) * vr;
    VF g = load_lanes(gr + i, lanes);
    if (sum_dy_xh) store_lanes(fmadd(g, xh, load_lanes(sum_dy_xh + i, lanes)), sum_dy_xh + i, lanes);
    if (sum_dy) store_lanes(load_lanes(sum_dy + i, lanes) + g, sum_dy + i, lanes);
    if (dr) {
      if constexpr (!std::is_same_v<Mult, std::nullptr_t>) g = g * mult(i, lanes);
      store_lanes(g, dr + i, lanes);
      sg = sg + g;
      sgx = fmadd(g, xh, sgx);
    }
  });
  if (!dr) return;
  // Pass 2: dx = rstd * (g - a - xh * b).
  const VF a = VF::set1(reduce_add(sg) * inv_n), b = VF::set1(reduce_add(sgx) * inv_n);
  for_lanes(cols, [&](int64_t i, int lanes) {
    VF xh = (load_lanes(xr + i, lanes) - vm) * vr;
    store_lanes(vr * (load_lanes(dr + i, lanes) - a - xh * b), dr + i, lanes);
  });
}

// out[g * cols + j] = sum over c < chunks of partial[(g * chunks + c) * cols + j], for g < groups:
// per-chunk partials (rows of `cols` floats) added in chunk order, for every group.
inline void combine_partials(const float* partial, int64_t groups, int64_t chunks, int64_t cols, float* out) {
  parallel_for(groups * cols, std::max<int64_t>(VF::W, kRowGrain / std::max<int64_t>(1, chunks)), [&](int64_t k0, int64_t k1) {
    while (k0 < k1) {
      // One group's run of columns [j, j + len) inside [k0, k1).
      const int64_t g = k0 / cols, j = k0 % cols, len = std::min(cols - j, k1 - k0);
      const float* src = partial + g * chunks * cols + j;
      float* dst = out + g * cols + j;
      for (int64_t i = 0; i < len; i += VF::W) {
        const int lanes = int(std::min<int64_t>(VF::W, len - i));
        VF s = VF::zero();
        for (int64_t c = 0; c < chunks; ++c) s = s + load_lanes(src + c * cols + i, lanes);
        store_lanes(s, dst + i, lanes);
      }
      k0 += len;
    }
  });
}

}  // namespace
}  // namespace dv::cpu::DV_ISA
