// Softmax and LayerNorm, forward and backward, on the GPU (as cpu/norm.h).
//
// Softmax over the last axis (inner == 1): rows of n <= 1024 floats go one per warp with the row in
// registers (VPL values per lane: read once, written once; max and sum by warp shuffles); longer
// rows go one per block of 256 threads in three streaming passes (max, exp and sum writing exp
// into y, scale), as the CPU does, so x == y (in place) is safe. Softmax over a middle axis
// (inner > 1): a block covers up to 32 adjacent columns of one outer slice (coalesced reads along
// `inner`) and splits the n axis over threadIdx.y; the per-thread-row maxima and sums are combined
// in threadIdx.y order. The backward has the same layouts: dot = sum(dy * y), dx = (dy - dot) * y.
//
// LayerNorm: cuda/rows.cuh (one warp per row up to 1024 columns with the row in registers, else a
// block per row; the row statistics as cpu/simd/rows.h computes them; dweight/dbias as per-chunk
// partials over fixed chunks of rows, added in a fixed order by a second kernel).
//
// GroupNorm: one block of 256 threads per (batch item, group), whose cpg * spatial floats are
// contiguous; statistics as block_row_stats, then the per-channel affine (and SiLU) as the CPU does.
// The backward's per-channel sums (dshift, dscale) and the group sums for dx are block sums in a
// fixed order; g * scale is parked in dx between the two passes, as on the CPU. A simple kernel:
// the U-Net's GroupNorms are small next to its convolutions.
//
// Every reduction has a fixed order (no atomics), so results are bit-identical run to run.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cuda/common.cuh"
#include "cuda/norm.h"
#include "cuda/rows.cuh"

namespace dv::cuda {
namespace {

using rowops::kFullMask;
using rowops::kWarp;
constexpr int kWarpsPerBlock = 8;
constexpr int kBlockThreads = 256;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ================================ softmax, inner == 1 ================================

template <int VPL>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarp)
    softmax_warp(const float* x, float* y, int64_t rows, int n) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); row < rows;
       row += int64_t(gridDim.x) * kWarpsPerBlock) {
    const float* xr = x + row * n;
    float v[VPL];
    float m = kNegInf;
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      v[k] = c < n ? xr[c] : kNegInf;
      m = fmaxf(m, v[k]);
    }
    m = rowops::warp_max(m);
    float s = 0.0f;
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      v[k] = c < n ? expf(v[k] - m) : 0.0f;
      s += v[k];
    }
    const float inv = 1.0f / rowops::warp_sum(s);
    float* yr = y + row * n;
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      if (c < n) yr[c] = v[k] * inv;
    }
  }
}

__global__ void __launch_bounds__(kBlockThreads) softmax_block(const float* x, float* y, int64_t rows, int64_t n) {
  __shared__ float sh[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * n;
    float* yr = y + row * n;
    float m = kNegInf;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = rowops::block_max(m, sh);
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
      const float e = expf(xr[c] - m);
      yr[c] = e;  // the thread that wrote it scales it below: safe in place
      s += e;
    }
    const float inv = 1.0f / rowops::block_sum(s, sh);
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) yr[c] *= inv;
  }
}

template <int VPL>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarp)
    softmax_backward_warp(const float* y, const float* dy, float* dx, int64_t rows, int n) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); row < rows;
       row += int64_t(gridDim.x) * kWarpsPerBlock) {
    const float* yr = y + row * n;
    const float* gr = dy + row * n;
    float vy[VPL], vg[VPL];
    float dot = 0.0f;
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      vy[k] = c < n ? yr[c] : 0.0f;
      vg[k] = c < n ? gr[c] : 0.0f;
      dot = fmaf(vg[k], vy[k], dot);
    }
    dot = rowops::warp_sum(dot);
    float* dr = dx + row * n;
DV_ROWS_UNROLL
    for (int k = 0; k < VPL; ++k) {
      const int c = lane + k * kWarp;
      if (c < n) dr[c] = (vg[k] - dot) * vy[k];
    }
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    softmax_backward_block(const float* y, const float* dy, float* dx, int64_t rows, int64_t n) {
  __shared__ float sh[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* yr = y + row * n;
    const float* gr = dy + row * n;
    float dot = 0.0f;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) dot = fmaf(gr[c], yr[c], dot);
    dot = rowops::block_sum(dot, sh);
    float* dr = dx + row * n;
    for (int64_t c = threadIdx.x; c < n; c += blockDim.x) dr[c] = (gr[c] - dot) * yr[c];
  }
}

