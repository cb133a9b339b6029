// FMA peak loops (cpu/peak.h). kChains independent accumulators: Zen 4/5 and recent Intel cores
// issue 2 FMAs per cycle with 4-cycle latency, so 8 chains saturate them; 16 zmm (12 ymm: AVX2
// has 16 registers) leave margin for deeper pipelines.
#include "cpu/peak.h"
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {
namespace {
#if defined(DV_ISA_AVX512)
constexpr int kChains = 16;
#elif defined(DV_ISA_AVX2)
constexpr int kChains = 12;
#else
constexpr int kChains = 8;
#endif

// Through memory: GCC 12 warns (falsely) about _mm512_reduce_add_ps inlined here.
float lane_sum(VF v) {
  float lanes[VF::W];
  v.store(lanes);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}
}  // namespace

float fma_loop(int64_t iters, float x) {
  // acc <- acc * m + a converges towards a / (1 - m) = 1: no overflow, no subnormals.
  const VF m = VF::set1(0.5f), a = VF::set1(0.5f);
  VF acc[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = VF::set1(x + static_cast<float>(c));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = fmadd(acc[c], m, a);
  }
  VF sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = sum + acc[c];
  return lane_sum(sum);
}

int64_t fma_loop_flops() { return int64_t(2) * kChains * VF::W; }

#if defined(DV_ISA_AVX512)
__attribute__((target("avx512bf16"))) float dpbf16_loop(int64_t iters, float x) {
  // Products of 2^-10 * 2^-10 are 2^-20: normal in fp32, and far from overflow after ~1e9 steps.
  const __m512bh p = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0x1p-10f), _mm512_set1_ps(0x1p-10f));
  __m512 acc[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(x + static_cast<float>(c));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], p, p);
  }
  VF sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = sum + acc[c];
  return lane_sum(sum);
}

int64_t dpbf16_loop_flops() { return int64_t(4) * kChains * VF::W; }  // 2 multiply-adds per lane
#endif

}  // namespace dv::cpu::DV_ISA
