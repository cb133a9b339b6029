// GEMM, first version: row-at-a-time accumulation, vectorised over N. Correct for every layout;
// the packed, cache-blocked kernels replace it (see the CPU speed issue).
#include <vector>

#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {

void gemm(const GemmArgs& g) {
  parallel_for(g.batch * g.m, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, g.n * g.k)), [&](int64_t r0, int64_t r1) {
    std::vector<float> acc(g.n + VF::W);
    for (int64_t r = r0; r < r1; ++r) {
      int64_t bi = r / g.m, i = r % g.m;
      const float* A = g.a + bi * g.stride_a;
      const float* B = g.b + bi * g.stride_b;
      float* C = g.c + bi * g.stride_c + i * g.ldc;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p = 0; p < g.k; ++p) {
        float aip = g.trans_a ? A[p * g.lda + i] : A[i * g.lda + p];
        if (!g.trans_b) {
          const float* brow = B + p * g.ldb;
          VF va = VF::set1(aip);
          int64_t j = 0;
          for (; j + VF::W <= g.n; j += VF::W) fmadd(va, VF::load(brow + j), VF::load(&acc[j])).store(&acc[j]);
          for (; j < g.n; ++j) acc[j] += aip * brow[j];
        } else {
          for (int64_t j = 0; j < g.n; ++j) acc[j] += aip * B[j * g.ldb + p];
        }
      }
      for (int64_t j = 0; j < g.n; ++j) C[j] = g.alpha * acc[j] + (g.beta == 0.0f ? 0.0f : g.beta * C[j]);
    }
  });
}

}  // namespace dv::cpu::DV_ISA
