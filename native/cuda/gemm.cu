// Batched GEMM with the bias/GELU epilogue on the GPU (gemm.h; the semantics are cpu/gemm.h's).
//
// Dispatch: k == 0 or alpha == 0 is C = beta * C plus the epilogue (scale_kernel; A and B are not
// read, as BLAS defines it). Otherwise cuBLASLt runs it where it is loaded and can do the case
// exactly (cublaslt.cpp; for bf16 precision on copies of the operands rounded here by
// round_bf16_kernel, as the CPU rounds them), else the project's own kernels below, which are also
// the whole story in the emulator build. A batch whose B is broadcast (stride 0) over items stored
// back to back is first folded into one GEMM of batch * m rows, for either.
//
// Own kernels. Every block computes one BM x BN tile of C (tiles numbered in groups of 8 tile rows
// so that consecutive blocks share B columns in L2; batch items on grid.z; grid-stride loops over
// both beyond the grid's limits), walking K in steps of BK through two shared-memory buffers:
// the next step's operands are loaded from global memory into registers before the current step's
// products, and stored (converted) into the other buffer after them, so one __syncthreads per step
// suffices and the loads' latency hides behind the math. Tiles are loaded with float4 where the
// operand's address, leading dimension and batch stride allow it (checked at run time) and element
// by element, masked, at the edges of m, n and k (out-of-range elements are zero), so any sizes and
// strides work. How a tile is stored in shared memory depends on whether k or m/n runs along the
// operand's rows in memory (its transpose flag), so that loads are coalesced either way.
//
//   bf16 (tensor cores, mma.sync m16n8k16, fp32 accumulation): 128 x 128 x 32 tiles with 8 warps of
//     64 x 32 each (4 x 4 mma tiles, 64 accumulators per thread), or 64 x 64 x 32 with 4 warps of
//     32 x 32 where the big tiles would not fill the GPU. Operands are rounded to bfloat16 as they
//     are stored to shared memory (alpha folded into A first, subnormals to signed zero, round to
//     nearest even: exactly the CPU's VCVTNEPS2BF16 rounding), as k-pairs in 32-bit words, the
//     layout of mma's fragments:
//       k running along memory rows (A not transposed, B transposed): [row][32 k] as 16 words per
//         row, each 16-k half permuted (pairs 0,4,1,5,2,6,3,7) so that a lane's two fragment words
//         are adjacent (one 64-bit load), the two halves swapped on every other pair of rows (an
//         XOR swizzle): conflict-free 128-bit stores and 64-bit fragment loads.
//       m/n running along memory rows: [16 k-pairs][rows + 8 words]: 128-bit stores of 4 rows'
//         pairs, 32-bit fragment loads, the 8-word pad making the 32 lanes' banks distinct.
//   float32 (CUDA cores): 128 x 128 x 8 tiles, 256 threads of 8 x 8 results each (two 4 x 4 blocks
//     64 apart, so the 128-bit shared loads of a warp hit distinct banks or broadcast), or 64 x 64
//     with 64 threads; both operands stored k-major ([k][rows + 4]).
// Where m or n is at most 16, tiles would be mostly padding: the narrow kernel (one long-side index
// per thread against up to 16 short-side ones) or, for C within 4 x 16 / 16 x 4 / 8 x 8, the dot
// kernel (threads and blocks split K) take over, fp32 SIMT for either precision (see below).
// Where the tiles (or the narrow kernel's blocks) would leave multiprocessors idle and K is long, K
// is split into runs summed by separate blocks into a scratch block of partial sums, which
// reduce_kernel adds in run order. Every C element is thus summed in an order fixed by the GEMM's
// shape and the GPU's multiprocessor count, never by timing: results are the same run to run. The
// epilogue (beta * C, bias, `pre`, GELU with the CPU's formula) is applied to the finished sums as
// they are stored.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/common.cuh"
#include "cuda/cublaslt.h"
#include "cuda/gemm.h"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {

struct GemmParams {
  const float* a;
  const float* b;
  float* c;
  float* pre;          // or null
  const float* bias;   // or null
  int64_t m, n, k, batch;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
  int64_t tiles_m, tiles_n;
  float alpha, beta;
  bool gelu;
  bool vec_a, vec_b;  // float4 loads of A / B are aligned
  int vec_c;          // C (and pre) take aligned stores of this many floats: 4, 2 or 1
  // The narrow and dot kernels: op(A)(r, k) at a[r * a_rs + k * a_ks], op(B)(k, c) at
  // b[k * b_ks + c * b_cs]; operands rounded to bf16 when `bf16`; K cut into `splits` runs of
  // k_split whose partial sums go to `partial` (item, split, m, n) when splits > 1.
  int64_t a_rs, a_ks, b_ks, b_cs;
  bool bf16;
  int64_t k_split, splits;
  float* partial;
};

// ---- numerics shared with the CPU ----

// GELU, tanh form, as native/cpu/simd/activation.h computes it: x / (1 + exp(-2u)), u =
// sqrt(2/pi) (x + 0.044715 x^3), the exponent clamped to exp's finite range.
constexpr float kGeluLinear = -2.0f * 0.7978845608028654f, kGeluCube = -2.0f * 0.7978845608028654f * 0.044715f;
constexpr float kExpLo = -87.3365447504019f, kExpHi = 88.3762626647949f;
__device__ __forceinline__ float gelu_tanh(float x) {
  const float minus_2u = x * fmaf(kGeluCube, x * x, kGeluLinear);
  return x / (1.0f + expf(fminf(fmaxf(minus_2u, kExpLo), kExpHi)));
}

