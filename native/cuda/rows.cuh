// Row kernels shared by norm.cu and fused.cu (the GPU side of cpu/simd/rows.h): fixed-order warp and
// block reductions, LayerNorm's forward and backward over rows with a pluggable output transform
// (affine weight/bias, adaLN modulation) and gradient multiplier, and the ordered combination of
// per-chunk partial sums over rows.
//
// Determinism. A warp reduction is an xor butterfly: every lane ends with the same bits (each step
// adds a + b on one side and b + a on the other). A block reduction writes one value per warp and
// every thread then adds them in warp order. Sums over rows (dweight/dbias, dshift/dscale, dgate)
// keep one partial per chunk of rows, the chunks being fixed by the sizes alone, and the combine
// kernel adds those partials in a fixed order. No float atomics, so every result is bit-identical
// from run to run.
//
// Layout of the LayerNorm kernels:
//   cols <= 1024: one warp per row, the row held in registers (VPL values per lane, column
//                 lane + 32k), so x (and dy) are read once;
//   cols >  1024: one block per row, streaming the row from global memory (it stays in L1/L2
//                 between the passes).
// The backward's sums over rows are split in chunks of `chunk_rows` rows of one group (a group is
// the whole matrix for LayerNorm, one batch item's tokens for adaLN); a block owns one chunk. In
// the warp layout its warps add their rows into per-warp slices of shared memory, which the block
// then adds in warp order into the chunk's partial row; in the block layout each thread adds into
// its own columns of the chunk's partial row in global memory.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "cuda/common.cuh"
#include "cuda/runtime.h"

// `#pragma unroll` for nvcc only (g++ would warn about an unknown pragma in the emulator build).
#if defined(DV_CUDA_EMULATOR)
#define DV_ROWS_UNROLL
#define DV_ROWS_UNROLL2
#else
#define DV_ROWS_UNROLL _Pragma("unroll")
#define DV_ROWS_UNROLL2 _Pragma("unroll 2")
#endif

