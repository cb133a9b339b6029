// Bindings for cpu/pool.h (maxPool2d, avgPool2d, resizeBilinear). Offsets are in elements. The
// output size is derived here from the geometry (PyTorch's rule) rather than trusted from JS, and
// both buffers are checked to span the whole input and output, and not to overlap, before any
// kernel runs.
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/pool.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;
// Kernel, stride and padding stay below 2^31 so window sizes and their products cannot overflow.
constexpr int64_t kMaxWindow = int64_t(1) << 31;

// PyTorch's pooling_output_shape (no dilation): floor or ceil of (in + 2 pad - kernel) / stride,
// plus one; in ceil mode the last window must start inside the input or its left padding.
int64_t pooled_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  const int64_t span = in + 2 * pad - kernel;  // >= 0, checked by the caller
  int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// Reads (planes, height, width, kernelH, kernelW, strideH, strideW, padH, padW, ceilMode) from
// arguments first..first+9, checks them as PyTorch's pool2d_shape_check does and sets out_h/out_w.
cpu::PoolGeometry pool_geometry(Args& a, int first) {
  cpu::PoolGeometry g{};
  g.planes = a.integer(first, 0, kMaxSize);
  g.height = a.integer(first + 1, 1, kMaxSize);
  g.width = a.integer(first + 2, 1, kMaxSize);
  g.kernel_h = a.integer(first + 3, 1, kMaxWindow);
  g.kernel_w = a.integer(first + 4, 1, kMaxWindow);
  g.stride_h = a.integer(first + 5, 1, kMaxWindow);
  g.stride_w = a.integer(first + 6, 1, kMaxWindow);
  g.pad_h = a.integer(first + 7, 0, kMaxWindow);
  g.pad_w = a.integer(first + 8, 0, kMaxWindow);
  const bool ceil_mode = a.boolean(first + 9);
  // Padding larger than half the window would let a window lie wholly in the padding.
  if (2 * g.pad_h > g.kernel_h)
    a.fail(first + 7, "at most kernelH / 2 = " + std::to_string(g.kernel_h / 2), std::to_string(g.pad_h));
  if (2 * g.pad_w > g.kernel_w)
    a.fail(first + 8, "at most kernelW / 2 = " + std::to_string(g.kernel_w / 2), std::to_string(g.pad_w));
  if (g.kernel_h > g.height + 2 * g.pad_h)
    a.fail(first + 3, "at most height + 2*padH = " + std::to_string(g.height + 2 * g.pad_h), std::to_string(g.kernel_h));
  if (g.kernel_w > g.width + 2 * g.pad_w)
    a.fail(first + 4, "at most width + 2*padW = " + std::to_string(g.width + 2 * g.pad_w), std::to_string(g.kernel_w));
  g.out_h = pooled_size(g.height, g.kernel_h, g.stride_h, g.pad_h, ceil_mode);
  g.out_w = pooled_size(g.width, g.kernel_w, g.stride_w, g.pad_w, ceil_mode);
  return g;
}

// Shared body of maxPool2d and avgPool2d: x (planes, height, width) -> y (planes, outH, outW).
struct PoolCall {
  cpu::PoolGeometry g;
  const float* x;
  float* y;
  bool empty;
};
PoolCall pool_call(Args& a) {
  const cpu::PoolGeometry g = pool_geometry(a, 4);
  const int64_t nx = checked_numel({g.planes, g.height, g.width}), ny = checked_numel({g.planes, g.out_h, g.out_w});
  a.require_extent(0, nx);
  a.require_extent(2, ny);
  a.require_disjoint(0, a.buffer(0), a.offset(0), nx, 2, a.buffer(2), a.offset(2), ny);
  return {g, a.f32(0), a.f32(2), ny == 0};
}
}  // namespace

// maxPool2d: y (planes, OH, OW) = max over each window of x (planes, height, width)
DV_KERNEL_IMPL(maxPool2d) {
  PoolCall c = pool_call(a);
  if (!c.empty) DV_RUN(a, max_pool2d, c.g, c.x, c.y);
  return info.Env().Undefined();
}

// avgPool2d: y (planes, OH, OW) = mean over each window of x
DV_KERNEL_IMPL(avgPool2d) {
  PoolCall c = pool_call(a);
  const bool count_include_pad = a.boolean(14);
  if (!c.empty) DV_RUN(a, avg_pool2d, c.g, count_include_pad, c.x, c.y);
  return info.Env().Undefined();
}

// y (planes, outH, outW) = x (planes, inH, inW) resized bilinearly (PyTorch's F.interpolate)
DV_KERNEL_IMPL(resizeBilinear) {
  cpu::ResizeGeometry g{};
  g.planes = a.integer(4, 0, kMaxSize);
  g.in_h = a.integer(5, 1, kMaxSize);
  g.in_w = a.integer(6, 1, kMaxSize);
  g.out_h = a.integer(7, 1, kMaxSize);
  g.out_w = a.integer(8, 1, kMaxSize);
  g.align_corners = a.boolean(9);
  const int64_t nx = checked_numel({g.planes, g.in_h, g.in_w}), ny = checked_numel({g.planes, g.out_h, g.out_w});
  a.require_disjoint(0, a.buffer(0), a.offset(0), nx, 2, a.buffer(2), a.offset(2), ny);
  if (ny == 0) return info.Env().Undefined();
  DV_RUN(a, resize_bilinear, g, a.f32(0), a.f32(2));
  return info.Env().Undefined();
}

}  // namespace dv::addon
