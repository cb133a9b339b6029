#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/reduce.h"
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {
namespace {

// Sum of n contiguous floats, four vector accumulators for throughput, partial tail.
inline float row_sum(const float* x, int64_t n) {
  VF a0 = VF::zero(), a1 = VF::zero(), a2 = VF::zero(), a3 = VF::zero();
  int64_t i = 0;
  for (; i + 4 * VF::W <= n; i += 4 * VF::W) {
    a0 = a0 + VF::load(x + i);
    a1 = a1 + VF::load(x + i + VF::W);
    a2 = a2 + VF::load(x + i + 2 * VF::W);
    a3 = a3 + VF::load(x + i + 3 * VF::W);
  }
  for (; i + VF::W <= n; i += VF::W) a0 = a0 + VF::load(x + i);
  if (i < n) a1 = a1 + VF::load_partial(x + i, int(n - i));
  return reduce_add((a0 + a1) + (a2 + a3));
}

}  // namespace

void reduce_sum(const float* x, float* out, int64_t outer, int64_t r_len, int64_t inner) {
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, r_len)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) out[o] = row_sum(x + o * r_len, r_len);
    });
    return;
  }
  // Column sums: split over (outer, blocks of inner) and add rows in order, so results do not
  // depend on the thread count.
  const int64_t block = 256;
  int64_t blocks = (inner + block - 1) / block;
  parallel_for(outer * blocks, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, r_len * block)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      int64_t o = t / blocks, i0 = (t % blocks) * block, len = std::min(block, inner - i0);
      float* dst = out + o * inner + i0;
      const float* src = x + o * r_len * inner + i0;
      for (int64_t i = 0; i < len; ++i) dst[i] = 0.0f;
      for (int64_t r = 0; r < r_len; ++r) {
        const float* row = src + r * inner;
        int64_t i = 0;
        for (; i + VF::W <= len; i += VF::W) (VF::load(dst + i) + VF::load(row + i)).store(dst + i);
        for (; i < len; ++i) dst[i] += row[i];
      }
    }
  });
}

double sum_squares(const float* x, int64_t n) {
  const int64_t grain = 65536;
  std::vector<double> partial(num_chunks(n, grain), 0.0);
  parallel_for_chunks(n, grain, [&](int64_t c, int64_t a, int64_t b) {
    VF acc = VF::zero();
    int64_t i = a;
    for (; i + VF::W <= b; i += VF::W) {
      VF v = VF::load(x + i);
      acc = fmadd(v, v, acc);
    }
    double s = reduce_add(acc);
    for (; i < b; ++i) s += double(x[i]) * x[i];
    partial[c] = s;
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace dv::cpu::DV_ISA