namespace dv::cuda::rowops {
// Internal linkage: every .cu that includes this gets its own kernels (no duplicate symbols).
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kMaxWarpCols = 1024;  // the warp-per-row layout holds up to 32 values per lane
constexpr int kFwdWarpsPerBlock = 8;
constexpr int kBwdWarpsPerBlock = 4;  // 4 warps x 2 slices x 1024 cols x 4 B = 32 KiB of shared memory
constexpr int kRowBlock = 256;        // threads per row in the block-per-row layout
constexpr int64_t kTargetChunks = 1024;
constexpr int kMaxGridY = 65535;

__host__ __device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

__device__ __forceinline__ float warp_sum(float v) {
DV_ROWS_UNROLL
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
DV_ROWS_UNROLL
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024), the same bits in every
// thread. `sh` holds 32 floats; every thread of the block must call it.
__device__ __forceinline__ float block_sum(float v, float* sh) {
  v = warp_sum(v);
  __syncthreads();  // the previous call's readers are done with sh
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float t = 0.0f;
  for (int k = 0; k < warps; ++k) t += sh[k];
  return t;
}
__device__ __forceinline__ float block_max(float v, float* sh) {
  v = warp_max(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float t = sh[0];
  for (int k = 1; k < warps; ++k) t = fmaxf(t, sh[k]);
  return t;
}

// Values per lane for a warp-per-row kernel over `cols` <= 1024 columns: 1, 2, 4, ..., 32.
inline int values_per_lane(int64_t cols) {
  int v = 1;
  while (int64_t(v) * kWarp < cols) v *= 2;
  return v;
}

// Calls fn(std::integral_constant-like tag) with VPL = values_per_lane(cols) as a template argument.
template <int V>
struct Vpl {
  static constexpr int value = V;
};
template <typename F>
void with_vpl(int64_t cols, F fn) {
  switch (values_per_lane(cols)) {
    case 1: return fn(Vpl<1>{});
    case 2: return fn(Vpl<2>{});
    case 4: return fn(Vpl<4>{});
    case 8: return fn(Vpl<8>{});
    case 16: return fn(Vpl<16>{});
    default: return fn(Vpl<32>{});
  }
}

// Rows per chunk of one group of `group_rows` rows (out of `groups`), from the sizes alone: about
// kTargetChunks chunks in all, at least `min_rows` rows each (a multiple of `multiple`).
inline int64_t chunk_rows(int64_t groups, int64_t group_rows, int64_t min_rows, int64_t multiple) {
  const int64_t total = groups * group_rows;
  int64_t r = std::max<int64_t>(min_rows, (total + kTargetChunks - 1) / kTargetChunks);
  r = (r + multiple - 1) / multiple * multiple;
  return r;
}

// ====================== row statistics (as cpu/simd/rows.h row_stats) ======================
// mean = x[0] + mean(x - x[0]); var = (sum d^2 - (sum d)^2 / n) / n with d = x - mean, clamped at 0;
// rstd = 1 / sqrt(var + eps). An empty row has mean 0 and variance 0.

// Warp-per-row: v[k] holds column lane + 32k (0 past the row's end, masked by `cols`).
template <int VPL>
__device__ __forceinline__ void warp_row_stats(const float (&v)[VPL], int cols, float eps, float& mean, float& rstd) {
  const int lane = threadIdx.x & 31;
  if (cols == 0) {
    mean = 0.0f;
    rstd = 1.0f / sqrtf(eps);
    return;
  }
  const float inv_n = 1.0f / float(cols);
  const float x0 = __shfl_sync(kFullMask, v[0], 0);
  float s = 0.0f;
DV_ROWS_UNROLL
  for (int k = 0; k < VPL; ++k)
    if (lane + k * kWarp < cols) s += v[k] - x0;
  const float mu = x0 + warp_sum(s) * inv_n;
  float s1 = 0.0f, s2 = 0.0f;
DV_ROWS_UNROLL
  for (int k = 0; k < VPL; ++k) {
    if (lane + k * kWarp < cols) {
      const float d = v[k] - mu;
      s1 += d;
      s2 = fmaf(d, d, s2);
    }
  }
  s1 = warp_sum(s1);
  s2 = warp_sum(s2);
  const float var = fmaxf(0.0f, (s2 - s1 * s1 * inv_n) * inv_n);
  mean = mu;
  rstd = 1.0f / sqrtf(var + eps);
}

// Block-per-row over a row in global memory.
__device__ __forceinline__ void block_row_stats(const float* xr, int64_t cols, float eps, float* sh, float& mean,
                                                float& rstd) {
  if (cols == 0) {
    mean = 0.0f;
    rstd = 1.0f / sqrtf(eps);
    return;
  }
  const float inv_n = 1.0f / float(cols);
  const float x0 = xr[0];
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i] - x0;
  const float mu = x0 + block_sum(s, sh) * inv_n;
  float s1 = 0.0f, s2 = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = xr[i] - mu;
    s1 += d;
    s2 = fmaf(d, d, s2);
  }
  s1 = block_sum(s1, sh);
  s2 = block_sum(s2, sh);
  const float var = fmaxf(0.0f, (s2 - s1 * s1 * inv_n) * inv_n);
  mean = mu;
  rstd = 1.0f / sqrtf(var + eps);
}

// ====================== LayerNorm forward ======================
// Out: a copyable functor with `Row bind(int64_t row) const` giving the row's output transform
// `float operator()(float h, int64_t col) const` of the normalised value h.

template <int VPL, class Out>
__global__ void __launch_bounds__(kFwdWarpsPerBlock * kWarp)
    ln_forward_warp(const float* x, float* y, float* mean, float* rstd, int64_t rows, int cols, float eps, Out out) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = int64_t(blockIdx.x) * kFwdWarpsPerBlock + (threadIdx.x >> 5); row < rows;
       row += int64_t(gridDim.x) * kFwdWarpsPerBlock) {
    const float* xr = x + row * cols;
    float v[VPL];
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      v[k] = c < cols ? xr[c] : 0.0f;
    }
    float mu, rs;
    warp_row_stats<VPL>(v, cols, eps, mu, rs);
    if (lane == 0) {
      if (mean) mean[row] = mu;
      if (rstd) rstd[row] = rs;
    }
    const auto o = out.bind(row);
    float* yr = y + row * cols;
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      if (c < cols) yr[c] = o((v[k] - mu) * rs, c);
    }
  }
}

template <class Out>
__global__ void __launch_bounds__(kRowBlock)
    ln_forward_block(const float* x, float* y, float* mean, float* rstd, int64_t rows, int64_t cols, float eps,
                     Out out) {
  __shared__ float sh[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * cols;
    float mu, rs;
    block_row_stats(xr, cols, eps, sh, mu, rs);
    if (threadIdx.x == 0) {
      if (mean) mean[row] = mu;
      if (rstd) rstd[row] = rs;
    }
    const auto o = out.bind(row);
    float* yr = y + row * cols;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = o((xr[c] - mu) * rs, c);
  }
}

