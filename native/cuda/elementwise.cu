// Elementwise kernels on the GPU: strided copy, fill, Philox random fills, unary maps and their
// gradients, broadcasting binary maps and axpby (the entry points of cuda/elementwise.h, mirroring
// cpu/elementwise.h).
//
// How they work, and why:
//  - Everything is memory-bound, so the kernels are grid-stride loops (at most kMaxBlocks blocks of
//    256 threads) over 16-byte vectors (float4 / uint4) when every pointer involved has the same
//    address modulo 16 (checked at run time; the few elements before the first aligned address and
//    after the last full vector are done one by one).
//  - The maths is the CPU's, operation for operation (cpu/simd/elementwise.cpp, activation.h,
//    simd.h): exp is the same Cephes polynomial with the same clamps (fmaf where the CPU has
//    fmadd), sigmoid/tanh/GELU the same formulas, and products or sums the CPU rounds separately
//    are written with __fmul_rn/__fadd_rn so that nvcc cannot contract them into an FMA. The
//    results are therefore bitwise those of the CPU's AVX2/AVX-512 levels, except for log and pow
//    (CUDA's libm, within 2 ulp of glibc's). sin and cos are evaluated in float64 here (Cody-Waite
//    or, beyond 2^19, Payne-Hanek reduction in registers, then Taylor series) and rounded once:
//    the same floats as glibc's float64 sin/cos rounded, for every 7th float of either sign
//    (611M values; CUDA's own sinf/cosf keep their large-argument table in local memory, which
//    the build forbids with -warn-lmem-usage).
//  - copy_strided and binary first simplify the shape on the host: size-1 dims are dropped and
//    neighbouring dims that are contiguous in every operand are merged (copy also orders its dims
//    by destination stride, so consecutive threads write consecutive addresses). What remains is
//    a flat vectorised copy/map, a 32x32 shared-memory tiled transpose (copy, when the source's
//    unit-stride dim is not the destination's), or one thread per element with the index
//    decomposed in 32-bit arithmetic whenever every offset fits (64-bit otherwise).
//  - random_normal / random_uniform use native/core/philox.h itself (DV_HOST_DEVICE): one thread
//    per Philox block (4 uniforms) or per Box-Muller pair (2 normals, float64 as on the CPU), and
//    element i is drawn from counter + i exactly as on the CPU, so the outputs are bitwise the
//    CPU's: the integer part is exact, and Box-Muller's float64 log (CUDA's, within 1 ulp) and
//    sin/cos (the float64 routines above) differ from glibc's by at most an ulp of float64, which
//    changes the rounded float only for a ~2^-28 fraction of draws (none in 20M tested).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/philox.h"
#include "core/sincos_series.h"
#include "cuda/common.cuh"
#include "cuda/elementwise.h"
#include "cuda/optim.h"