// The finished value of one C element: acc (alpha op(A) op(B)) + beta * C, + bias, `pre`, GELU.
__device__ __forceinline__ float finish(const GemmParams& p, float acc, const float* c, float bias, float* pre) {
  float v = p.beta != 0.0f ? fmaf(*c, p.beta, acc) : acc;
  if (p.bias) v += bias;
  if (pre) *pre = v;
  return p.gelu ? gelu_tanh(v) : v;
}

// x scaled, then zero and subnormal values to signed zero (VCVTNEPS2BF16's rule; mma and cvt keep
// subnormals), ready for pack_bf16x2's round to nearest even.
__device__ __forceinline__ float bf16_input(float x, float scale) {
  x *= scale;
  const uint32_t u = __float_as_uint(x);
  return (u & 0x7f800000u) == 0 ? __uint_as_float(u & 0x80000000u) : x;
}

// Four consecutive floats of a row at p[0..3], the ones at or past `limit` (counted from p) zero;
// one float4 load when `vec` (16-byte aligned) and all four are in range.
__device__ __forceinline__ void load4(const float* p, int64_t limit, bool vec, float* v) {
  if (vec && limit >= 4) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = j < limit ? p[j] : 0.0f;
  }
}

// Grouped tile order: blocks tile, tile + 1, ... walk 8 tile rows down a column of tiles before
// moving right, so the B columns a wave of blocks reads stay in L2.
__device__ __forceinline__ void tile_coords(const GemmParams& p, int64_t tile, int64_t& tm, int64_t& tn) {
  constexpr int64_t kGroup = 8;
  const int64_t per_group = kGroup * p.tiles_n;
  const int64_t first = tile / per_group * kGroup;
  const int64_t rows = p.tiles_m - first < kGroup ? p.tiles_m - first : kGroup;
  const int64_t in_group = tile % per_group;
  tm = first + in_group % rows;
  tn = in_group / rows;
}

// ---- bf16 tensor-core kernel ----

// One operand's BK = 32 slice of R rows (rows of op(A), or columns of op(B)), staged in registers
// as fp32 and stored to shared memory as bf16 k-pairs. KROW: k runs along the operand's memory
// rows (element (r, k) at base[r * ld + k]); else element (r, k) is at base[k * ld + r].
template <int R, bool KROW, int THREADS>
struct Bf16Slice {
  static constexpr int kWords = KROW ? R * 16 : 16 * (R + 8);  // shared words of one buffer
  static constexpr int kUnits = R * 4 / THREADS;               // 8-float units per thread
  static_assert(R * 4 % THREADS == 0, "whole units per thread");
  float v[kUnits][8];

  // Rows [r0, r0 + R) and k [k0, k0 + 32) of the operand at `base` (rows x K, leading dim ld).
  __device__ __forceinline__ void load(const float* base, int64_t ld, int64_t r0, int64_t rows, int64_t k0, int64_t K,
                                       bool vec, int tid) {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int u = tid + i * THREADS;
      float* x = v[i];
      float* y = v[i] + 4;
      if (KROW) {
        // unit: row r, 16-k half c, quarter q: k = c*16 + 4q .. +3 and +8 .. +11.
        const int r = u >> 2, c = (u >> 1) & 1, q = u & 1;
        const int64_t row = r0 + r, k = k0 + c * 16 + q * 4;
        if (row < rows) {
          const float* src = base + row * ld + k;
          load4(src, K - k, vec, x);
          load4(src + 8, K - k - 8, vec, y);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) x[j] = y[j] = 0.0f;
        }
      } else {
        // unit: k-pair kp, 4 rows from 4 * r4: memory rows k0 + 2kp and k0 + 2kp + 1.
        const int r4 = u % (R / 4), kp = u / (R / 4);
        const int64_t row = r0 + r4 * 4, k = k0 + kp * 2;
        const float* src = base + k * ld + row;
        if (k < K) {
          load4(src, rows - row, vec, x);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) x[j] = 0.0f;
        }
        if (k + 1 < K) {
          load4(src + ld, rows - row, vec, y);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) y[j] = 0.0f;
        }
      }
    }
  }

  __device__ __forceinline__ void store(uint32_t* s, float scale, int tid) const {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int u = tid + i * THREADS;
      float f[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = bf16_input(v[i][j], scale);
      uint4 w;
      if (KROW) {
        // Words 4q .. 4q+3 of the row's (swizzled) half c hold pairs 2q, 2q+4, 2q+1, 2q+5.
        const int r = u >> 2, c = (u >> 1) & 1, q = u & 1;
        w.x = pack_bf16x2(f[0], f[1]);
        w.y = pack_bf16x2(f[4], f[5]);
        w.z = pack_bf16x2(f[2], f[3]);
        w.w = pack_bf16x2(f[6], f[7]);
        *reinterpret_cast<uint4*>(s + r * 16 + ((c ^ ((r >> 1) & 1)) << 3) + q * 4) = w;
      } else {
        const int r4 = u % (R / 4), kp = u / (R / 4);
        w.x = pack_bf16x2(f[0], f[4]);
        w.y = pack_bf16x2(f[1], f[5]);
        w.z = pack_bf16x2(f[2], f[6]);
        w.w = pack_bf16x2(f[3], f[7]);
        *reinterpret_cast<uint4*>(s + kp * (R + 8) + r4 * 4) = w;
      }
    }
  }

  // The words of row `r` (lane's g already added) for k-pairs kk*8 + t and kk*8 + t + 4.
  __device__ __forceinline__ static void pair(const uint32_t* s, int r, int kk, int t, uint32_t& lo, uint32_t& hi) {
    if (KROW) {
      const uint2 x = *reinterpret_cast<const uint2*>(s + r * 16 + ((kk ^ ((r >> 1) & 1)) << 3) + t * 2);
      lo = x.x, hi = x.y;
    } else {
      lo = s[(kk * 8 + t) * (R + 8) + r];
      hi = s[(kk * 8 + t + 4) * (R + 8) + r];
    }
  }
};

