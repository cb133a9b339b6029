// Pooling and bilinear resizing of NCHW planes on the GPU (as cpu/pool.h), forward only.
//
// One thread per output value, flat over (plane, oh, ow) so the writes are contiguous. Each thread
// walks its window clipped to the input in the CPU's order (input rows, then columns, ascending):
// max pooling keeps the first of equal values and lets a NaN win (PyTorch's semantics), average
// pooling adds from 0 in that order and divides by the CPU's count — so both are bit-identical
// to the CPU's. Bilinear resizing computes PyTorch's source indices and weights per output
// coordinate exactly as the CPU does (float32 scale, the product formed in float64 and rounded
// once) and interpolates along the width, then between the rows, every product and sum rounded on
// its own (never fused), which is the CPU's scalar arithmetic.
// Index arithmetic: 32-bit with multiply-shift division by the fixed extents when the output has
// fewer than 2^31 elements, 64-bit otherwise.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/pool.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;
constexpr int64_t kFast = int64_t(1) << 31;

// n / d for n < 2^31 by a multiply and a shift (Granlund & Montgomery): s = ceil(log2 d),
// m = floor(2^32 (2^s - d) / d) + 1, n / d = (mulhi(n, m) + n) >> s.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t divisor) : d(uint32_t(divisor)) {
    while ((uint64_t(1) << s) < d) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t divmod(uint32_t n, uint32_t& q) const {
    q = (__umulhi(n, m) + n) >> s;
    return n - q * d;
  }
};
FastDiv divider(int64_t d) { return d < kFast ? FastDiv(d) : FastDiv(); }

unsigned blocks_for(int64_t work) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, kThreads), kMaxBlocks)));
}

// (plane, oh, ow) of output element idx.
template <bool Fast>
__device__ __forceinline__ void output_coords(int64_t idx, int64_t out_h, int64_t out_w, const FastDiv& div_plane,
                                              const FastDiv& div_w, int64_t& p, int64_t& oh, int64_t& ow) {
  if constexpr (Fast) {
    uint32_t q, hw, hq;
    hw = div_plane.divmod(uint32_t(idx), q);
    ow = div_w.divmod(hw, hq);
    oh = hq;
    p = q;
  } else {
    const int64_t plane = out_h * out_w;
    p = idx / plane;
    const int64_t hw = idx - p * plane;
    oh = hw / out_w;
    ow = hw - oh * out_w;
  }
}

struct Pool {
  cpu::PoolGeometry g;
  int64_t total;
  FastDiv div_plane, div_w;
  bool count_include_pad;
};

// The window of one output coordinate along one axis: [start, end) clipped to the padded input,
// [lo, hi) clipped to the input.
struct Window {
  int64_t start, end, lo, hi;
};
__device__ __forceinline__ Window window(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t in) {
  Window w;
  w.start = o * stride - pad;
  w.end = w.start + kernel < in + pad ? w.start + kernel : in + pad;
  w.lo = w.start > 0 ? w.start : 0;
  w.hi = w.end < in ? w.end : in;
  return w;
}

// NaN-propagating max keeping acc on ties: the CPU's max_nan(in, acc).
__device__ __forceinline__ float max_nan(float in, float acc) { return (in > acc || in != in) ? in : acc; }

template <bool Fast, bool Max>
__global__ void __launch_bounds__(kThreads) pool_kernel(Pool k, const float* x, float* y) {
  const cpu::PoolGeometry& g = k.g;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < k.total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, oh, ow;
    output_coords<Fast>(idx, g.out_h, g.out_w, k.div_plane, k.div_w, p, oh, ow);
    const Window wh = window(oh, g.stride_h, g.pad_h, g.kernel_h, g.height);
    const Window ww = window(ow, g.stride_w, g.pad_w, g.kernel_w, g.width);
    const float* src = x + p * g.height * g.width;
    float acc = Max ? -__int_as_float(0x7f800000) : 0.0f;  // -inf
    for (int64_t ih = wh.lo; ih < wh.hi; ++ih) {
      const float* row = src + ih * g.width;
      for (int64_t iw = ww.lo; iw < ww.hi; ++iw) acc = Max ? max_nan(row[iw], acc) : acc + row[iw];
    }
    if (!Max) {
      const int64_t count = k.count_include_pad ? (wh.end - wh.start) * (ww.end - ww.start)
                                                : (wh.hi - wh.lo) * (ww.hi - ww.lo);
      acc /= static_cast<float>(count);
    }
    y[idx] = acc;
  }
}