namespace dv::cuda {
namespace {

using cpu::BinaryOp;
using cpu::UnaryOp;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;
constexpr int kMaxRank = cpu::kMaxRank;

int blocks_for(int64_t work) { return static_cast<int>(std::max<int64_t>(1, std::min(ceil_div(work, kThreads), kMaxBlocks))); }

// Arithmetic the compiler must not fuse: the CPU rounds these products and sums separately.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }

__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

// ------------------------------------------------------------------------------------------------
// Vector plans: [0, head) and [tail, n) one element at a time, [head, tail) as nvec 16-byte vectors.

struct VecPlan {
  int64_t n, head, nvec, tail;
};

// Every pointer of `ptrs` (null entries ignored) must share its address modulo 16 to vectorise.
VecPlan vec_plan(int64_t n, std::initializer_list<const void*> ptrs) {
  uintptr_t mod = 16;
  bool same = true;
  for (const void* p : ptrs) {
    if (!p) continue;
    uintptr_t m = reinterpret_cast<uintptr_t>(p) % 16;
    if (mod == 16) mod = m;
    else if (m != mod) same = false;
  }
  VecPlan v{n, n, 0, n};
  if (!same || mod % 4 != 0) return v;
  int64_t head = std::min<int64_t>(n, mod == 16 || mod == 0 ? 0 : int64_t(16 - mod) / 4);
  v.head = head;
  v.nvec = (n - head) / 4;
  v.tail = head + 4 * v.nvec;
  return v;
}

// Calls f(i) for the scalar elements and fv(i) for the vectors starting at element i.
template <typename F, typename FV>
__device__ __forceinline__ void for_plan(const VecPlan& p, F f, FV fv) {
  const int64_t t = global_thread(), stride = grid_threads();
  for (int64_t v = t; v < p.nvec; v += stride) fv(p.head + 4 * v);
  for (int64_t i = t; i < p.head; i += stride) f(i);
  for (int64_t i = p.tail + t; i < p.n; i += stride) f(i);
}

int blocks_for(const VecPlan& p) { return blocks_for(std::max<int64_t>(p.nvec, std::max<int64_t>(p.head, p.n - p.tail))); }

// ------------------------------------------------------------------------------------------------
// fill (one kernel for float32 and int32: both are 4-byte patterns)

__global__ void fill_kernel(uint32_t* dst, VecPlan p, uint32_t bits) {
  for_plan(
      p, [&](int64_t i) { dst[i] = bits; },
      [&](int64_t i) { *reinterpret_cast<uint4*>(dst + i) = make_uint4(bits, bits, bits, bits); });
}

void fill_bits(void* dst, int64_t n, uint32_t bits) {
  if (n <= 0) return;
  VecPlan p = vec_plan(n, {dst});
  launch("fill", fill_kernel, blocks_for(p), kThreads, 0, static_cast<uint32_t*>(dst), p, bits);
}

// ------------------------------------------------------------------------------------------------
// copy_strided

// A shape simplified on the host: dims of size 1 dropped, mergeable neighbours merged.
struct Dims {
  int rank = 0;
  int64_t shape[kMaxRank];
  int64_t s[2][kMaxRank];  // strides of up to two operands (copy: src, dst; binary: a, b)
};

// Merges dim d+1 into d wherever every operand steps over dim d+1 exactly once per step of d.
void merge_dims(Dims& x, int operands) {
  int out = 0;
  for (int d = 0; d < x.rank; ++d) {
    if (out > 0) {
      bool merge = true;
      for (int o = 0; o < operands; ++o) merge = merge && x.s[o][out - 1] == x.s[o][d] * x.shape[d];
      if (merge) {
        x.shape[out - 1] *= x.shape[d];
        for (int o = 0; o < operands; ++o) x.s[o][out - 1] = x.s[o][d];
        continue;
      }
    }
    x.shape[out] = x.shape[d];
    for (int o = 0; o < operands; ++o) x.s[o][out] = x.s[o][d];
    ++out;
  }
  x.rank = out;
}

// The largest offset |stride|*(size-1) summed over dims: whether 32-bit offsets suffice.
bool fits_u32(const Dims& x, int operands, int64_t n) {
  if (n >= (int64_t(1) << 31)) return false;
  for (int o = 0; o < operands; ++o) {
    int64_t ext = 0;
    for (int d = 0; d < x.rank; ++d) ext += (x.s[o][d] < 0 ? -x.s[o][d] : x.s[o][d]) * (x.shape[d] - 1);
    if (ext >= (int64_t(1) << 31)) return false;
  }
  return true;
}

// Kernel parameters (by value): sizes and two stride sets in the index type I (int32 or int64).
template <typename I>
struct StridedParams {
  int rank;
  I shape[kMaxRank];
  I s0[kMaxRank];
  I s1[kMaxRank];
};

template <typename I>
StridedParams<I> strided_params(const Dims& x) {
  StridedParams<I> p{};
  p.rank = x.rank;
  for (int d = 0; d < x.rank; ++d) {
    p.shape[d] = static_cast<I>(x.shape[d]);
    p.s0[d] = static_cast<I>(x.s[0][d]);
    p.s1[d] = static_cast<I>(x.s[1][d]);
  }
  return p;
}

// Offsets of flat (row-major over shape) element i in both operands. Unrolled over the 8 possible
// dims with constant indices, so the parameter arrays are never indexed dynamically.
template <typename I>
__device__ __forceinline__ void strided_offsets(const StridedParams<I>& p, I i, I& o0, I& o1) {
  o0 = 0;
  o1 = 0;
DV_UNROLL
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < p.rank) {
      I size = p.shape[d];
      I q = i / size, k = i - q * size;
      o0 += k * p.s0[d];
      o1 += k * p.s1[d];
      i = q;
    }
  }
}

template <typename I>
__global__ void copy_general_kernel(const uint32_t* src, uint32_t* dst, StridedParams<I> p, I n) {
  // Unsigned steps: i + stride may pass the signed maximum when n is just below it.
  using U = std::make_unsigned_t<I>;
  const U stride = static_cast<U>(gridDim.x) * blockDim.x;
  for (U i = static_cast<U>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<U>(n); i += stride) {
    I so, d;
    strided_offsets(p, static_cast<I>(i), so, d);
    dst[d] = src[so];
  }
}

__global__ void copy_flat_kernel(const uint32_t* src, uint32_t* dst, VecPlan p) {
  for_plan(
      p, [&](int64_t i) { dst[i] = src[i]; },
      [&](int64_t i) { *reinterpret_cast<uint4*>(dst + i) = *reinterpret_cast<const uint4*>(src + i); });
}

// Transposing copy through shared memory: dim l (the last, the destination's smallest stride)
// and dim k (the source's unit stride) form 32x32 tiles, read along k and written along l, so both
// sides are coalesced. The other dims are a batch index (blockIdx.y, grid-stride).
constexpr int kTile = 32, kTileRows = 8;