template <int BM, int BN, int WM, int WN, bool TA, bool TB>
__global__ void __launch_bounds__(WM * WN * 32, 1) gemm_bf16_kernel(GemmParams p) {
  constexpr int kThreads = WM * WN * 32, WTM = BM / WM, WTN = BN / WN, MT = WTM / 16, NT = WTN / 8;
  using SliceA = Bf16Slice<BM, !TA, kThreads>;  // A not transposed: k along its rows
  using SliceB = Bf16Slice<BN, TB, kThreads>;   // B transposed (n x k): k along its rows
  constexpr int kWordsA = SliceA::kWords, kWordsB = SliceB::kWords;
  __shared__ uint4 smem[(2 * (kWordsA + kWordsB)) / 4];
  uint32_t* const sa = reinterpret_cast<uint32_t*>(smem);
  uint32_t* const sb = sa + 2 * kWordsA;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wr = (warp / WN) * WTM, wc = (warp % WN) * WTN;  // the warp's tile in the block's
  const int64_t tiles = p.tiles_m * p.tiles_n;
  // This block's run of K (grid.y = the number of runs): k in [k0, k_end), all of K unless split.
  const int64_t split = blockIdx.y;
  const int64_t k0 = split * p.k_split, k_end = k0 + p.k_split < p.k ? k0 + p.k_split : p.k;
  const int64_t k_steps = (k_end - k0 + 31) / 32;

  for (int64_t item = blockIdx.z; item < p.batch; item += gridDim.z) {
    const float* A = p.a + item * p.stride_a;
    const float* B = p.b + item * p.stride_b;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      int64_t tm, tn;
      tile_coords(p, tile, tm, tn);
      const int64_t r0 = tm * BM, c0 = tn * BN;
      float acc[MT][NT][4];
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

      SliceA la;
      SliceB lb;
      la.load(A, p.lda, r0, p.m, k0, k_end, p.vec_a, tid);
      lb.load(B, p.ldb, c0, p.n, k0, k_end, p.vec_b, tid);
      la.store(sa, p.alpha, tid);
      lb.store(sb, 1.0f, tid);
      __syncthreads();
      for (int64_t step = 0; step < k_steps; ++step) {
        const int buf = static_cast<int>(step & 1);
        const bool more = step + 1 < k_steps;
        if (more) {
          la.load(A, p.lda, r0, p.m, k0 + (step + 1) * 32, k_end, p.vec_a, tid);
          lb.load(B, p.ldb, c0, p.n, k0 + (step + 1) * 32, k_end, p.vec_b, tid);
        }
        const uint32_t* xa = sa + buf * kWordsA;
        const uint32_t* xb = sb + buf * kWordsB;
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
          uint32_t fa[MT][4], fb[NT][2];
#pragma unroll
          for (int i = 0; i < MT; ++i) {
            SliceA::pair(xa, wr + i * 16 + g, kk, t, fa[i][0], fa[i][2]);
            SliceA::pair(xa, wr + i * 16 + g + 8, kk, t, fa[i][1], fa[i][3]);
          }
#pragma unroll
          for (int j = 0; j < NT; ++j) SliceB::pair(xb, wc + j * 8 + g, kk, t, fb[j][0], fb[j][1]);
#pragma unroll
          for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int j = 0; j < NT; ++j) mma_bf16_16816(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        if (more) {
          la.store(sa + (buf ^ 1) * kWordsA, p.alpha, tid);
          lb.store(sb + (buf ^ 1) * kWordsB, 1.0f, tid);
        }
        __syncthreads();
      }

      // Epilogue: lane holds C[g (+8)][2t, 2t+1] of each 16 x 8 mma tile.
      if (p.splits > 1) {
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int64_t row = r0 + wr + i * 16 + g + (e >> 1) * 8, col = c0 + wc + j * 8 + t * 2 + (e & 1);
              if (row < p.m && col < p.n) p.partial[((item * p.splits + split) * p.m + row) * p.n + col] = acc[i][j][e];
            }
        continue;
      }
      float* C = p.c + item * p.stride_c;
      float* P = p.pre ? p.pre + item * p.stride_c : nullptr;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const int64_t col = c0 + wc + j * 8 + t * 2;
        if (col >= p.n) continue;
        const bool two = col + 1 < p.n;
        const float bias0 = p.bias ? p.bias[col] : 0.0f, bias1 = p.bias && two ? p.bias[col + 1] : 0.0f;
#pragma unroll
        for (int i = 0; i < MT; ++i) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int64_t row = r0 + wr + i * 16 + g + h * 8;
            if (row >= p.m) continue;
            const int64_t at = row * p.ldc + col;
            float* pre = P ? P + at : nullptr;
            const float v0 = finish(p, acc[i][j][2 * h], C + at, bias0, pre);
            if (two && p.vec_c >= 2) {
              const float v1 = finish(p, acc[i][j][2 * h + 1], C + at + 1, bias1, pre ? pre + 1 : nullptr);
              *reinterpret_cast<float2*>(C + at) = make_float2(v0, v1);
            } else {
              C[at] = v0;
              if (two) C[at + 1] = finish(p, acc[i][j][2 * h + 1], C + at + 1, bias1, pre ? pre + 1 : nullptr);
            }
          }
        }
      }
    }
  }
}

// ---- float32 SIMT kernel ----

// One operand's BK = 8 slice of R rows, staged in registers and stored k-major to shared memory
// ([8][R + 4] floats), alpha folded in.
template <int R, bool KROW, int THREADS>
struct F32Slice {
  static constexpr int kStride = R + 4;
  static constexpr int kFloats = 8 * kStride;
  static constexpr int kUnits = R * 2 / THREADS;  // float4 units per thread
  static_assert(R * 2 % THREADS == 0, "whole units per thread");
  float v[kUnits][4];