template <class Out>
void ln_forward(const char* op, const float* x, float* y, float* mean, float* rstd, int64_t rows, int64_t cols,
                float eps, const Out& out) {
  if (rows <= 0) return;
  if (cols <= kMaxWarpCols) {
    const int64_t blocks = std::min<int64_t>(ceil_div(rows, kFwdWarpsPerBlock), int64_t(1) << 20);
    with_vpl(cols, [&](auto vpl) {
      launch(op, ln_forward_warp<decltype(vpl)::value, Out>, dim3(unsigned(blocks)), dim3(kFwdWarpsPerBlock * kWarp),
             0, x, y, mean, rstd, rows, int(cols), eps, out);
    });
  } else {
    const int64_t blocks = std::min<int64_t>(rows, int64_t(1) << 20);
    launch(op, ln_forward_block<Out>, dim3(unsigned(blocks)), dim3(kRowBlock), 0, x, y, mean, rstd, rows, cols, eps,
           out);
  }
}

// ====================== LayerNorm backward ======================
// With xh = (x - mean) * rstd and g = dy * m(col) (m: Mult's per-column factor on xh, or 1):
//   dx = rstd * (g - mean(g) - xh * mean(g * xh)),
//   sum_dy[group] = sum over the group's rows of dy,  sum_dyxh[group] = sum of dy * xh.
// Mult: `Col bind(int64_t group) const` with `float operator()(int64_t col) const`, and
// `static constexpr bool kHas` (false: g = dy).

struct LnBackwardArgs {
  const float* x;
  const float* mean;
  const float* rstd;
  const float* dy;
  float* dx;             // or null
  float* part_dy;        // (groups, chunks, cols) partials of sum dy, or null
  float* part_dyxh;      // (groups, chunks, cols) partials of sum dy * xh, or null
  int64_t groups;        // groups of group_rows consecutive rows
  int64_t group_rows;
  int64_t chunk_rows;    // rows per chunk (one block), a multiple of the warps per block
  int64_t chunks;        // chunks per group
  int64_t cols;
  float inv_n;
};

template <int VPL, class Mult>
__global__ void __launch_bounds__(kBwdWarpsPerBlock * kWarp) ln_backward_warp(LnBackwardArgs p, Mult mult) {
  DV_DYNAMIC_SHARED(float, slices);  // [warp][2][cols] when partials are wanted
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int cols = int(p.cols);
  const bool partials = p.part_dy != nullptr || p.part_dyxh != nullptr;
  float* sa = partials ? slices + int64_t(warp) * 2 * cols : nullptr;
  float* sb = partials ? sa + cols : nullptr;
  const int64_t chunk = blockIdx.x;
  for (int64_t group = blockIdx.y; group < p.groups; group += gridDim.y) {
    if (partials) {
DV_ROWS_UNROLL
      for (int k = 0; k < VPL; ++k) {
        const int c = lane + k * kWarp;
        if (c < cols) sa[c] = sb[c] = 0.0f;
      }
    }
    const auto m = mult.bind(group);
    const int64_t r0 = chunk * p.chunk_rows, r1 = min64(p.group_rows, r0 + p.chunk_rows);
    for (int64_t local = r0 + warp; local < r1; local += kBwdWarpsPerBlock) {
      const int64_t row = group * p.group_rows + local;
      const float* xr = p.x + row * cols;
      const float* gr = p.dy + row * cols;
      const float mu = p.mean[row], rs = p.rstd[row];
      float xh[VPL], g[VPL];
      float sg = 0.0f, sgx = 0.0f;
DV_ROWS_UNROLL
      for (int k = 0; k < VPL; ++k) {
        const int c = lane + k * kWarp;
        xh[k] = 0.0f;
        g[k] = 0.0f;
        if (c < cols) {
          xh[k] = (xr[c] - mu) * rs;
          const float d = gr[c];
          if (partials) {
            sa[c] += d;
            sb[c] = fmaf(d, xh[k], sb[c]);
          }
          g[k] = Mult::kHas ? d * m(c) : d;
          sg += g[k];
          sgx = fmaf(g[k], xh[k], sgx);
        }
      }
      if (p.dx) {
        const float a = warp_sum(sg) * p.inv_n, b = warp_sum(sgx) * p.inv_n;
        float* dr = p.dx + row * cols;
DV_ROWS_UNROLL
        for (int k = 0; k < VPL; ++k) {
          const int c = lane + k * kWarp;
          if (c < cols) dr[c] = rs * (g[k] - a - xh[k] * b);
        }
      }
    }
    if (partials) {
      // The block's chunk partial: the warps' slices added in warp order.
      __syncthreads();
      const int64_t out = (group * p.chunks + chunk) * p.cols;
      for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float ta = 0.0f, tb = 0.0f;
        for (int w = 0; w < kBwdWarpsPerBlock; ++w) {
          ta += slices[int64_t(w) * 2 * cols + c];
          tb += slices[int64_t(w) * 2 * cols + cols + c];
        }
        if (p.part_dy) p.part_dy[out + c] = ta;
        if (p.part_dyxh) p.part_dyxh[out + c] = tb;
      }
      __syncthreads();  // before the next group zeroes the slices
    }
  }
}