struct TileParams {
  int64_t nl, nk, ssl, dsl, ssk, dsk;  // sizes and strides of dims l and k
  int64_t tiles_l, batch;
  int brank;  // batch dims, outermost first
  int64_t bshape[kMaxRank - 2], bss[kMaxRank - 2], bds[kMaxRank - 2];
};

__global__ void copy_tiled_kernel(const uint32_t* src, uint32_t* dst, TileParams p) {
  __shared__ uint32_t tile[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t l0 = (blockIdx.x % p.tiles_l) * kTile, k0 = (blockIdx.x / p.tiles_l) * kTile;
  for (int64_t b = blockIdx.y; b < p.batch; b += gridDim.y) {
    int64_t so = 0, doff = 0, rem = b;
DV_UNROLL
    for (int d = kMaxRank - 3; d >= 0; --d) {
      if (d < p.brank) {
        int64_t q = rem / p.bshape[d], i = rem - q * p.bshape[d];
        so += i * p.bss[d];
        doff += i * p.bds[d];
        rem = q;
      }
    }
DV_UNROLL
    for (int j = 0; j < kTile; j += kTileRows) {
      int64_t l = l0 + ty + j, k = k0 + tx;
      if (l < p.nl && k < p.nk) tile[ty + j][tx] = src[so + k * p.ssk + l * p.ssl];
    }
    __syncthreads();
DV_UNROLL
    for (int j = 0; j < kTile; j += kTileRows) {
      int64_t k = k0 + ty + j, l = l0 + tx;
      if (l < p.nl && k < p.nk) dst[doff + k * p.dsk + l * p.dsl] = tile[tx][ty + j];
    }
    __syncthreads();
  }
}

__global__ void copy_one_kernel(const uint32_t* src, uint32_t* dst) { *dst = *src; }

// ------------------------------------------------------------------------------------------------
// sin and cos in float64, without CUDA's libm: its argument reduction for large inputs keeps a
// table in local memory, which this build forbids (-warn-lmem-usage). x = q pi/2 + r, |r| <= pi/4
// (Cody-Waite below 2^19, Payne-Hanek above), then core/sincos_series.h's Taylor series.

// Scalar doubles for core/sincos_series.h.
struct DeviceDoubles {
  __device__ static double splat(double x) { return x; }
  __device__ static double mul(double a, double b) { return a * b; }
  __device__ static double fma(double a, double b, double c) { return ::fma(a, b, c); }
  __device__ static double neg(double a) { return -a; }
  __device__ static double rint(double a) { return ::rint(a); }
};

// a = q pi/2 + r for 0 <= a <= 2^19 (Cody-Waite).
__device__ __forceinline__ double reduce_small(double a, int& q) {
  double k;
  const double r = sincos64::reduce<DeviceDoubles>(a, k);
  q = static_cast<int>(static_cast<int64_t>(k) & 3);
  return r;
}

// Word i (0-based, 32 bits each) of the binary expansion of 2/pi after the point.
__device__ __forceinline__ uint64_t two_over_pi_word(int i) {
  switch (i) {
    case 0: return 0xA2F9836Eu;
    case 1: return 0x4E441529u;
    case 2: return 0xFC2757D1u;
    case 3: return 0xF534DDC0u;
    case 4: return 0xDB629599u;
    case 5: return 0x3C439041u;
    default: return 0xFE5163ABu;
  }
}

// ax = q pi/2 + r for a finite float ax > 2^19 (Payne-Hanek): ax = M 2^E with a 24-bit M, and
// ax 2/pi mod 4 needs only the 128 bits of 2/pi from word i0 = (E - 2) / 32 on (earlier words give
// multiples of 4); the 152-bit product M W is kept in registers and the 64 bits holding 2 integer
// and 62 fraction bits of ax 2/pi are cut out of it.
__device__ __forceinline__ double reduce_large(float ax, int& q) {
  const uint32_t u = __float_as_uint(ax);
  const int e = static_cast<int>(u >> 23) - 150;
  const uint64_t m = (u & 0x7fffffu) | 0x800000u;
  const int i0 = e >= 2 ? (e - 2) >> 5 : 0;
  uint64_t acc = m * two_over_pi_word(i0 + 3);
  const uint64_t p0 = acc & 0xffffffffu;
  acc = m * two_over_pi_word(i0 + 2) + (acc >> 32);
  const uint64_t p1 = acc & 0xffffffffu;
  acc = m * two_over_pi_word(i0 + 1) + (acc >> 32);
  const uint64_t p2 = acc & 0xffffffffu;
  acc = m * two_over_pi_word(i0) + (acc >> 32);
  const uint64_t p3 = acc & 0xffffffffu, p4 = acc >> 32;
  (void)p0;  // below the window: its weight is at most 2^-63
  // ax 2/pi = (M W) 2^-(32 (i0 + 4) - e); the window starts at bit 32 (i0 + 4) - e - 62 = 32 + t.
  const int t = 32 * (i0 + 4) - e - 94;  // 1 <= t <= 38
  const uint64_t mid = (p2 << 32) | p1, hi = (p4 << 32) | p3;
  const uint64_t window = (mid >> t) | (hi << (64 - t));
  q = static_cast<int>((window + (uint64_t(1) << 61)) >> 62);  // rounded to the nearest quadrant
  const int64_t frac = static_cast<int64_t>(window << 2) >> 2;  // signed fraction, units of 2^-62
  return static_cast<double>(frac) * 3.4061215800865545e-19;  // pi/2 * 2^-62
}

// sin(a), cos(a) from the reduction a = q pi/2 + r.
__device__ __forceinline__ void sincos_quadrant(double r, int q, double& s, double& c) {
  double sr, cr;
  sincos64::taylor<DeviceDoubles>(r, sr, cr);
  switch (q & 3) {
    case 0: s = sr; c = cr; break;
    case 1: s = cr; c = -sr; break;
    case 2: s = -sr; c = -cr; break;
    default: s = -cr; c = sr; break;
  }
}

// sin and cos of a float, evaluated in float64 and rounded once.
__device__ __forceinline__ void sincos_f(float x, float& s, float& c) {
  const uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7f800000u) == 0x7f800000u) {  // inf, NaN
    s = c = x - x;
    return;
  }
  const float ax = fabsf(x);
  int q;
  const double r = ax <= 524288.0f ? reduce_small(static_cast<double>(ax), q) : reduce_large(ax, q);
  double sd, cd;
  sincos_quadrant(r, q, sd, cd);
  s = static_cast<float>((bits >> 31) ? -sd : sd);
  c = static_cast<float>(cd);
}
__device__ __forceinline__ float sin_f(float x) {
  float s, c;
  sincos_f(x, s, c);
  return s;
}
__device__ __forceinline__ float cos_f(float x) {
  float s, c;
  sincos_f(x, s, c);
  return c;
}