  __device__ __forceinline__ void load(const float* base, int64_t ld, int64_t r0, int64_t rows, int64_t k0, int64_t K,
                                       bool vec, int tid) {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int u = tid + i * THREADS;
      if (KROW) {
        const int r = u >> 1, q = u & 1;  // row r, k = 4q .. 4q+3
        const int64_t row = r0 + r, k = k0 + q * 4;
        if (row < rows) {
          load4(base + row * ld + k, K - k, vec, v[i]);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) v[i][j] = 0.0f;
        }
      } else {
        const int r4 = u % (R / 4), kq = u / (R / 4);  // k = kq, rows 4 r4 .. +3
        const int64_t row = r0 + r4 * 4, k = k0 + kq;
        if (k < K) {
          load4(base + k * ld + row, rows - row, vec, v[i]);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) v[i][j] = 0.0f;
        }
      }
    }
  }

  __device__ __forceinline__ void store(float* s, float scale, int tid) const {
#pragma unroll
    for (int i = 0; i < kUnits; ++i) {
      const int u = tid + i * THREADS;
      if (KROW) {
        const int r = u >> 1, q = u & 1;
#pragma unroll
        for (int j = 0; j < 4; ++j) s[(q * 4 + j) * kStride + r] = v[i][j] * scale;
      } else {
        const int r4 = u % (R / 4), kq = u / (R / 4);
        *reinterpret_cast<float4*>(s + kq * kStride + r4 * 4) =
            make_float4(v[i][0] * scale, v[i][1] * scale, v[i][2] * scale, v[i][3] * scale);
      }
    }
  }
};

template <int BM, int BN, bool TA, bool TB>
__global__ void __launch_bounds__(BM / 8 * (BN / 8), BM == 128 ? 2 : 1) gemm_f32_kernel(GemmParams p) {
  constexpr int TX = BN / 8, kThreads = BM / 8 * TX;  // thread (ty, tx): rows ty*4 (+BM/2), cols tx*4 (+BN/2)
  using SliceA = F32Slice<BM, !TA, kThreads>;
  using SliceB = F32Slice<BN, TB, kThreads>;
  constexpr int kFloatsA = SliceA::kFloats, kFloatsB = SliceB::kFloats;
  __shared__ float4 smem[(2 * (kFloatsA + kFloatsB)) / 4];
  float* const sa = reinterpret_cast<float*>(smem);
  float* const sb = sa + 2 * kFloatsA;

  const int tid = threadIdx.x, ty = tid / TX, tx = tid % TX;
  const int64_t tiles = p.tiles_m * p.tiles_n;
  // This block's run of K (grid.y = the number of runs): k in [k0, k_end), all of K unless split.
  const int64_t split = blockIdx.y;
  const int64_t k0 = split * p.k_split, k_end = k0 + p.k_split < p.k ? k0 + p.k_split : p.k;
  const int64_t k_steps = (k_end - k0 + 7) / 8;

  for (int64_t item = blockIdx.z; item < p.batch; item += gridDim.z) {
    const float* A = p.a + item * p.stride_a;
    const float* B = p.b + item * p.stride_b;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      int64_t tm, tn;
      tile_coords(p, tile, tm, tn);
      const int64_t r0 = tm * BM, c0 = tn * BN;
      float acc[8][8];
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

      SliceA la;
      SliceB lb;
      la.load(A, p.lda, r0, p.m, k0, k_end, p.vec_a, tid);
      lb.load(B, p.ldb, c0, p.n, k0, k_end, p.vec_b, tid);
      la.store(sa, p.alpha, tid);
      lb.store(sb, 1.0f, tid);
      __syncthreads();
      for (int64_t step = 0; step < k_steps; ++step) {
        const int buf = static_cast<int>(step & 1);
        const bool more = step + 1 < k_steps;
        if (more) {
          la.load(A, p.lda, r0, p.m, k0 + (step + 1) * 8, k_end, p.vec_a, tid);
          lb.load(B, p.ldb, c0, p.n, k0 + (step + 1) * 8, k_end, p.vec_b, tid);
        }
        const float* xa = sa + buf * kFloatsA;
        const float* xb = sb + buf * kFloatsB;
#pragma unroll
        for (int kk = 0; kk < 8; ++kk) {
          float fa[8], fb[8];
          const float4 a0 = *reinterpret_cast<const float4*>(xa + kk * SliceA::kStride + ty * 4);
          const float4 a1 = *reinterpret_cast<const float4*>(xa + kk * SliceA::kStride + BM / 2 + ty * 4);
          const float4 b0 = *reinterpret_cast<const float4*>(xb + kk * SliceB::kStride + tx * 4);
          const float4 b1 = *reinterpret_cast<const float4*>(xb + kk * SliceB::kStride + BN / 2 + tx * 4);
          fa[0] = a0.x, fa[1] = a0.y, fa[2] = a0.z, fa[3] = a0.w;
          fa[4] = a1.x, fa[5] = a1.y, fa[6] = a1.z, fa[7] = a1.w;
          fb[0] = b0.x, fb[1] = b0.y, fb[2] = b0.z, fb[3] = b0.w;
          fb[4] = b1.x, fb[5] = b1.y, fb[6] = b1.z, fb[7] = b1.w;
#pragma unroll
          for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
        }
        if (more) {
          la.store(sa + (buf ^ 1) * kFloatsA, p.alpha, tid);
          lb.store(sb + (buf ^ 1) * kFloatsB, 1.0f, tid);
        }
        __syncthreads();
      }

      if (p.splits > 1) {
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            const int64_t row = r0 + (i >> 2) * (BM / 2) + ty * 4 + (i & 3);
            const int64_t col = c0 + (j >> 2) * (BN / 2) + tx * 4 + (j & 3);
            if (row < p.m && col < p.n) p.partial[((item * p.splits + split) * p.m + row) * p.n + col] = acc[i][j];
          }
        continue;
      }
      float* C = p.c + item * p.stride_c;
      float* P = p.pre ? p.pre + item * p.stride_c : nullptr;
#pragma unroll
      for (int jh = 0; jh < 2; ++jh) {
        const int64_t col = c0 + jh * (BN / 2) + tx * 4;
        if (col >= p.n) continue;
        const int64_t cols = p.n - col < 4 ? p.n - col : 4;
        float bias[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) bias[j] = p.bias && j < cols ? p.bias[col + j] : 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int64_t row = r0 + (i >> 2) * (BM / 2) + ty * 4 + (i & 3);
          if (row >= p.m) continue;
          const int64_t at = row * p.ldc + col;
          float out[4];
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (j < cols) out[j] = finish(p, acc[i][jh * 4 + j], C + at + j, bias[j], P ? P + at + j : nullptr);
          }
          if (cols == 4 && p.vec_c >= 4) {
            *reinterpret_cast<float4*>(C + at) = make_float4(out[0], out[1], out[2], out[3]);
          } else {
#pragma unroll
            for (int j = 0; j < 4; ++j)
              if (j < cols) C[at + j] = out[j];
          }
        }
      }
    }
  }
}

