// Vector abstraction for kernels in cpu/simd/: one source, compiled per ISA level
// (DV_ISA_AVX512: 16 floats, DV_ISA_AVX2: 8 floats, DV_ISA_SCALAR: 1 float).
// Everything here has internal linkage so the per-ISA copies never mix at link time.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)
#include <immintrin.h>
#endif

namespace dv::cpu::DV_ISA {
namespace {

#if defined(DV_ISA_AVX512)
struct VF {
  static constexpr int W = 16;
  __m512 v;
  VF() = default;
  VF(__m512 x) : v(x) {}
  static VF load(const float* p) { return _mm512_loadu_ps(p); }
  static VF set1(float x) { return _mm512_set1_ps(x); }
  static VF zero() { return _mm512_setzero_ps(); }
  // Loads n < W floats, zero-filling the rest.
  static VF load_partial(const float* p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_partial(float* p, int n) const { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
};
inline VF operator+(VF a, VF b) { return _mm512_add_ps(a.v, b.v); }
inline VF operator-(VF a, VF b) { return _mm512_sub_ps(a.v, b.v); }
inline VF operator*(VF a, VF b) { return _mm512_mul_ps(a.v, b.v); }
inline VF operator/(VF a, VF b) { return _mm512_div_ps(a.v, b.v); }
inline VF fmadd(VF a, VF b, VF c) { return _mm512_fmadd_ps(a.v, b.v, c.v); }  // a*b+c
inline VF vmax(VF a, VF b) { return _mm512_max_ps(a.v, b.v); }
inline VF vmin(VF a, VF b) { return _mm512_min_ps(a.v, b.v); }
inline VF vsqrt(VF a) { return _mm512_sqrt_ps(a.v); }
inline float reduce_add(VF a) { return _mm512_reduce_add_ps(a.v); }
inline float reduce_max(VF a) { return _mm512_reduce_max_ps(a.v); }
inline VF vfloor(VF a) { return _mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
inline VF pow2i(VF n) {  // 2^n for integral n in [-126, 127]
  __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(i, 23));
}
#elif defined(DV_ISA_AVX2)
struct VF {
  static constexpr int W = 8;
  __m256 v;
  VF() = default;
  VF(__m256 x) : v(x) {}
  static VF load(const float* p) { return _mm256_loadu_ps(p); }
  static VF set1(float x) { return _mm256_set1_ps(x); }
  static VF zero() { return _mm256_setzero_ps(); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static VF load_partial(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_partial(float* p, int n) const { _mm256_maskstore_ps(p, mask(n), v); }
};
inline VF operator+(VF a, VF b) { return _mm256_add_ps(a.v, b.v); }
inline VF operator-(VF a, VF b) { return _mm256_sub_ps(a.v, b.v); }
inline VF operator*(VF a, VF b) { return _mm256_mul_ps(a.v, b.v); }
inline VF operator/(VF a, VF b) { return _mm256_div_ps(a.v, b.v); }
inline VF fmadd(VF a, VF b, VF c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
inline VF vmax(VF a, VF b) { return _mm256_max_ps(a.v, b.v); }
inline VF vmin(VF a, VF b) { return _mm256_min_ps(a.v, b.v); }
inline VF vsqrt(VF a) { return _mm256_sqrt_ps(a.v); }
inline float reduce_add(VF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float reduce_max(VF a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline VF vfloor(VF a) { return _mm256_floor_ps(a.v); }
inline VF pow2i(VF n) {
  __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(i, 23));
}
#else
struct VF {
  static constexpr int W = 1;
  float v;
  VF() = default;
  VF(float x) : v(x) {}
  static VF load(const float* p) { return *p; }
  static VF set1(float x) { return x; }
  static VF zero() { return 0.0f; }
  static VF load_partial(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  void store(float* p) const { *p = v; }
  void store_partial(float* p, int n) const {
    if (n > 0) *p = v;
  }
};
inline VF operator+(VF a, VF b) { return a.v + b.v; }
inline VF operator-(VF a, VF b) { return a.v - b.v; }
inline VF operator*(VF a, VF b) { return a.v * b.v; }
inline VF operator/(VF a, VF b) { return a.v / b.v; }
inline VF fmadd(VF a, VF b, VF c) { return a.v * b.v + c.v; }  // std::fma is a slow libm call without hardware FMA
inline VF vmax(VF a, VF b) { return a.v > b.v ? a.v : b.v; }
inline VF vmin(VF a, VF b) { return a.v < b.v ? a.v : b.v; }
inline VF vsqrt(VF a) { return std::sqrt(a.v); }
inline float reduce_add(VF a) { return a.v; }
inline float reduce_max(VF a) { return a.v; }
inline VF vfloor(VF a) { return std::floor(a.v); }
inline VF pow2i(VF n) { return std::ldexp(1.0f, static_cast<int>(n.v)); }
#endif

constexpr float kExpLo = -87.3365447504019f, kExpHi = 88.3762626647949f;

// exp(x) to ~2 ulp (Cephes-style: 2^k * p(r), r = x - k ln2, |r| <= ln2/2) of x clamped to
// [kExpLo, kExpHi], so exp(-inf) is tiny, exp(+big) near FLT_MAX and NaN gives exp(kExpLo). For
// callers that need no more, e.g. GELU's x / (1 + exp(z)), which keeps x's NaN by itself.
inline VF vexp_clamped(VF x) {
  VF xc = vmin(vmax(x, VF::set1(kExpLo)), VF::set1(kExpHi));
  VF k = vfloor(fmadd(xc, VF::set1(1.44269504088896341f), VF::set1(0.5f)));
  VF r = fmadd(k, VF::set1(-0.693359375f), xc);
  r = fmadd(k, VF::set1(2.12194440e-4f), r);
  VF p = VF::set1(1.9875691500e-4f);
  p = fmadd(p, r, VF::set1(1.3981999507e-3f));
  p = fmadd(p, r, VF::set1(8.3334519073e-3f));
  p = fmadd(p, r, VF::set1(4.1665795894e-2f));
  p = fmadd(p, r, VF::set1(1.6666665459e-1f));
  p = fmadd(p, r, VF::set1(5.0000001201e-1f));
  VF r2 = r * r;
  p = fmadd(p, r2, r + VF::set1(1.0f));
  return p * pow2i(k);
}

// exp(x): vexp_clamped, with exp(x < kExpLo) = 0 (exp(-inf) = 0) and NaN propagating.
inline VF vexp(VF x) {
  VF y = vexp_clamped(x);
#if defined(DV_ISA_SCALAR)
  if (x.v != x.v) return x;  // NaN
  if (x.v < kExpLo) return 0.0f;
#elif defined(DV_ISA_AVX512)
  y = _mm512_mask_mov_ps(y.v, _mm512_cmp_ps_mask(x.v, _mm512_set1_ps(kExpLo), _CMP_LT_OQ), _mm512_setzero_ps());
  y = _mm512_mask_mov_ps(y.v, _mm512_cmp_ps_mask(x.v, x.v, _CMP_UNORD_Q), x.v);
#else
  y = _mm256_blendv_ps(y.v, _mm256_setzero_ps(), _mm256_cmp_ps(x.v, _mm256_set1_ps(kExpLo), _CMP_LT_OQ));
  y = _mm256_blendv_ps(y.v, x.v, _mm256_cmp_ps(x.v, x.v, _CMP_UNORD_Q));
#endif
  return y;
}

// r[i] = row i of a W x W block; afterwards r[j] = column j (packing in the GEMM and attention).
#if defined(DV_ISA_AVX512)
inline void transpose(VF* r) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i].v, r[2 * i + 1].v);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i].v, r[2 * i + 1].v);
  }
  // u[4i + c], 128-bit lane l: rows 4i..4i+3 of column 4l + c.
  __m512 u[16];
  for (int i = 0; i < 4; ++i) {
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; ++c) {
    __m512 lo02 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), lo13 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    __m512 hi02 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), hi13 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_f32x4(lo02, hi02, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(lo13, hi13, 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(lo02, hi02, 0xDD);
    r[12 + c] = _mm512_shuffle_f32x4(lo13, hi13, 0xDD);
  }
}
#elif defined(DV_ISA_AVX2)
inline void transpose(VF* r) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i].v, r[2 * i + 1].v);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i].v, r[2 * i + 1].v);
  }
  for (int h = 0; h < 2; ++h) {
    s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
  }
}
#else
inline void transpose(VF*) {}
#endif

}  // namespace
}  // namespace dv::cpu::DV_ISA