template <class Mult>
__global__ void __launch_bounds__(kRowBlock) ln_backward_block(LnBackwardArgs p, Mult mult) {
  __shared__ float sh[32];
  const int64_t chunk = blockIdx.x, cols = p.cols;
  for (int64_t group = blockIdx.y; group < p.groups; group += gridDim.y) {
    const int64_t out = (group * p.chunks + chunk) * cols;
    float* pa = p.part_dy ? p.part_dy + out : nullptr;
    float* pb = p.part_dyxh ? p.part_dyxh + out : nullptr;
    // Each thread owns columns threadIdx.x + k * blockDim.x of the chunk's partial rows.
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      if (pa) pa[c] = 0.0f;
      if (pb) pb[c] = 0.0f;
    }
    const auto m = mult.bind(group);
    const int64_t r0 = chunk * p.chunk_rows, r1 = min64(p.group_rows, r0 + p.chunk_rows);
    for (int64_t local = r0; local < r1; ++local) {
      const int64_t row = group * p.group_rows + local;
      const float* xr = p.x + row * cols;
      const float* gr = p.dy + row * cols;
      const float mu = p.mean[row], rs = p.rstd[row];
      float sg = 0.0f, sgx = 0.0f;
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float xh = (xr[c] - mu) * rs, d = gr[c];
        if (pa) pa[c] += d;
        if (pb) pb[c] = fmaf(d, xh, pb[c]);
        const float g = Mult::kHas ? d * m(c) : d;
        sg += g;
        sgx = fmaf(g, xh, sgx);
      }
      if (p.dx) {
        const float a = block_sum(sg, sh) * p.inv_n, b = block_sum(sgx, sh) * p.inv_n;
        float* dr = p.dx + row * cols;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
          const float xh = (xr[c] - mu) * rs, d = gr[c];
          const float g = Mult::kHas ? d * m(c) : d;
          dr[c] = rs * (g - a - xh * b);
        }
      }
    }
  }
}