// ---- narrow problems: m or n (the "short" side) at most 16 ----
//
// Tiles of 64 or 128 rows would be mostly padding there (conv2d's forward with 2 or 3 output
// channels, its input gradient with kh*kw*Cin rows and few channels). Each thread computes one
// index of the long side against all NR of the short side (NR accumulators); the short operand's
// values for a run of KC k's sit in shared memory (read as broadcasts), the long operand is read
// straight from global memory (coalesced where its rows run along the long side). Few blocks along
// the long side: K is also split over grid.y (partial sums, reduce_kernel). bf16: operands rounded
// as they are read (exact products, fp32 sums): the CPU's numerics without tensor cores, which a
// 16 x 8 mma tile could hardly fill here.

// x * scale, rounded to bfloat16 and widened back when `bf16` (bf16_input + pack_bf16x2's rounding).
__device__ __forceinline__ float operand(float x, float scale, bool bf16) {
  if (!bf16) return x * scale;
  return __uint_as_float(pack_bf16x2(bf16_input(x, scale), 0.0f) << 16);
}

// The finished C element of the narrow and dot kernels: C(i, j) = act(acc + beta C + bias), or the
// partial sum of this split.
__device__ __forceinline__ void narrow_store(const GemmParams& p, int64_t item, int64_t split, int64_t i, int64_t j,
                                             float acc) {
  if (p.splits > 1) {
    p.partial[((item * p.splits + split) * p.m + i) * p.n + j] = acc;
    return;
  }
  const int64_t at = item * p.stride_c + i * p.ldc + j;
  p.c[at] = finish(p, acc, p.c + at, p.bias ? p.bias[j] : 0.0f, p.pre ? p.pre + at : nullptr);
}

template <int NR, bool SHORT_M>
__global__ void __launch_bounds__(256) gemm_narrow_kernel(GemmParams p) {
  constexpr int KC = 64;
  __shared__ float4 panel4[KC * NR / 4];  // [KC][NR]: the short operand, k-major
  float* const panel = reinterpret_cast<float*>(panel4);
  const int64_t short_n = SHORT_M ? p.m : p.n, long_n = SHORT_M ? p.n : p.m;
  const int short_rows = static_cast<int>(short_n < NR ? short_n : NR);
  const int64_t long_blocks = (long_n + 255) / 256;
  for (int e = threadIdx.x; e < KC * NR; e += 256) panel[e] = 0.0f;
  __syncthreads();
  for (int64_t item = blockIdx.z; item < p.batch; item += gridDim.z) {
    const float* A = p.a + item * p.stride_a;
    const float* B = p.b + item * p.stride_b;
    for (int64_t split = blockIdx.y; split < p.splits; split += gridDim.y) {
      const int64_t k_begin = split * p.k_split, k_end = k_begin + p.k_split < p.k ? k_begin + p.k_split : p.k;
      for (int64_t lb = blockIdx.x; lb < long_blocks; lb += gridDim.x) {
        const int64_t idx = lb * 256 + threadIdx.x;
        const bool live = idx < long_n;
        float acc[NR];
#pragma unroll
        for (int i = 0; i < NR; ++i) acc[i] = 0.0f;
        for (int64_t k0 = k_begin; k0 < k_end; k0 += KC) {
          const int kn = static_cast<int>(k_end - k0 < KC ? k_end - k0 : KC);
          // Rows i >= short_n of the panel stay zero (set below); k's past kn are not read.
          for (int e = threadIdx.x; e < short_rows * kn; e += 256) {
            const int i = e / kn, kk = e % kn;
            const int64_t k = k0 + kk;
            panel[kk * NR + i] = SHORT_M ? operand(A[i * p.a_rs + k * p.a_ks], p.alpha, p.bf16)
                                         : operand(B[k * p.b_ks + i * p.b_cs], 1.0f, p.bf16);
          }
          __syncthreads();
          if (live) {
            const float* L = SHORT_M ? B + idx * p.b_cs + k0 * p.b_ks : A + idx * p.a_rs + k0 * p.a_ks;
            const int64_t step = SHORT_M ? p.b_ks : p.a_ks;
            for (int kk = 0; kk < kn; ++kk) {
              const float x = operand(L[kk * step], SHORT_M ? 1.0f : p.alpha, p.bf16);
#pragma unroll
              for (int i = 0; i < NR; i += 4) {
                const float4 s = panel4[(kk * NR + i) / 4];
                acc[i] = fmaf(s.x, x, acc[i]);
                acc[i + 1] = fmaf(s.y, x, acc[i + 1]);
                acc[i + 2] = fmaf(s.z, x, acc[i + 2]);
                acc[i + 3] = fmaf(s.w, x, acc[i + 3]);
              }
            }
          }
          __syncthreads();
        }
        if (live) {
#pragma unroll
          for (int i = 0; i < NR; ++i) {
            if (i < short_n) narrow_store(p, item, split, SHORT_M ? i : idx, SHORT_M ? idx : i, acc[i]);
          }
        }
      }
    }
  }
}

