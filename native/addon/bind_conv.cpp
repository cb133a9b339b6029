// Bindings for cpu/conv.h (im2col, col2im). Offsets are in elements; every size is validated and
// both buffers are checked to span the whole input and column tensors before any kernel runs.
#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/conv.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// Reads (batch, channels, height, width, kernelH, kernelW, strideH, strideW, padH, padW) from
// arguments first..first+9 and derives the output size as PyTorch does.
cpu::ConvGeometry geometry(Args& a, int first) {
  cpu::ConvGeometry g{};
  g.batch = a.integer(first, 0, kMaxSize);
  g.channels = a.integer(first + 1, 0, kMaxSize);
  g.height = a.integer(first + 2, 1, kMaxSize);
  g.width = a.integer(first + 3, 1, kMaxSize);
  g.kernel_h = a.integer(first + 4, 1, kMaxSize);
  g.kernel_w = a.integer(first + 5, 1, kMaxSize);
  g.stride_h = a.integer(first + 6, 1, kMaxSize);
  g.stride_w = a.integer(first + 7, 1, kMaxSize);
  g.pad_h = a.integer(first + 8, 0, kMaxSize);
  g.pad_w = a.integer(first + 9, 0, kMaxSize);
  if (g.kernel_h > g.height + 2 * g.pad_h)
    a.fail(first + 4, "at most height + 2*padH = " + std::to_string(g.height + 2 * g.pad_h), std::to_string(g.kernel_h));
  if (g.kernel_w > g.width + 2 * g.pad_w)
    a.fail(first + 5, "at most width + 2*padW = " + std::to_string(g.width + 2 * g.pad_w), std::to_string(g.kernel_w));
  g.out_h = (g.height + 2 * g.pad_h - g.kernel_h) / g.stride_h + 1;
  g.out_w = (g.width + 2 * g.pad_w - g.kernel_w) / g.stride_w + 1;
  return g;
}

int64_t image_numel(const cpu::ConvGeometry& g) { return checked_numel({g.batch, g.channels, g.height, g.width}); }
int64_t cols_numel(const cpu::ConvGeometry& g) {
  return checked_numel({g.batch, g.channels, g.kernel_h, g.kernel_w, g.out_h, g.out_w});
}
}  // namespace

// im2col: x (batch, channels, height, width) -> cols (batch, channels*kh*kw, OH*OW)
DV_KERNEL_IMPL(im2col) {
  const cpu::ConvGeometry g = geometry(a, 4);
  a.require_extent(0, image_numel(g));
  a.require_extent(2, cols_numel(g));
  if (cols_numel(g) == 0) return info.Env().Undefined();
  DV_RUN(a, im2col, g, a.f32(0), a.f32(2));
  return info.Env().Undefined();
}

// col2im: x = the adjoint of im2col applied to cols (x is overwritten)
DV_KERNEL_IMPL(col2im) {
  const cpu::ConvGeometry g = geometry(a, 4);
  a.require_extent(0, cols_numel(g));
  a.require_extent(2, image_numel(g));
  if (image_numel(g) == 0) return info.Env().Undefined();
  DV_RUN(a, col2im, g, a.f32(0), a.f32(2));
  return info.Env().Undefined();
}

}  // namespace dv::addon
