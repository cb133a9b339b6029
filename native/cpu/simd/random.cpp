// Standard normals of the Philox stream (core/philox.h), vectorised across Box-Muller pairs.
//
// philox_normals spends ~80 ns a pair in libm's float64 log, sin and cos: 2 ms of every default
// training step went to drawing its noise. Here one vector lane holds one pair: the Philox rounds
// run in 64-bit integer lanes (each holding a 32-bit word, so _mul_epu32 gives the full product),
// then the same float64 steps as philox_normal_pair, with log, sin and cos evaluated in the lanes:
//   u1, u2 = philox_unit(v0), philox_unit(v1)   (exact in float64)
//   radius = sqrt(-2 log u1),  angle = 2 pi u2,  (even, odd) = float(radius cos angle, radius sin angle)
// log: u1 = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <=
// 0.172, Taylor series to s^23 (the first term left out is below 1e-19 relative); e ln 2 in two parts.
// sin, cos: Cody-Waite reduction to |r| <= pi/4 and Taylor series, the CUDA backend's own source
// (core/sincos_series.h). Both stay within about an ulp of float64, so the
// floats agree with libm's except where a float64 lands within that of a rounding boundary: none
// of the 2^21 values the tests compare (test/random.test.ts). The scalar level keeps libm (its
// build has no hardware FMA).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/philox.h"
#include "core/sincos_series.h"
#include "cpu/elementwise.h"

#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)
#include <immintrin.h>
#endif