// ---- tiny C (m x n within TM x TN), long K: split over threads and blocks ----
//
// conv2d's weight gradient for few channels (C of 2 x 9 summed over a million pixels): each of the
// block's 256 threads sums every 256th k of the block's run for all TM x TN outputs, then the block
// adds its threads' sums in a fixed tree (warp shuffles, then the 8 warps in order); K is split
// over grid.x for enough blocks (partial sums, reduce_kernel).
template <int TM, int TN>
__global__ void __launch_bounds__(256) gemm_dot_kernel(GemmParams p) {
  __shared__ float warp_sums[8][TM * TN];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int64_t item = blockIdx.z; item < p.batch; item += gridDim.z) {
    const float* A = p.a + item * p.stride_a;
    const float* B = p.b + item * p.stride_b;
    for (int64_t split = blockIdx.x; split < p.splits; split += gridDim.x) {
      const int64_t k_begin = split * p.k_split, k_end = k_begin + p.k_split < p.k ? k_begin + p.k_split : p.k;
      float acc[TM][TN];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
      for (int64_t k = k_begin + tid; k < k_end; k += 256) {
        float a[TM], b[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = i < p.m ? operand(A[i * p.a_rs + k * p.a_ks], p.alpha, p.bf16) : 0.0f;
#pragma unroll
        for (int j = 0; j < TN; ++j) b[j] = j < p.n ? operand(B[k * p.b_ks + j * p.b_cs], 1.0f, p.bf16) : 0.0f;
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          float v = acc[i][j];
#pragma unroll
          for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
          if (lane == 0) warp_sums[warp][i * TN + j] = v;
        }
      }
      __syncthreads();
      if (tid < TM * TN) {
        const int i = tid / TN, j = tid % TN;
        if (i < p.m && j < p.n) {
          float sum = warp_sums[0][tid];
#pragma unroll
          for (int w = 1; w < 8; ++w) sum += warp_sums[w][tid];
          narrow_store(p, item, split, i, j, sum);
        }
      }
      __syncthreads();
    }
  }
}

// C = act(sum of the splits' partial sums, in split order + beta C + bias) for the narrow and dot kernels.
__global__ void reduce_kernel(GemmParams p) {
  const int64_t per_item = p.m * p.n, total = per_item * p.batch;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t item = e / per_item, o = e % per_item, i = o / p.n, j = o % p.n;
    const float* part = p.partial + item * p.splits * per_item + o;
    float acc = part[0];
    for (int64_t s = 1; s < p.splits; ++s) acc += part[s * per_item];
    const int64_t at = item * p.stride_c + i * p.ldc + j;
    p.c[at] = finish(p, acc, p.c + at, p.bias ? p.bias[j] : 0.0f, p.pre ? p.pre + at : nullptr);
  }
}

// ---- C = beta * C, then the epilogue (k == 0 or alpha == 0) ----

__global__ void scale_kernel(GemmParams p) {
  const int64_t per_item = p.m * p.n, total = per_item * p.batch;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t item = i / per_item, r = i % per_item / p.n, j = i % p.n;
    const int64_t at = item * p.stride_c + r * p.ldc + j;
    float v = p.beta == 0.0f ? 0.0f : p.c[at] * p.beta;
    if (p.bias) v += p.bias[j];
    if (p.pre) p.pre[at] = v;
    p.c[at] = p.gelu ? gelu_tanh(v) : v;
  }
}

// ---- bf16 operands for cuBLASLt ----

#if !defined(DV_CUDA_EMULATOR)
// dst (items x rows x cols, packed) = bfloat16 bits of scale * src (rows x cols per item, leading
// dimension ld, items `stride` apart), rounded as bf16_input and pack_bf16x2 round. Two columns per
// thread (a float2 load and one 32-bit store) where `pairs`: cols even and src 8-byte aligned.
__global__ void round_bf16_kernel(const float* src, int64_t ld, int64_t stride, int64_t rows, int64_t cols,
                                  int64_t total_rows, float scale, bool pairs, uint16_t* dst) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t row = blockIdx.y; row < total_rows; row += gridDim.y) {
    const float* s = src + row / rows * stride + row % rows * ld;
    uint16_t* d = dst + row * cols;
    const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (pairs) {
      for (int64_t c = first * 2; c < cols; c += step * 2) {
        const float2 x = *reinterpret_cast<const float2*>(s + c);
        *reinterpret_cast<uint32_t*>(d + c) = pack_bf16x2(bf16_input(x.x, scale), bf16_input(x.y, scale));
      }
    } else {
      for (int64_t c = first; c < cols; c += step) {
        d[c] = static_cast<uint16_t>(pack_bf16x2(bf16_input(s[c], scale), 0.0f) & 0xffffu);
      }
    }
  }
}

// Launches round_bf16_kernel for one operand of `items` matrices.
void round_bf16(const float* src, int64_t ld, int64_t stride, int64_t items, int64_t rows, int64_t cols, float scale,
                uint16_t* dst) {
  const bool pairs = cols % 2 == 0 && reinterpret_cast<uintptr_t>(src) % 8 == 0 && ld % 2 == 0 &&
                     (items <= 1 || stride % 2 == 0);
  const int64_t per_block = 256 * (pairs ? 2 : 1);
  const int64_t x = (cols + per_block - 1) / per_block, total_rows = items * rows;
  const dim3 grid(static_cast<unsigned>(x < 1024 ? x : 1024),
                  static_cast<unsigned>(total_rows < 65535 ? total_rows : 65535));
  launch("gemm", round_bf16_kernel, grid, dim3(256), 0, src, ld, stride, rows, cols, total_rows, scale, pairs, dst);
}
#endif