// ------------------------------------------------------------------------------------------------
// Philox random fills

// One thread per Philox block q: elements j = 4q + w - counter, w = 0..3, that fall in [0, n).
__global__ void random_uniform_kernel(float* dst, int64_t n, uint64_t seed, uint64_t counter, uint64_t blocks,
                                      float lo, float hi) {
  const float range = hi - lo;
  const uint64_t first = counter >> 2;
  for (uint64_t t = global_thread(); t < blocks; t += grid_threads()) {
    Philox4 r = philox4x32(first + t, seed);
    const int64_t j0 = int64_t((first + t) * 4 - counter);
DV_UNROLL
    for (int w = 0; w < 4; ++w) {
      int64_t j = j0 + w;
      if (j >= 0 && j < n) dst[j] = add_rn(lo, mul_rn(range, philox_unit(r.v[w])));
    }
  }
}

// One thread per Box-Muller pair q: elements 2q - counter and 2q + 1 - counter that fall in [0, n).
__global__ void random_normal_kernel(float* dst, int64_t n, uint64_t seed, uint64_t counter, uint64_t pairs,
                                     float mean, float std) {
  const uint64_t first = counter >> 1;
  for (uint64_t t = global_thread(); t < pairs; t += grid_threads()) {
    // philox_normal_pair, with the sin/cos above (CUDA's would need local memory).
    const Philox4 r = philox4x32(first + t, seed);
    const double u1 = philox_unit(r.v[0]), u2 = philox_unit(r.v[1]);
    const double radius = sqrt(-2.0 * log(u1));
    int q;
    const double a = reduce_small(6.283185307179586 * u2, q);
    double sa, ca;
    sincos_quadrant(a, q, sa, ca);
    const float z[2] = {static_cast<float>(radius * ca), static_cast<float>(radius * sa)};
    const int64_t j0 = int64_t((first + t) * 2 - counter);
DV_UNROLL
    for (int w = 0; w < 2; ++w) {
      int64_t j = j0 + w;
      if (j >= 0 && j < n) dst[j] = add_rn(mean, mul_rn(std, z[w]));
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Unary maps: the CPU's formulas (activation.h, simd.h)

constexpr float kExpLo = -87.3365447504019f, kExpHi = 88.3762626647949f;
constexpr float kSqrt2OverPi = 0.7978845608028654f, kGeluCubic = 0.044715f;
constexpr float kGeluLinear = -2.0f * kSqrt2OverPi, kGeluCube = -2.0f * kSqrt2OverPi * kGeluCubic;
constexpr float kGeluGradCube = 6.0f * kSqrt2OverPi * kGeluCubic, kGeluGradLinear = 2.0f * kSqrt2OverPi;

// The SIMD max/min: the second operand when the comparison is false (NaN, equal).
__device__ __forceinline__ float vmax(float a, float b) { return a > b ? a : b; }
__device__ __forceinline__ float vmin(float a, float b) { return a < b ? a : b; }

// exp of x clamped to [kExpLo, kExpHi]: 2^k p(r), as simd.h's vexp_clamped.
__device__ __forceinline__ float exp_clamped(float x) {
  float xc = vmin(vmax(x, kExpLo), kExpHi);
  float k = floorf(fmaf(xc, 1.44269504088896341f, 0.5f));
  float r = fmaf(k, -0.693359375f, xc);
  r = fmaf(k, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  float r2 = mul_rn(r, r);
  p = fmaf(p, r2, add_rn(r, 1.0f));
  return mul_rn(p, __int_as_float((static_cast<int>(k) + 127) << 23));
}
// exp: exp_clamped, 0 below kExpLo, NaN kept.
__device__ __forceinline__ float exp_full(float x) {
  float y = exp_clamped(x);
  if (x < kExpLo) y = 0.0f;
  if (x != x) y = x;
  return y;
}
__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + exp_full(0.0f - x)); }
__device__ __forceinline__ float tanh_f(float x) { return sub_rn(mul_rn(2.0f, sigmoid_f(x + x)), 1.0f); }
__device__ __forceinline__ float gelu_f(float x) {
  float minus_2u = x * fmaf(kGeluCube, x * x, kGeluLinear);
  return x / (1.0f + exp_clamped(minus_2u));
}
__device__ __forceinline__ float gelu_grad_f(float x) {
  float x2 = mul_rn(x, x);
  float e = exp_clamped(x * fmaf(kGeluCube, x2, kGeluLinear));
  float s = 1.0f / (1.0f + e);
  float two_du = fmaf(kGeluGradCube, x2, kGeluGradLinear);
  return s * fmaf(e * s, x * two_du, 1.0f);
}

template <int OP>
__device__ __forceinline__ float unary_f(float v, float alpha, float beta) {
  switch (static_cast<UnaryOp>(OP)) {
    case UnaryOp::neg: return 0.0f - v;
    case UnaryOp::exp: return exp_full(v);
    case UnaryOp::log: return logf(v);
    case UnaryOp::sqrt: return __fsqrt_rn(v);
    case UnaryOp::rsqrt: return __fdiv_rn(1.0f, __fsqrt_rn(v));
    case UnaryOp::silu: return v * sigmoid_f(v);
    case UnaryOp::gelu_tanh: return gelu_f(v);
    case UnaryOp::affine: return fmaf(alpha, v, beta);
    case UnaryOp::square: return v * v;
    case UnaryOp::abs: return vmax(v, 0.0f - v);
    case UnaryOp::relu: return vmax(v, 0.0f);
    case UnaryOp::tanh: return tanh_f(v);
    case UnaryOp::sigmoid: return sigmoid_f(v);
    case UnaryOp::pow: return powf(v, alpha);
    case UnaryOp::reciprocal: return __fdiv_rn(1.0f, v);
    case UnaryOp::sin: return sin_f(v);
    case UnaryOp::cos: return cos_f(v);
  }
  return v;
}

// dx = dy * f'(x), as unary_grad in cpu/simd/elementwise.cpp.
template <int OP>
__device__ __forceinline__ float unary_grad_f(float v, float g, float alpha) {
  switch (static_cast<UnaryOp>(OP)) {
    case UnaryOp::neg: return 0.0f - g;
    case UnaryOp::exp: return g * exp_full(v);
    case UnaryOp::log: return __fdiv_rn(g, v);
    case UnaryOp::sqrt: return __fdiv_rn(g * 0.5f, __fsqrt_rn(v));
    case UnaryOp::rsqrt: return 0.0f - __fdiv_rn(g * 0.5f, v * __fsqrt_rn(v));
    case UnaryOp::silu: {
      float s = sigmoid_f(v);
      return mul_rn(g, s) * fmaf(v, 1.0f - s, 1.0f);
    }
    case UnaryOp::gelu_tanh: return g * gelu_grad_f(v);
    case UnaryOp::affine: return alpha * g;
    case UnaryOp::square: return mul_rn(2.0f, v) * g;
    case UnaryOp::abs: return g * (v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f));
    case UnaryOp::relu: return g * (v > 0 ? 1.0f : 0.0f);
    case UnaryOp::tanh: {
      float t = tanh_f(v);
      return g * sub_rn(1.0f, mul_rn(t, t));
    }
    case UnaryOp::sigmoid: {
      float s = sigmoid_f(v);
      return mul_rn(g, s) * (1.0f - s);
    }
    case UnaryOp::pow: return g * mul_rn(alpha, powf(v, alpha - 1.0f));
    case UnaryOp::reciprocal: return 0.0f - __fdiv_rn(g, mul_rn(v, v));
    case UnaryOp::sin: return g * cos_f(v);
    case UnaryOp::cos: return g * (0.0f - sin_f(v));
  }
  return g;
}

template <int OP>
__global__ void unary_kernel(const float* x, float* y, VecPlan p, float alpha, float beta) {
  for_plan(
      p, [&](int64_t i) { y[i] = unary_f<OP>(x[i], alpha, beta); },
      [&](int64_t i) {
        float4 v = *reinterpret_cast<const float4*>(x + i);
        v.x = unary_f<OP>(v.x, alpha, beta);
        v.y = unary_f<OP>(v.y, alpha, beta);
        v.z = unary_f<OP>(v.z, alpha, beta);
        v.w = unary_f<OP>(v.w, alpha, beta);
        *reinterpret_cast<float4*>(y + i) = v;
      });
}

template <int OP>
__global__ void unary_grad_kernel(const float* x, const float* dy, float* dx, VecPlan p, float alpha) {
  for_plan(
      p, [&](int64_t i) { dx[i] = unary_grad_f<OP>(x[i], dy[i], alpha); },
      [&](int64_t i) {
        float4 v = *reinterpret_cast<const float4*>(x + i), g = *reinterpret_cast<const float4*>(dy + i);
        g.x = unary_grad_f<OP>(v.x, g.x, alpha);
        g.y = unary_grad_f<OP>(v.y, g.y, alpha);
        g.z = unary_grad_f<OP>(v.z, g.z, alpha);
        g.w = unary_grad_f<OP>(v.w, g.w, alpha);
        *reinterpret_cast<float4*>(dx + i) = g;
      });
}

#define DV_FOR_EACH_UNARY_OP(X)                                                                                    \
  X(neg) X(exp) X(log) X(sqrt) X(rsqrt) X(silu) X(gelu_tanh) X(affine) X(square) X(abs) X(relu) X(tanh) X(sigmoid) \
      X(pow) X(reciprocal) X(sin) X(cos)

// ------------------------------------------------------------------------------------------------
// Binary maps

template <int OP>
__device__ __forceinline__ float binary_f(float a, float b) {
  switch (static_cast<BinaryOp>(OP)) {
    case BinaryOp::add: return __fadd_rn(a, b);
    case BinaryOp::sub: return __fsub_rn(a, b);
    case BinaryOp::mul: return __fmul_rn(a, b);
    case BinaryOp::div: return __fdiv_rn(a, b);
  }
  return a;
}

// rank <= 1 after simplification: a and b each contiguous (step 1) or one broadcast value (step 0).
template <int OP, bool A_BCAST, bool B_BCAST>
__global__ void binary_flat_kernel(const float* a, const float* b, float* out, VecPlan p) {
  for_plan(
      p, [&](int64_t i) { out[i] = binary_f<OP>(a[A_BCAST ? 0 : i], b[B_BCAST ? 0 : i]); },
      [&](int64_t i) {
        float4 va = A_BCAST ? make_float4(a[0], a[0], a[0], a[0]) : *reinterpret_cast<const float4*>(a + i);
        float4 vb = B_BCAST ? make_float4(b[0], b[0], b[0], b[0]) : *reinterpret_cast<const float4*>(b + i);
        *reinterpret_cast<float4*>(out + i) =
            make_float4(binary_f<OP>(va.x, vb.x), binary_f<OP>(va.y, vb.y), binary_f<OP>(va.z, vb.z),
                        binary_f<OP>(va.w, vb.w));
      });
}

template <int OP, typename I>
__global__ void binary_general_kernel(const float* a, const float* b, float* out, StridedParams<I> p, I n) {
  using U = std::make_unsigned_t<I>;  // (see copy_general_kernel)
  const U stride = static_cast<U>(gridDim.x) * blockDim.x;
  for (U i = static_cast<U>(blockIdx.x) * blockDim.x + threadIdx.x; i < static_cast<U>(n); i += stride) {
    I oa, ob;
    strided_offsets(p, static_cast<I>(i), oa, ob);
    out[i] = binary_f<OP>(a[oa], b[ob]);
  }
}

template <int OP>
void binary_op(const float* a, const float* b, float* out, int rank, const int64_t* shape, const int64_t* sa,
               const int64_t* sb) {
  Dims x;
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) {
    n *= shape[d];
    if (shape[d] == 1) continue;
    x.shape[x.rank] = shape[d];
    x.s[0][x.rank] = sa[d];
    x.s[1][x.rank] = sb[d];
    ++x.rank;
  }
  if (n == 0) return;
  merge_dims(x, 2);
  if (x.rank == 0 || (x.rank == 1 && (x.s[0][0] == 0 || x.s[0][0] == 1) && (x.s[1][0] == 0 || x.s[1][0] == 1))) {
    const bool ab = x.rank == 0 || x.s[0][0] == 0, bb = x.rank == 0 || x.s[1][0] == 0;
    VecPlan p = vec_plan(n, {out, ab ? nullptr : a, bb ? nullptr : b});
    if (ab && bb) launch("binary", binary_flat_kernel<OP, true, true>, blocks_for(p), kThreads, 0, a, b, out, p);
    else if (ab) launch("binary", binary_flat_kernel<OP, true, false>, blocks_for(p), kThreads, 0, a, b, out, p);
    else if (bb) launch("binary", binary_flat_kernel<OP, false, true>, blocks_for(p), kThreads, 0, a, b, out, p);
    else launch("binary", binary_flat_kernel<OP, false, false>, blocks_for(p), kThreads, 0, a, b, out, p);
    return;
  }
  if (fits_u32(x, 2, n)) {
    launch("binary", binary_general_kernel<OP, int32_t>, blocks_for(n), kThreads, 0, a, b, out,
           strided_params<int32_t>(x), static_cast<int32_t>(n));
  } else {
    launch("binary", binary_general_kernel<OP, int64_t>, blocks_for(n), kThreads, 0, a, b, out,
           strided_params<int64_t>(x), n);
  }
}