namespace dv::cpu::DV_ISA {
namespace {

#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)

#if defined(DV_ISA_AVX512)
constexpr int kLanes = 8;
using VD = __m512d;
using VU = __m512i;
inline VU u64(uint64_t x) { return _mm512_set1_epi64(static_cast<long long>(x)); }
inline VU lane_index() { return _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7); }
inline VU add(VU a, VU b) { return _mm512_add_epi64(a, b); }
inline VU band(VU a, VU b) { return _mm512_and_si512(a, b); }
inline VU bxor(VU a, VU b) { return _mm512_xor_si512(a, b); }
inline VU bor(VU a, VU b) { return _mm512_or_si512(a, b); }
inline VU shr(VU a, int s) { return _mm512_srli_epi64(a, s); }
inline VU shl(VU a, int s) { return _mm512_slli_epi64(a, s); }
inline VU mul32(VU a, VU b) { return _mm512_mul_epu32(a, b); }
inline VD as_double(VU a) { return _mm512_castsi512_pd(a); }
inline VU as_bits(VD a) { return _mm512_castpd_si512(a); }
inline VD d(double x) { return _mm512_set1_pd(x); }
inline VD dadd(VD a, VD b) { return _mm512_add_pd(a, b); }
inline VD dsub(VD a, VD b) { return _mm512_sub_pd(a, b); }
inline VD dmul(VD a, VD b) { return _mm512_mul_pd(a, b); }
inline VD ddiv(VD a, VD b) { return _mm512_div_pd(a, b); }
inline VD dfma(VD a, VD b, VD c) { return _mm512_fmadd_pd(a, b, c); }
inline VD dsqrt(VD a) { return _mm512_sqrt_pd(a); }
inline VD dneg(VD a) { return _mm512_xor_pd(a, d(-0.0)); }
inline VD drint(VD a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// Lanes where `cond` (all-ones or zero 64-bit lanes) is set take b, the others a.
inline VD select(VU cond, VD a, VD b) { return _mm512_mask_blend_pd(_mm512_test_epi64_mask(cond, cond), a, b); }
inline VU greater(VD a, VD b) {
  return _mm512_movm_epi64(_mm512_cmp_pd_mask(a, b, _CMP_GT_OQ));
}
// All-ones lanes where a is nonzero.
inline VU lane_mask(VU a) { return _mm512_movm_epi64(_mm512_test_epi64_mask(a, a)); }
inline void store_floats(float* p, VD a) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(a)); }
#else
constexpr int kLanes = 4;
using VD = __m256d;
using VU = __m256i;
inline VU u64(uint64_t x) { return _mm256_set1_epi64x(static_cast<long long>(x)); }
inline VU lane_index() { return _mm256_setr_epi64x(0, 1, 2, 3); }
inline VU add(VU a, VU b) { return _mm256_add_epi64(a, b); }
inline VU band(VU a, VU b) { return _mm256_and_si256(a, b); }
inline VU bxor(VU a, VU b) { return _mm256_xor_si256(a, b); }
inline VU bor(VU a, VU b) { return _mm256_or_si256(a, b); }
inline VU shr(VU a, int s) { return _mm256_srli_epi64(a, s); }
inline VU shl(VU a, int s) { return _mm256_slli_epi64(a, s); }
inline VU mul32(VU a, VU b) { return _mm256_mul_epu32(a, b); }
inline VD as_double(VU a) { return _mm256_castsi256_pd(a); }
inline VU as_bits(VD a) { return _mm256_castpd_si256(a); }
inline VD d(double x) { return _mm256_set1_pd(x); }
inline VD dadd(VD a, VD b) { return _mm256_add_pd(a, b); }
inline VD dsub(VD a, VD b) { return _mm256_sub_pd(a, b); }
inline VD dmul(VD a, VD b) { return _mm256_mul_pd(a, b); }
inline VD ddiv(VD a, VD b) { return _mm256_div_pd(a, b); }
inline VD dfma(VD a, VD b, VD c) { return _mm256_fmadd_pd(a, b, c); }
inline VD dsqrt(VD a) { return _mm256_sqrt_pd(a); }
inline VD dneg(VD a) { return _mm256_xor_pd(a, d(-0.0)); }
inline VD drint(VD a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline VD select(VU cond, VD a, VD b) { return _mm256_blendv_pd(a, b, _mm256_castsi256_pd(cond)); }
inline VU greater(VD a, VD b) { return _mm256_castpd_si256(_mm256_cmp_pd(a, b, _CMP_GT_OQ)); }
inline VU lane_mask(VU a) { return _mm256_xor_si256(_mm256_cmpeq_epi64(a, _mm256_setzero_si256()), _mm256_set1_epi64x(-1)); }
inline void store_floats(float* p, VD a) { _mm_storeu_ps(p, _mm256_cvtpd_ps(a)); }
#endif

constexpr uint64_t kLow32 = 0xffffffffu;
// 2^52 as a double: OR-ing an integer below 2^52 into its mantissa and subtracting 2^52 converts it exactly.
constexpr uint64_t kTwo52Bits = 0x4330000000000000u;
constexpr double kTwo52 = 4503599627370496.0;

inline VD to_double(VU small) { return dsub(as_double(bor(small, u64(kTwo52Bits))), d(kTwo52)); }
// The inverse for small non-negative integral doubles: their low mantissa bits after adding 2^52.
inline VU to_integer(VD small) { return band(as_bits(dadd(small, d(kTwo52))), u64(0xffff)); }

// Words 0 and 1 of Philox4x32-10 (core/philox.h philox4x32) for the counters in `counter`, one a lane.
inline void philox_words(VU counter, uint64_t key, VU& w0, VU& w1) {
  const VU low = u64(kLow32);
  VU c0 = band(counter, low), c1 = shr(counter, 32), c2 = u64(0), c3 = u64(0);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  const VU m0 = u64(0xD2511F53u), m1 = u64(0xCD9E8D57u);
  for (int round = 0; round < 10; ++round) {
    const VU p0 = mul32(m0, c0), p1 = mul32(m1, c2);
    const VU n0 = bxor(bxor(shr(p1, 32), c1), u64(k0));
    const VU n2 = bxor(bxor(shr(p0, 32), c3), u64(k1));
    c1 = band(p1, low);
    c3 = band(p0, low);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  w0 = c0;
  w1 = c1;
}

// philox_unit in float64: ((x >> 8) + 1) 2^-24, exactly the float it returns.
inline VD unit(VU word) { return dmul(to_double(add(shr(word, 8), u64(1))), d(1.0 / 16777216.0)); }

// log(u) for u in (0, 1] (normal doubles).
inline VD log_unit(VD u) {
  const VU bits = as_bits(u);
  // u = 2^e m, m in [1, 2): the exponent field is 11 bits, the sign bit clear.
  VD e = dsub(to_double(shr(bits, 52)), d(1023.0));
  VD m = as_double(bor(band(bits, u64(0x000fffffffffffffu)), u64(0x3ff0000000000000u)));
  // m in [sqrt(2), 2): halve it (exact) and count the factor 2 in e.
  const VU big = greater(m, d(1.4142135623730951));
  m = select(big, m, dmul(m, d(0.5)));
  e = select(big, e, dadd(e, d(1.0)));
  const VD s = ddiv(dsub(m, d(1.0)), dadd(m, d(1.0)));
  const VD z = dmul(s, s);
  // 2 atanh(s) = 2 s (1 + z/3 + z^2/5 + ... + z^11/23).
  VD p = d(1.0 / 23);
  for (int k = 10; k >= 1; --k) p = dfma(p, z, d(1.0 / (2 * k + 1)));
  const VD two_s = dadd(s, s);
  const VD log_m = dfma(dmul(two_s, z), p, two_s);
  // e ln 2 with ln 2 = LN2_HI + LN2_LO, LN2_HI of 32 bits (so e LN2_HI is exact for |e| < 2^21).
  return dadd(dmul(e, d(0.6931471803691238)), dfma(e, d(1.9082149292705877e-10), log_m));
}

// Vector lanes for core/sincos_series.h.
struct LaneDoubles {
  static VD splat(double x) { return d(x); }
  static VD mul(VD a, VD b) { return dmul(a, b); }
  static VD fma(VD a, VD b, VD c) { return dfma(a, b, c); }
  static VD neg(VD a) { return dneg(a); }
  static VD rint(VD a) { return drint(a); }
};

// sin and cos of a in [0, 2 pi] (the reduction and series of the CUDA backend's sin/cos).
inline void sin_cos(VD a, VD& s, VD& c) {
  VD k, sr, cr;
  sincos64::taylor<LaneDoubles>(sincos64::reduce<LaneDoubles>(a, k), sr, cr);
  // Quadrant q = k mod 4 (k in 0..4): q odd swaps sin and cos; sin is negated in q = 2, 3, cos in q = 1, 2.
  const VU q = to_integer(k);
  const VU odd = lane_mask(band(q, u64(1)));
  const VU sin_neg = lane_mask(band(q, u64(2)));
  const VU cos_neg = lane_mask(band(add(q, u64(1)), u64(2)));
  s = select(odd, sr, cr);
  c = select(odd, cr, sr);
  s = as_double(bxor(as_bits(s), band(sin_neg, u64(0x8000000000000000u))));
  c = as_double(bxor(as_bits(c), band(cos_neg, u64(0x8000000000000000u))));
}

#endif

}  // namespace

void philox_normals(uint64_t key, uint64_t first, int64_t n, float* out) {
#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)
  // Pairs first >> 1 .. (first + n - 1) >> 1 hold the elements; kLanes pairs at a time.
  if (n <= 0) return;
  const uint64_t pair_begin = first >> 1, pair_end = ((first + n - 1) >> 1) + 1;
  alignas(64) float even[kLanes], odd[kLanes];
  for (uint64_t p = pair_begin; p < pair_end; p += kLanes) {
    VU w0, w1;
    philox_words(add(u64(p), lane_index()), key, w0, w1);
    const VD radius = dsqrt(dmul(d(-2.0), log_unit(unit(w0))));
    VD s, c;
    sin_cos(dmul(d(6.283185307179586), unit(w1)), s, c);
    store_floats(even, dmul(radius, c));
    store_floats(odd, dmul(radius, s));
    // Element 2 (p + j) + slot of the stream is out[2 (p + j) + slot - first] where that is in [0, n).
    const int64_t base = static_cast<int64_t>(2 * p - first);
    if (base >= 0 && base + 2 * kLanes <= n) {
      for (int j = 0; j < kLanes; ++j) {
        out[base + 2 * j] = even[j];
        out[base + 2 * j + 1] = odd[j];
      }
    } else {
      for (int j = 0; j < kLanes; ++j) {
        const int64_t at = base + 2 * j;
        if (at >= 0 && at < n) out[at] = even[j];
        if (at + 1 >= 0 && at + 1 < n) out[at + 1] = odd[j];
      }
    }
  }
#else
  ::dv::philox_normals(key, first, n, out);
#endif
}

}  // namespace dv::cpu::DV_ISA