template <bool Max>
void pool(const char* op, const cpu::PoolGeometry& g, bool count_include_pad, const float* x, float* y) {
  const int64_t total = g.planes * g.out_h * g.out_w;
  if (total <= 0) return;
  Pool k{g, total, divider(g.out_h * g.out_w), divider(g.out_w), count_include_pad};
  if (total < kFast) launch(op, pool_kernel<true, Max>, dim3(blocks_for(total)), dim3(kThreads), 0, k, x, y);
  else launch(op, pool_kernel<false, Max>, dim3(blocks_for(total)), dim3(kThreads), 0, k, x, y);
}

// ================================ bilinear resize ================================

struct Resize {
  int64_t in_h, in_w, out_h, out_w, total;
  float scale_h, scale_w;
  bool align_corners;
  FastDiv div_plane, div_w;
};

// Source indices and weights of output coordinate o along one axis (PyTorch's
// compute_indices_weights_linear, as the CPU computes them).
struct Axis {
  int64_t i0, i1;
  float w0, w1;
};
__device__ __forceinline__ Axis axis(int64_t o, int64_t in, float scale, bool align_corners) {
  const double pos = align_corners ? double(o) : double(o) + 0.5;
  float src = static_cast<float>(double(scale) * pos);
  if (!align_corners) src = fmaxf(__fsub_rn(src, 0.5f), 0.0f);
  const int64_t t = static_cast<int64_t>(src);
  const int64_t i0 = t < in - 1 ? t : in - 1;
  const float l1 = fminf(fmaxf(__fsub_rn(src, static_cast<float>(i0)), 0.0f), 1.0f);
  return {i0, i0 < in - 1 ? i0 + 1 : i0, __fsub_rn(1.0f, l1), l1};
}

template <bool Fast>
__global__ void __launch_bounds__(kThreads) resize_kernel(Resize r, const float* x, float* y) {
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < r.total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t p, oh, ow;
    output_coords<Fast>(idx, r.out_h, r.out_w, r.div_plane, r.div_w, p, oh, ow);
    const Axis h = axis(oh, r.in_h, r.scale_h, r.align_corners);
    const Axis w = axis(ow, r.in_w, r.scale_w, r.align_corners);
    const float* top = x + (p * r.in_h + h.i0) * r.in_w;
    const float* bottom = x + (p * r.in_h + h.i1) * r.in_w;
    const float t0 = __fadd_rn(__fmul_rn(top[w.i0], w.w0), __fmul_rn(top[w.i1], w.w1));
    const float t1 = __fadd_rn(__fmul_rn(bottom[w.i0], w.w0), __fmul_rn(bottom[w.i1], w.w1));
    y[idx] = __fadd_rn(__fmul_rn(t0, h.w0), __fmul_rn(t1, h.w1));
  }
}

// PyTorch's scale for one axis, in float32.
float resize_scale(int64_t in, int64_t out, bool align_corners) {
  if (align_corners) return out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
  return static_cast<float>(in) / static_cast<float>(out);
}

}  // namespace

void max_pool2d(const cpu::PoolGeometry& g, const float* x, float* y) { pool<true>("maxPool2d", g, false, x, y); }

void avg_pool2d(const cpu::PoolGeometry& g, bool count_include_pad, const float* x, float* y) {
  pool<false>("avgPool2d", g, count_include_pad, x, y);
}

void resize_bilinear(const cpu::ResizeGeometry& g, const float* x, float* y) {
  const int64_t total = g.planes * g.out_h * g.out_w;
  if (total <= 0) return;
  Resize r{g.in_h,
           g.in_w,
           g.out_h,
           g.out_w,
           total,
           resize_scale(g.in_h, g.out_h, g.align_corners),
           resize_scale(g.in_w, g.out_w, g.align_corners),
           g.align_corners,
           divider(g.out_h * g.out_w),
           divider(g.out_w)};
  if (total < kFast) launch("resizeBilinear", resize_kernel<true>, dim3(blocks_for(total)), dim3(kThreads), 0, r, x, y);
  else launch("resizeBilinear", resize_kernel<false>, dim3(blocks_for(total)), dim3(kThreads), 0, r, x, y);
}

}  // namespace dv::cuda