// ------------------------------------------------------------------------------------------------
// axpby: dst = fma(alpha, dst, beta * src), as the CPU's vector loop

// With a control block (a captured training step's EMA): alpha, beta from it, nothing unless it applies.
__global__ void axpby_kernel(float* dst, const float* src, VecPlan p, float alpha, float beta, const float* control) {
  if (control) {
    if (control[cpu::step_control::apply] == 0.f) return;
    alpha = control[cpu::step_control::ema_beta];
    beta = control[cpu::step_control::ema_one_minus_beta];
  }
  for_plan(
      p, [&](int64_t i) { dst[i] = fmaf(alpha, dst[i], mul_rn(beta, src[i])); },
      [&](int64_t i) {
        float4 d = *reinterpret_cast<const float4*>(dst + i), s = *reinterpret_cast<const float4*>(src + i);
        d.x = fmaf(alpha, d.x, mul_rn(beta, s.x));
        d.y = fmaf(alpha, d.y, mul_rn(beta, s.y));
        d.z = fmaf(alpha, d.z, mul_rn(beta, s.z));
        d.w = fmaf(alpha, d.w, mul_rn(beta, s.w));
        *reinterpret_cast<float4*>(dst + i) = d;
      });
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Entry points

void copy_strided(const void* src_v, void* dst_v, int rank, const int64_t* shape, const int64_t* src_strides,
                  const int64_t* dst_strides) {
  const uint32_t* src = static_cast<const uint32_t*>(src_v);
  uint32_t* dst = static_cast<uint32_t*>(dst_v);
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  if (n == 0) return;
  // Dims of size > 1, ordered by destination stride (largest first; stable), then merged.
  int order[kMaxRank], m = 0;
  for (int d = 0; d < rank; ++d)
    if (shape[d] != 1) order[m++] = d;
  std::stable_sort(order, order + m, [&](int x, int y) {
    int64_t sx = dst_strides[x] < 0 ? -dst_strides[x] : dst_strides[x];
    int64_t sy = dst_strides[y] < 0 ? -dst_strides[y] : dst_strides[y];
    return sx > sy;
  });
  Dims x;
  for (int j = 0; j < m; ++j) {
    x.shape[j] = shape[order[j]];
    x.s[0][j] = src_strides[order[j]];
    x.s[1][j] = dst_strides[order[j]];
  }
  x.rank = m;
  merge_dims(x, 2);
  if (x.rank == 0) {
    launch("copyStrided", copy_one_kernel, 1, 1, 0, src, dst);
    return;
  }
  const int last = x.rank - 1;
  if (x.rank == 1 && x.s[0][0] == 1 && x.s[1][0] == 1) {
    VecPlan p = vec_plan(n, {src, dst});
    launch("copyStrided", copy_flat_kernel, blocks_for(p), kThreads, 0, src, dst, p);
    return;
  }
  // A transposing copy: the source's unit-stride dim is another dim than the destination's last.
  int k = -1;
  if (x.s[0][last] != 1 && x.shape[last] >= 8) {
    for (int d = 0; d < last; ++d)
      if (x.s[0][d] == 1 && x.shape[d] >= 8) k = d;
  }
  if (k >= 0) {
    TileParams t{};
    t.nl = x.shape[last];
    t.nk = x.shape[k];
    t.ssl = x.s[0][last];
    t.dsl = x.s[1][last];
    t.ssk = x.s[0][k];
    t.dsk = x.s[1][k];
    for (int d = 0; d < last; ++d) {
      if (d == k) continue;
      t.bshape[t.brank] = x.shape[d];
      t.bss[t.brank] = x.s[0][d];
      t.bds[t.brank] = x.s[1][d];
      ++t.brank;
    }
    t.tiles_l = ceil_div(t.nl, kTile);
    t.batch = n / (t.nl * t.nk);
    const int64_t tiles = t.tiles_l * ceil_div(t.nk, kTile);
    if (tiles < (int64_t(1) << 31)) {
      dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min<int64_t>(t.batch, 65535)));
      launch("copyStrided", copy_tiled_kernel, grid, dim3(kTile, kTileRows), 0, src, dst, t);
      return;
    }
  }
  if (fits_u32(x, 2, n)) {
    launch("copyStrided", copy_general_kernel<int32_t>, blocks_for(n), kThreads, 0, src, dst,
           strided_params<int32_t>(x), static_cast<int32_t>(n));
  } else {
    launch("copyStrided", copy_general_kernel<int64_t>, blocks_for(n), kThreads, 0, src, dst,
           strided_params<int64_t>(x), n);
  }
}