// ================================ softmax, inner > 1 ================================
// Block (tx, ty) = (columns, slices of n): blockDim.x adjacent columns of one outer slice; thread
// row ty handles k = ty, ty + blockDim.y, ... of the n axis. blockDim.x * blockDim.y = 256.

struct Strided {
  int64_t outer, n, inner, col_blocks;
};

// Combines one value per thread row (v) over threadIdx.y in order; every thread gets the result
// for its column. `max` selects fmaxf, else +.
__device__ __forceinline__ float column_combine(float v, float* sh, bool max) {
  __syncthreads();
  sh[threadIdx.y * blockDim.x + threadIdx.x] = v;
  __syncthreads();
  float t = sh[threadIdx.x];
  for (unsigned k = 1; k < blockDim.y; ++k) {
    const float u = sh[k * blockDim.x + threadIdx.x];
    t = max ? fmaxf(t, u) : t + u;
  }
  return t;
}

__global__ void __launch_bounds__(kBlockThreads) softmax_strided(const float* x, float* y, Strided s) {
  __shared__ float sh[kBlockThreads];
  for (int64_t t = blockIdx.x; t < s.outer * s.col_blocks; t += gridDim.x) {
    const int64_t o = t / s.col_blocks, col = (t % s.col_blocks) * blockDim.x + threadIdx.x;
    const bool valid = col < s.inner;
    const int64_t base = o * s.n * s.inner + col;
    float m = kNegInf;
    if (valid)
      for (int64_t k = threadIdx.y; k < s.n; k += blockDim.y) m = fmaxf(m, x[base + k * s.inner]);
    m = column_combine(m, sh, true);
    float sum = 0.0f;
    if (valid) {
      for (int64_t k = threadIdx.y; k < s.n; k += blockDim.y) {
        const float e = expf(x[base + k * s.inner] - m);
        y[base + k * s.inner] = e;
        sum += e;
      }
    }
    const float inv = 1.0f / column_combine(sum, sh, false);
    if (valid)
      for (int64_t k = threadIdx.y; k < s.n; k += blockDim.y) y[base + k * s.inner] *= inv;
  }
}

__global__ void __launch_bounds__(kBlockThreads)
    softmax_backward_strided(const float* y, const float* dy, float* dx, Strided s) {
  __shared__ float sh[kBlockThreads];
  for (int64_t t = blockIdx.x; t < s.outer * s.col_blocks; t += gridDim.x) {
    const int64_t o = t / s.col_blocks, col = (t % s.col_blocks) * blockDim.x + threadIdx.x;
    const bool valid = col < s.inner;
    const int64_t base = o * s.n * s.inner + col;
    float dot = 0.0f;
    if (valid)
      for (int64_t k = threadIdx.y; k < s.n; k += blockDim.y) dot = fmaf(dy[base + k * s.inner], y[base + k * s.inner], dot);
    dot = column_combine(dot, sh, false);
    if (valid) {
      for (int64_t k = threadIdx.y; k < s.n; k += blockDim.y) {
        const int64_t i = base + k * s.inner;
        dx[i] = (dy[i] - dot) * y[i];
      }
    }
  }
}

// Block shape and grid of the strided kernels: up to 32 columns across, the rest of 256 threads
// along n.
void strided_launch(int64_t outer, int64_t n, int64_t inner, Strided& s, dim3& grid, dim3& block) {
  int tx = 1;
  while (tx < 32 && tx < inner) tx *= 2;
  block = dim3(tx, kBlockThreads / tx);
  s = {outer, n, inner, ceil_div(inner, tx)};
  grid = dim3(unsigned(std::min<int64_t>(outer * s.col_blocks, int64_t(1) << 20)));
}

// Blocks for the warp-per-row kernels (grid-stride beyond that).
unsigned warp_row_blocks(int64_t rows) { return unsigned(std::min<int64_t>(ceil_div(rows, kWarpsPerBlock), int64_t(1) << 20)); }
unsigned block_row_blocks(int64_t rows) { return unsigned(std::min<int64_t>(rows, int64_t(1) << 20)); }

// ================================ LayerNorm output transforms ================================

template <bool HasW, bool HasB>
struct Affine {
  const float* w;
  const float* b;
  struct Row {
    const float* w;
    const float* b;
    __device__ __forceinline__ float operator()(float h, int64_t c) const {
      if constexpr (HasW && HasB) return fmaf(h, w[c], b[c]);
      else if constexpr (HasW) return h * w[c];
      else if constexpr (HasB) return h + b[c];
      else return h;
    }
  };
  __device__ __forceinline__ Row bind(int64_t) const { return {w, b}; }
};