// out[g * cols + c] = sum over k < chunks of part[(g * chunks + k) * cols + c], in a fixed order:
// thread row ty adds chunks ty, ty + 8, ... and the 8 sums are added in ty order. Zeros when
// chunks == 0. Block (32, 8), grid (ceil(cols / 32), min(groups, 65535)).
__global__ void __launch_bounds__(256)
    combine_partials_kernel(const float* part, int64_t groups, int64_t chunks, int64_t cols, float* out) {
  __shared__ float sh[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * 32 + tx;
  for (int64_t g = blockIdx.y; g < groups; g += gridDim.y) {
    float acc = 0.0f;
    if (c < cols)
      for (int64_t k = ty; k < chunks; k += 8) acc += part[(g * chunks + k) * cols + c];
    sh[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < cols) {
      float t = sh[0][tx];
      for (int k = 1; k < 8; ++k) t += sh[k][tx];
      out[g * cols + c] = t;
    }
    __syncthreads();
  }
}

inline void combine_partials(const char* op, const float* part, int64_t groups, int64_t chunks, int64_t cols,
                             float* out) {
  if (groups <= 0 || cols <= 0) return;
  launch(op, combine_partials_kernel, dim3(unsigned(ceil_div(cols, 32)), unsigned(std::min<int64_t>(groups, kMaxGridY))),
         dim3(32, 8), 0, part, groups, chunks, cols, out);
}

// The whole backward: dx (or null) and, for each group, sum_dy and sum_dyxh over its rows (each
// (groups, cols) or null; overwritten, zeros for groups without rows).
template <class Mult>
void ln_backward(const char* op, const float* x, const float* mean, const float* rstd, const float* dy, float* dx,
                 float* sum_dy, float* sum_dyxh, int64_t groups, int64_t group_rows, int64_t cols, const Mult& mult) {
  if (groups <= 0 || cols <= 0) return;
  const bool warp_layout = cols <= kMaxWarpCols;
  LnBackwardArgs p{};
  p.x = x;
  p.mean = mean;
  p.rstd = rstd;
  p.dy = dy;
  p.dx = dx;
  p.groups = groups;
  p.group_rows = group_rows;
  p.cols = cols;
  p.inv_n = 1.0f / float(cols);
  p.chunk_rows = warp_layout ? chunk_rows(groups, group_rows, 4 * kBwdWarpsPerBlock, kBwdWarpsPerBlock)
                             : chunk_rows(groups, group_rows, 4, 1);
  p.chunks = ceil_div(group_rows, p.chunk_rows);
  const bool partials = sum_dy || sum_dyxh;
  const size_t part_bytes = size_t(groups * p.chunks * cols) * sizeof(float);
  std::optional<DeviceScratch> part_a, part_b;
  if (sum_dy) p.part_dy = part_a.emplace(part_bytes).as<float>();
  if (sum_dyxh) p.part_dyxh = part_b.emplace(part_bytes).as<float>();
  if (p.chunks > 0 && (dx || partials)) {
    const dim3 grid(unsigned(p.chunks), unsigned(std::min<int64_t>(groups, kMaxGridY)));
    if (warp_layout) {
      const size_t shared = partials ? size_t(kBwdWarpsPerBlock) * 2 * size_t(cols) * sizeof(float) : 0;
      with_vpl(cols, [&](auto vpl) {
        launch(op, ln_backward_warp<decltype(vpl)::value, Mult>, grid, dim3(kBwdWarpsPerBlock * kWarp), shared, p,
               mult);
      });
    } else {
      launch(op, ln_backward_block<Mult>, grid, dim3(kRowBlock), 0, p, mult);
    }
  }
  if (sum_dy) combine_partials(op, p.part_dy, groups, p.chunks, cols, sum_dy);
  if (sum_dyxh) combine_partials(op, p.part_dyxh, groups, p.chunks, cols, sum_dyxh);
}

// ====================== column sums over runs of rows ======================
// For the elementwise backward kernels with a reduction over rows (dgate, dbias): block (chunk,
// group) walks its chunk's rows for each of its columns, so per column the rows are added in
// order; the partial goes to part[(group * chunks + chunk) * cols + col] for combine_partials.
// Body: `float operator()(int64_t group, int64_t row, int64_t col, float acc) const` returns the
// new partial after handling element (row, col) (row counted from the start of the matrix).

template <class Body>
__global__ void __launch_bounds__(256) column_runs_kernel(Body body, int64_t groups, int64_t group_rows,
                                                          int64_t chunk_rows, int64_t chunks, int64_t cols,
                                                          float* part) {
  const int64_t chunk = blockIdx.x;
  for (int64_t group = blockIdx.y; group < groups; group += gridDim.y) {
    const int64_t r0 = group * group_rows + chunk * chunk_rows;
    const int64_t r1 = group * group_rows + min64(group_rows, (chunk + 1) * chunk_rows);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float acc = 0.0f;
DV_ROWS_UNROLL2
      for (int64_t r = r0; r < r1; ++r) acc = body(group, r, c, acc);
      if (part) part[(group * chunks + chunk) * cols + c] = acc;
    }
  }
}

// Runs Body over every (row, col) of `groups` groups of `group_rows` rows and, when `sum` is set,
// writes sum (groups, cols) = the column sums of Body's values over each group's rows.
template <class Body>
void column_runs(const char* op, const Body& body, int64_t groups, int64_t group_rows, int64_t cols, float* sum) {
  if (groups <= 0 || cols <= 0) return;
  const int64_t rows_per_chunk = chunk_rows(groups, group_rows, 8, 1);
  const int64_t chunks = ceil_div(group_rows, rows_per_chunk);
  std::optional<DeviceScratch> scratch;
  float* part = sum ? scratch.emplace(size_t(groups * chunks * cols) * sizeof(float)).as<float>() : nullptr;
  if (chunks > 0) {
    const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, ceil_div(cols, 32) * 32)));
    launch(op, column_runs_kernel<Body>, dim3(unsigned(chunks), unsigned(std::min<int64_t>(groups, kMaxGridY))),
           dim3(threads), 0, body, groups, group_rows, rows_per_chunk, chunks, cols, part);
  }
  if (sum) combine_partials(op, part, groups, chunks, cols, sum);
}

}  // namespace
}  // namespace dv::cuda::rowops