void fill(float* dst, int64_t n, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  fill_bits(dst, n, bits);
}

void fill_i32(int32_t* dst, int64_t n, int32_t value) { fill_bits(dst, n, static_cast<uint32_t>(value)); }

void random_normal(float* dst, int64_t n, uint64_t seed, uint64_t counter, float mean, float std) {
  if (n <= 0) return;
  const uint64_t pairs = ((counter + uint64_t(n) - 1) >> 1) - (counter >> 1) + 1;
  launch("randomFill", random_normal_kernel, blocks_for(int64_t(pairs)), kThreads, 0, dst, n, seed, counter, pairs,
         mean, std);
}

void random_uniform(float* dst, int64_t n, uint64_t seed, uint64_t counter, float lo, float hi) {
  if (n <= 0) return;
  const uint64_t blocks = ((counter + uint64_t(n) - 1) >> 2) - (counter >> 2) + 1;
  launch("randomFill", random_uniform_kernel, blocks_for(int64_t(blocks)), kThreads, 0, dst, n, seed, counter,
         blocks, lo, hi);
}

void unary(cpu::UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta) {
  if (n <= 0) return;
  VecPlan p = vec_plan(n, {x, y});
  switch (op) {
#define DV_UNARY_CASE(name)                                                                                  \
  case UnaryOp::name:                                                                                        \
    return launch("unary", unary_kernel<static_cast<int>(UnaryOp::name)>, blocks_for(p), kThreads, 0, x, y, p, \
                  alpha, beta);
    DV_FOR_EACH_UNARY_OP(DV_UNARY_CASE)
#undef DV_UNARY_CASE
  }
}