// Backward multiplier: the weight, or none (g = dy).
struct WeightMult {
  const float* w;
  static constexpr bool kHas = true;
  struct Col {
    const float* w;
    __device__ __forceinline__ float operator()(int64_t c) const { return w[c]; }
  };
  __device__ __forceinline__ Col bind(int64_t) const { return {w}; }
};
struct NoMult {
  static constexpr bool kHas = false;
  struct Col {
    __device__ __forceinline__ float operator()(int64_t) const { return 1.0f; }
  };
  __device__ __forceinline__ Col bind(int64_t) const { return {}; }
};

// ================================ GroupNorm ================================

__device__ __forceinline__ float gn_sigmoid(float p) { return __fdividef(1.0f, 1.0f + __expf(-p)); }

__global__ void __launch_bounds__(kBlockThreads)
    group_norm_kernel(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                      int64_t shift_stride, float* y, float* mean, float* rstd, int64_t tasks, int64_t channels,
                      int64_t groups, int64_t spatial, float eps, bool silu) {
  __shared__ float sh[32];
  const int64_t cpg = channels / groups, n = cpg * spatial;
  for (int64_t t = blockIdx.x; t < tasks; t += gridDim.x) {
    const int64_t b = t / groups, c0 = t % groups * cpg;
    const float* xg = x + t * n;
    float* yg = y + t * n;
    float mu, rs;
    rowops::block_row_stats(xg, n, eps, sh, mu, rs);
    if (threadIdx.x == 0) {
      if (mean) mean[t] = mu;
      if (rstd) rstd[t] = rs;
    }
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t c = c0 + i / spatial;
      const float s = scale ? scale[b * scale_stride + c] : 1.0f, h = shift ? shift[b * shift_stride + c] : 0.0f;
      float p = fmaf((xg[i] - mu) * rs, s, h);
      if (silu) p = p * gn_sigmoid(p);
      yg[i] = p;
    }
  }
}

template <bool Silu>
__global__ void __launch_bounds__(kBlockThreads)
    group_norm_backward_kernel(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                               int64_t shift_stride, const float* mean, const float* rstd, const float* dy, float* dx,
                               float* dscale, float* dshift, int64_t tasks, int64_t channels, int64_t groups,
                               int64_t spatial) {
  __shared__ float sh[32];
  const int64_t cpg = channels / groups, n = cpg * spatial;
  const float inv_n = n ? 1.0f / float(n) : 0.0f;
  for (int64_t t = blockIdx.x; t < tasks; t += gridDim.x) {
    const int64_t b = t / groups, c0 = t % groups * cpg;
    const float* xg = x + t * n;
    const float* gg = dy + t * n;
    float* dg = dx ? dx + t * n : nullptr;
    const float mu = mean[t], rs = rstd[t];
    float a_gs = 0.0f, a_gsx = 0.0f;  // this thread's share of the group sums of g * scale (* xh)
    for (int64_t ci = 0; ci < cpg; ++ci) {
      const int64_t c = c0 + ci;
      const float s = scale ? scale[b * scale_stride + c] : 1.0f, h = shift ? shift[b * shift_stride + c] : 0.0f;
      float sg = 0.0f, sgx = 0.0f;
      for (int64_t i = threadIdx.x; i < spatial; i += blockDim.x) {
        const int64_t k = ci * spatial + i;
        const float xh = (xg[k] - mu) * rs;
        float g = gg[k];
        if (Silu) {
          const float p = fmaf(xh, s, h), sig = gn_sigmoid(p);
          g = g * (sig * fmaf(p, 1.0f - sig, 1.0f));
        }
        sg += g;
        sgx = fmaf(g, xh, sgx);
        if (dg) {
          const float gs = g * s;
          dg[k] = gs;
          a_gs += gs;
          a_gsx = fmaf(gs, xh, a_gsx);
        }
      }
      sg = rowops::block_sum(sg, sh);
      sgx = rowops::block_sum(sgx, sh);
      if (threadIdx.x == 0) {
        if (dshift) dshift[b * channels + c] = sg;
        if (dscale) dscale[b * channels + c] = sgx;
      }
    }
    if (!dg) continue;
    const float ma = rowops::block_sum(a_gs, sh) * inv_n, mb = rowops::block_sum(a_gsx, sh) * inv_n;
    // Each thread rewrites the dx elements it parked itself (same index pattern per channel).
    for (int64_t ci = 0; ci < cpg; ++ci) {
      for (int64_t i = threadIdx.x; i < spatial; i += blockDim.x) {
        const int64_t k = ci * spatial + i;
        const float xh = (xg[k] - mu) * rs;
        dg[k] = rs * (dg[k] - ma - xh * mb);
      }
    }
    __syncthreads();  // the next task's block sums reuse sh
  }
}