// ---- host side ----

bool aligned(const void* ptr, int64_t ld, int64_t stride, int64_t batch, int floats) {
  const uint64_t bytes = static_cast<uint64_t>(floats) * 4;
  return reinterpret_cast<uintptr_t>(ptr) % bytes == 0 && ld % floats == 0 && (batch <= 1 || stride % floats == 0);
}

int multiprocessors() {
  const int sms = device_status().multiprocessors;
  return sms > 0 ? sms : 1;
}

// Splits K when `blocks` (without splitting) leave the GPU idle: enough splits for two blocks per
// multiprocessor, each of at least `min_run` k's (none where K is shorter than two runs).
void plan_splits(GemmParams& p, int64_t blocks, int64_t min_run) {
  const int64_t want = (2 * multiprocessors() + blocks - 1) / blocks;
  const int64_t most = p.k / min_run;
  int64_t splits = want < most ? want : most;
  if (splits < 1) splits = 1;
  if (splits > 4096) splits = 4096;
  p.k_split = (p.k + splits - 1) / splits;
  p.splits = (p.k + p.k_split - 1) / p.k_split;
}

// Launches `kernel` (grid as given, `threads` per block) and, when K was split, reduce_kernel over a
// scratch block of the partial sums.
template <typename Kernel>
void run_split(Kernel kernel, GemmParams& p, dim3 grid, int threads = 256) {
  if (p.splits <= 1) return launch("gemm", kernel, grid, dim3(threads), 0, p);
  DeviceScratch partial(static_cast<size_t>(p.batch * p.splits * p.m * p.n) * sizeof(float));
  p.partial = partial.as<float>();
  launch("gemm", kernel, grid, dim3(threads), 0, p);
  const int64_t total = p.batch * p.m * p.n, blocks = (total + 255) / 256;
  launch("gemm", reduce_kernel, dim3(static_cast<unsigned>(blocks < 65536 ? blocks : 65536)), dim3(256), 0, p);
}

// Launches a tile kernel: one block per tile (grid.x) and run of K (grid.y), batch items on
// grid.z. K is split (partial sums, reduce_kernel) where the tiles would leave multiprocessors idle
// and K is long, in runs of whole k-steps of at least 512.
template <typename Kernel>
void launch_tiles(Kernel kernel, GemmParams& p, int bm, int bn, int threads) {
  p.tiles_m = (p.m + bm - 1) / bm;
  p.tiles_n = (p.n + bn - 1) / bn;
  const int64_t tiles = p.tiles_m * p.tiles_n;
  plan_splits(p, tiles * p.batch, 512);
  if (p.splits > 1) {
    p.k_split = (p.k_split + 31) / 32 * 32;  // whole k-steps of either kernel
    p.splits = (p.k + p.k_split - 1) / p.k_split;
  }
  const dim3 grid(static_cast<unsigned>(tiles < 0x7fffffff ? tiles : 0x7fffffff), static_cast<unsigned>(p.splits),
                  static_cast<unsigned>(p.batch < 65535 ? p.batch : 65535));
  run_split(kernel, p, grid, threads);
}

// Big tiles where they give at least one block per multiprocessor, else the small ones.
bool big_tiles(const GemmParams& p, int bm, int bn) {
  const int64_t tiles = (p.m + bm - 1) / bm * ((p.n + bn - 1) / bn) * p.batch;
  return tiles >= multiprocessors();
}

template <int BM, int BN, int WM, int WN>
void run_bf16(GemmParams& p, bool ta, bool tb) {
  constexpr int threads = WM * WN * 32;
  if (!ta && !tb) return launch_tiles(gemm_bf16_kernel<BM, BN, WM, WN, false, false>, p, BM, BN, threads);
  if (!ta && tb) return launch_tiles(gemm_bf16_kernel<BM, BN, WM, WN, false, true>, p, BM, BN, threads);
  if (ta && !tb) return launch_tiles(gemm_bf16_kernel<BM, BN, WM, WN, true, false>, p, BM, BN, threads);
  launch_tiles(gemm_bf16_kernel<BM, BN, WM, WN, true, true>, p, BM, BN, threads);
}

template <int BM, int BN>
void run_f32(GemmParams& p, bool ta, bool tb) {
  constexpr int threads = BM / 8 * (BN / 8);
  if (!ta && !tb) return launch_tiles(gemm_f32_kernel<BM, BN, false, false>, p, BM, BN, threads);
  if (!ta && tb) return launch_tiles(gemm_f32_kernel<BM, BN, false, true>, p, BM, BN, threads);
  if (ta && !tb) return launch_tiles(gemm_f32_kernel<BM, BN, true, false>, p, BM, BN, threads);
  launch_tiles(gemm_f32_kernel<BM, BN, true, true>, p, BM, BN, threads);
}

