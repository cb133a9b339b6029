// im2col / col2im (NCHW) on the GPU (as cpu/conv.h).
//
// im2col: one thread per cols element (n, c, i, j, oh, ow), flat over the whole tensor, so the
// writes are contiguous whatever the shape (a 1x1 output or a 1-channel input alike); the read is
// x[n, c, oh*stride_h - pad_h + i, ow*stride_w - pad_w + j] or 0 in the padding.
// col2im: a gather, one thread per input pixel: it visits exactly the (i, j, oh, ow) whose window
// reads that pixel (i ≡ h + pad_h mod stride_h inside the output range, the same for j) in tap
// order and adds their cols entries, starting from 0 — the CPU's order, so the result is
// bit-identical to the CPU's and needs no atomics.
// Index arithmetic: 32-bit with multiply-shift division by the (fixed) extents when every index
// fits in 31 bits (the usual case; a hardware division per coordinate would dominate these
// memory-bound kernels), plain 64-bit otherwise.
#include <algorithm>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/conv.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;
constexpr int64_t kFast = int64_t(1) << 31;  // 32-bit index arithmetic below this many elements

// n / d for n < 2^31 by a multiply and a shift (Granlund & Montgomery): s = ceil(log2 d),
// m = floor(2^32 (2^s - d) / d) + 1, n / d = (mulhi(n, m) + n) >> s.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t divisor) : d(uint32_t(divisor)) {
    while ((uint64_t(1) << s) < d) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
  // q = n / d, returns n % d.
  __device__ __forceinline__ uint32_t divmod(uint32_t n, uint32_t& q) const {
    q = div(n);
    return n - q * d;
  }
};

struct Geometry {
  int64_t height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, out_h, out_w;
  int64_t total;  // elements the kernel walks
  FastDiv div_l, div_ow, div_taps, div_kw, div_plane, div_w;
};

// The dividers are only used (and only valid) when total < 2^31, which bounds every extent used.
FastDiv divider(int64_t d) { return d < kFast ? FastDiv(d) : FastDiv(); }

Geometry make_geometry(const cpu::ConvGeometry& g, int64_t total) {
  return {g.height, g.width, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.out_h, g.out_w, total,
          divider(g.out_h * g.out_w), divider(g.out_w), divider(g.kernel_h * g.kernel_w), divider(g.kernel_w),
          divider(g.height * g.width), divider(g.width)};
}

unsigned blocks_for(int64_t work) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, kThreads), kMaxBlocks)));
}

// cols[idx] for idx = ((nc * taps + tap) * out_h + oh) * out_w + ow.
__device__ __forceinline__ float im2col_value(const Geometry& g, const float* x, int64_t nc, int64_t i, int64_t j,
                                              int64_t oh, int64_t ow) {
  const int64_t ih = oh * g.stride_h - g.pad_h + i, iw = ow * g.stride_w - g.pad_w + j;
  if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) return 0.0f;
  return x[(nc * g.height + ih) * g.width + iw];
}

template <bool Fast>
__global__ void __launch_bounds__(kThreads) im2col_kernel(Geometry g, const float* x, float* cols) {
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < g.total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t nc, i, j, oh, ow;
    if constexpr (Fast) {
      uint32_t r, l, tap, q, ohq;
      l = g.div_l.divmod(uint32_t(idx), r);
      ow = g.div_ow.divmod(l, ohq);
      oh = ohq;
      tap = g.div_taps.divmod(r, q);
      nc = q;
      uint32_t iq;
      j = g.div_kw.divmod(tap, iq);
      i = iq;
    } else {
      const int64_t L = g.out_h * g.out_w, taps = g.kernel_h * g.kernel_w;
      const int64_t r = idx / L, l = idx - r * L;
      oh = l / g.out_w;
      ow = l - oh * g.out_w;
      nc = r / taps;
      const int64_t tap = r - nc * taps;
      i = tap / g.kernel_w;
      j = tap - i * g.kernel_w;
    }
    cols[idx] = im2col_value(g, x, nc, i, j, oh, ow);
  }
}

// The kernel offsets t (and their output positions o) that read input coordinate `in` along one
// axis: t ≡ in + pad (mod stride), 0 <= t < kernel, 0 <= o = (in + pad - t) / stride < out. Returns
// the first t (o falls by 1 as t grows by stride); none when first > last.
struct Taps {
  int64_t first, last, o_first;
};
__device__ __forceinline__ Taps taps_for(int64_t in, int64_t pad, int64_t stride, int64_t kernel, int64_t out) {
  const int64_t p = in + pad;
  const int64_t lower = p - (out - 1) * stride;  // smallest t whose output position is < out
  const int64_t first = lower > 0 ? lower : p % stride;
  const int64_t last = p < kernel - 1 ? p : kernel - 1;
  return {first, last, (p - first) / stride};
}

template <bool Fast>
__global__ void __launch_bounds__(kThreads) col2im_kernel(Geometry g, const float* cols, float* x) {
  const int64_t taps = g.kernel_h * g.kernel_w, L = g.out_h * g.out_w;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < g.total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t nc, h, w;
    if constexpr (Fast) {
      uint32_t q, hw, hq;
      hw = g.div_plane.divmod(uint32_t(idx), q);
      nc = q;
      w = g.div_w.divmod(hw, hq);
      h = hq;
    } else {
      const int64_t plane = g.height * g.width;
      nc = idx / plane;
      const int64_t hw = idx - nc * plane;
      h = hw / g.width;
      w = hw - h * g.width;
    }
    const Taps th = taps_for(h, g.pad_h, g.stride_h, g.kernel_h, g.out_h);
    const Taps tw = taps_for(w, g.pad_w, g.stride_w, g.kernel_w, g.out_w);
    const float* src = cols + nc * taps * L;
    float acc = 0.0f;
    int64_t oh = th.o_first;
    for (int64_t i = th.first; i <= th.last; i += g.stride_h, --oh) {
      int64_t ow = tw.o_first;
      for (int64_t j = tw.first; j <= tw.last; j += g.stride_w, --ow)
        acc += src[((i * g.kernel_w + j) * g.out_h + oh) * g.out_w + ow];
    }
    x[idx] = acc;
  }
}

}  // namespace

void im2col(const cpu::ConvGeometry& g, const float* x, float* cols) {
  const int64_t total = g.batch * g.channels * g.kernel_h * g.kernel_w * g.out_h * g.out_w;
  if (total <= 0) return;
  const Geometry k = make_geometry(g, total);
  if (total < kFast) launch("im2col", im2col_kernel<true>, dim3(blocks_for(total)), dim3(kThreads), 0, k, x, cols);
  else launch("im2col", im2col_kernel<false>, dim3(blocks_for(total)), dim3(kThreads), 0, k, x, cols);
}

void col2im(const cpu::ConvGeometry& g, const float* cols, float* x) {
  const int64_t total = g.batch * g.channels * g.height * g.width;
  if (total <= 0) return;
  const Geometry k = make_geometry(g, total);
  if (total < kFast) launch("col2im", col2im_kernel<true>, dim3(blocks_for(total)), dim3(kThreads), 0, k, cols, x);
  else launch("col2im", col2im_kernel<false>, dim3(blocks_for(total)), dim3(kThreads), 0, k, cols, x);
}

}  // namespace dv::cuda