void unary_grad(cpu::UnaryOp op, const float* x, const float* dy, float* dx, int64_t n, float alpha, float beta) {
  (void)beta;  // no gradient depends on it (affine's is alpha)
  if (n <= 0) return;
  VecPlan p = vec_plan(n, {x, dy, dx});
  switch (op) {
#define DV_UNARY_GRAD_CASE(name)                                                                           \
  case UnaryOp::name:                                                                                      \
    return launch("unaryGrad", unary_grad_kernel<static_cast<int>(UnaryOp::name)>, blocks_for(p), kThreads, 0, \
                  x, dy, dx, p, alpha);
    DV_FOR_EACH_UNARY_OP(DV_UNARY_GRAD_CASE)
#undef DV_UNARY_GRAD_CASE
  }
}

void binary(cpu::BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* shape,
            const int64_t* a_strides, const int64_t* b_strides) {
  switch (op) {
    case BinaryOp::add: return binary_op<int(BinaryOp::add)>(a, b, out, rank, shape, a_strides, b_strides);
    case BinaryOp::sub: return binary_op<int(BinaryOp::sub)>(a, b, out, rank, shape, a_strides, b_strides);
    case BinaryOp::mul: return binary_op<int(BinaryOp::mul)>(a, b, out, rank, shape, a_strides, b_strides);
    case BinaryOp::div: return binary_op<int(BinaryOp::div)>(a, b, out, rank, shape, a_strides, b_strides);
  }
}

void axpby(float* dst, const float* src, int64_t n, float alpha, float beta) {
  if (n <= 0) return;
  VecPlan p = vec_plan(n, {dst, src});
  launch("axpby", axpby_kernel, blocks_for(p), kThreads, 0, dst, src, p, alpha, beta, static_cast<const float*>(nullptr));
}

void axpby_many(const cpu::AxpbyTensor* tensors, int64_t count, float alpha, float beta) {
  for (int64_t t = 0; t < count; ++t) axpby(tensors[t].dst, tensors[t].src, tensors[t].n, alpha, beta);
}

void ema_controlled(float* shadow, const float* param, int64_t n, const float* control) {
  if (n <= 0) return;
  VecPlan p = vec_plan(n, {shadow, param});
  launch("axpby", axpby_kernel, blocks_for(p), kThreads, 0, shadow, param, p, 0.f, 0.f, control);
}

}  // namespace dv::cuda