// min(m, n) <= 16: the dot kernel where C fits 4 x 16, 16 x 4 or 8 x 8, else the narrow kernel.
void run_narrow(GemmParams& p) {
  const unsigned items = static_cast<unsigned>(p.batch < 65535 ? p.batch : 65535);
  if ((p.m <= 4 && p.n <= 16) || (p.m <= 16 && p.n <= 4) || (p.m <= 8 && p.n <= 8)) {
    plan_splits(p, p.batch, 4096);
    const dim3 grid(static_cast<unsigned>(p.splits), 1, items);
    if (p.m <= 4 && p.n <= 16) return run_split(gemm_dot_kernel<4, 16>, p, grid);
    if (p.n <= 4) return run_split(gemm_dot_kernel<16, 4>, p, grid);
    return run_split(gemm_dot_kernel<8, 8>, p, grid);
  }
  const bool short_m = p.m <= p.n;
  const int64_t short_n = short_m ? p.m : p.n, long_n = short_m ? p.n : p.m;
  const int64_t long_blocks = (long_n + 255) / 256;
  plan_splits(p, long_blocks * p.batch, 1024);
  const dim3 grid(static_cast<unsigned>(long_blocks < 0x7fffffff ? long_blocks : 0x7fffffff),
                  static_cast<unsigned>(p.splits < 65535 ? p.splits : 65535), items);
  if (short_m) {
    if (short_n <= 4) return run_split(gemm_narrow_kernel<4, true>, p, grid);
    if (short_n <= 8) return run_split(gemm_narrow_kernel<8, true>, p, grid);
    return run_split(gemm_narrow_kernel<16, true>, p, grid);
  }
  if (short_n <= 4) return run_split(gemm_narrow_kernel<4, false>, p, grid);
  if (short_n <= 8) return run_split(gemm_narrow_kernel<8, false>, p, grid);
  run_split(gemm_narrow_kernel<16, false>, p, grid);
}

GemmParams params(const cpu::GemmArgs& g) {
  GemmParams p{};
  p.a = g.a, p.b = g.b, p.c = g.c, p.pre = g.pre, p.bias = g.bias;
  p.m = g.m, p.n = g.n, p.k = g.k, p.batch = g.batch;
  p.lda = g.lda, p.ldb = g.ldb, p.ldc = g.ldc;
  p.stride_a = g.stride_a, p.stride_b = g.stride_b, p.stride_c = g.stride_c;
  p.alpha = g.alpha, p.beta = g.beta;
  p.gelu = g.act == cpu::GemmAct::gelu_tanh;
  p.vec_a = aligned(g.a, g.lda, g.stride_a, g.batch, 4);
  p.vec_b = aligned(g.b, g.ldb, g.stride_b, g.batch, 4);
  const auto out_aligned = [&](int floats) {
    return aligned(g.c, g.ldc, g.stride_c, g.batch, floats) &&
           (!g.pre || aligned(g.pre, g.ldc, g.stride_c, g.batch, floats));
  };
  p.vec_c = out_aligned(4) ? 4 : out_aligned(2) ? 2 : 1;
  p.a_rs = g.trans_a ? 1 : g.lda, p.a_ks = g.trans_a ? g.lda : 1;
  p.b_ks = g.trans_b ? 1 : g.ldb, p.b_cs = g.trans_b ? g.ldb : 1;
  p.bf16 = g.precision == cpu::MatmulPrecision::bf16;
  p.k_split = g.k, p.splits = 1;
  return p;
}

}  // namespace

void gemm(const cpu::GemmArgs& args) {
  if (args.batch <= 0 || args.m <= 0 || args.n <= 0) return;
  if (args.k == 0 || args.alpha == 0.0f) {
    GemmParams p = params(args);
    const int64_t total = p.batch * p.m * p.n;
    const int64_t blocks = (total + 255) / 256;
    launch("gemm", scale_kernel, dim3(static_cast<unsigned>(blocks < 65536 ? blocks : 65536)), dim3(256), 0, p);
    return;
  }
  cpu::GemmArgs g = args;
  // B shared by items stored back to back (the rows of A and of C continuing from one item to the
  // next): one GEMM of batch * m rows.
  if (g.batch > 1 && g.stride_b == 0 && !g.trans_a && g.stride_a == g.m * g.lda && g.stride_c == g.m * g.ldc) {
    g.m *= g.batch;
    g.batch = 1;
    g.stride_a = g.stride_c = 0;
  }
#if !defined(DV_CUDA_EMULATOR)
  if (cublaslt::usable(g)) {
    if (g.precision == cpu::MatmulPrecision::bf16) {
      // Rounded, packed bf16 copies of alpha * A and of B (cublaslt.cpp says why).
      const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
      const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
      const int64_t a_elems = g.batch * a_rows * a_cols, a_padded = (a_elems + 127) / 128 * 128;
      DeviceScratch rounded(static_cast<size_t>(a_padded + g.batch * b_rows * b_cols) * sizeof(uint16_t));
      uint16_t* a16 = rounded.as<uint16_t>();
      uint16_t* b16 = a16 + a_padded;  // 256-byte aligned, like the block
      round_bf16(g.a, g.lda, g.stride_a, g.batch, a_rows, a_cols, g.alpha, a16);
      round_bf16(g.b, g.ldb, g.stride_b, g.batch, b_rows, b_cols, 1.0f, b16);
      const cublaslt::Bf16Operands operands{a16, b16};
      if (cublaslt::gemm(g, &operands)) return;
    } else if (cublaslt::gemm(g, nullptr)) {
      return;
    }
  }
#endif
  GemmParams p = params(g);
  if (g.m <= 16 || g.n <= 16) {
    run_narrow(p);
  } else if (g.precision == cpu::MatmulPrecision::bf16) {
    if (big_tiles(p, 128, 128)) {
      run_bf16<128, 128, 2, 4>(p, g.trans_a, g.trans_b);
    } else {
      run_bf16<64, 64, 2, 2>(p, g.trans_a, g.trans_b);
    }
  } else {
    if (big_tiles(p, 128, 128)) {
      run_f32<128, 128>(p, g.trans_a, g.trans_b);
    } else {
      run_f32<64, 64>(p, g.trans_a, g.trans_b);
    }
  }
}

const char* gemm_path() {
#if defined(DV_CUDA_EMULATOR)
  return "own tensor-core kernel (emulator build: cuBLASLt needs a GPU and is never loaded)";
#else
  return cublaslt::path();
#endif
}

}  // namespace dv::cuda