unsigned group_blocks(int64_t tasks) { return unsigned(rowops::min64(tasks, int64_t(1) << 16)); }

}  // namespace

void group_norm(const float* x, const float* scale, int64_t scale_stride, const float* shift, int64_t shift_stride,
                float* y, float* mean, float* rstd, int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                float eps, bool silu) {
  const int64_t tasks = batch * groups;
  launch("groupNorm", group_norm_kernel, dim3(group_blocks(tasks)), dim3(kBlockThreads), 0, x, scale, scale_stride,
         shift, shift_stride, y, mean, rstd, tasks, channels, groups, spatial, eps, silu);
}

void group_norm_backward(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                         int64_t shift_stride, const float* mean, const float* rstd, const float* dy, float* dx,
                         float* dscale, float* dshift, int64_t batch, int64_t channels, int64_t groups,
                         int64_t spatial, bool silu) {
  const int64_t tasks = batch * groups;
  launch("groupNormBackward", silu ? group_norm_backward_kernel<true> : group_norm_backward_kernel<false>,
         dim3(group_blocks(tasks)), dim3(kBlockThreads), 0, x, scale, scale_stride, shift, shift_stride, mean, rstd, dy,
         dx, dscale, dshift, tasks, channels, groups, spatial);
}

void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  if (inner == 1) {
    if (n <= rowops::kMaxWarpCols) {
      rowops::with_vpl(n, [&](auto vpl) {
        launch("softmax", softmax_warp<decltype(vpl)::value>, dim3(warp_row_blocks(outer)),
               dim3(kWarpsPerBlock * kWarp), 0, x, y, outer, int(n));
      });
    } else {
      launch("softmax", softmax_block, dim3(block_row_blocks(outer)), dim3(kBlockThreads), 0, x, y, outer, n);
    }
    return;
  }
  Strided s;
  dim3 grid, block;
  strided_launch(outer, n, inner, s, grid, block);
  launch("softmax", softmax_strided, grid, block, 0, x, y, s);
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t outer, int64_t n, int64_t inner) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  if (inner == 1) {
    if (n <= rowops::kMaxWarpCols) {
      rowops::with_vpl(n, [&](auto vpl) {
        launch("softmaxBackward", softmax_backward_warp<decltype(vpl)::value>, dim3(warp_row_blocks(outer)),
               dim3(kWarpsPerBlock * kWarp), 0, y, dy, dx, outer, int(n));
      });
    } else {
      launch("softmaxBackward", softmax_backward_block, dim3(block_row_blocks(outer)), dim3(kBlockThreads), 0, y, dy,
             dx, outer, n);
    }
    return;
  }
  Strided s;
  dim3 grid, block;
  strided_launch(outer, n, inner, s, grid, block);
  launch("softmaxBackward", softmax_backward_strided, grid, block, 0, y, dy, dx, s);
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps) {
  const char* op = "layerNorm";
  if (weight && bias) return rowops::ln_forward(op, x, y, mean, rstd, rows, cols, eps, Affine<true, true>{weight, bias});
  if (weight) return rowops::ln_forward(op, x, y, mean, rstd, rows, cols, eps, Affine<true, false>{weight, bias});
  if (bias) return rowops::ln_forward(op, x, y, mean, rstd, rows, cols, eps, Affine<false, true>{weight, bias});
  rowops::ln_forward(op, x, y, mean, rstd, rows, cols, eps, Affine<false, false>{weight, bias});
}

void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dweight, float* dbias, int64_t rows, int64_t cols) {
  const char* op = "layerNormBackward";
  // One group of `rows` rows: sum_dy is dbias, sum_dyxh is dweight.
  if (weight) return rowops::ln_backward(op, x, mean, rstd, dy, dx, dbias, dweight, 1, rows, cols, WeightMult{weight});
  rowops::ln_backward(op, x, mean, rstd, dy, dx, dbias, dweight, 1, rows, cols, NoMult{});
}

}  // namespace dv::cuda
