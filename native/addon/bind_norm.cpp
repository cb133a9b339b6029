// Bindings for cpu/norm.h. Offsets and sizes are in elements; every buffer is float32.
#include <cmath>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/norm.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;
}  // namespace

// softmax: y = softmax over the n axis of (outer, n, inner).
DV_KERNEL_IMPL(softmax) {
  Buffer& x = a.buffer(0, DType::f32);
  Buffer& y = a.buffer(2, DType::f32);
  a.require_same_device(0, x, 2, y);
  int64_t xo = a.integer(1), yo = a.integer(3);
  int64_t outer = a.integer(4, 0, kMaxSize), n = a.integer(5, 0, kMaxSize), inner = a.integer(6, 0, kMaxSize);
  int64_t numel = checked_numel({outer, n, inner});
  a.require_extent(0, x, xo, numel);
  a.require_extent(2, y, yo, numel);
  if (numel == 0) return info.Env().Undefined();
  DV_RUN(a, softmax, x.as<float>() + xo, y.as<float>() + yo, outer, n, inner);
  return info.Env().Undefined();
}

// softmaxBackward: dx = y (dy - sum_n(dy y)).
DV_KERNEL_IMPL(softmaxBackward) {
  Buffer& y = a.buffer(0, DType::f32);
  Buffer& dy = a.buffer(2, DType::f32);
  Buffer& dx = a.buffer(4, DType::f32);
  a.require_same_device(0, y, 2, dy);
  a.require_same_device(0, y, 4, dx);
  int64_t yo = a.integer(1), go = a.integer(3), xo = a.integer(5);
  int64_t outer = a.integer(6, 0, kMaxSize), n = a.integer(7, 0, kMaxSize), inner = a.integer(8, 0, kMaxSize);
  int64_t numel = checked_numel({outer, n, inner});
  a.require_extent(0, y, yo, numel);
  a.require_extent(2, dy, go, numel);
  a.require_extent(4, dx, xo, numel);
  if (numel == 0) return info.Env().Undefined();
  DV_RUN(a, softmax_backward, y.as<float>() + yo, dy.as<float>() + go, dx.as<float>() + xo, outer, n, inner);
  return info.Env().Undefined();
}

// layerNorm: x, y (rows, cols); weight, bias (cols) or null; mean, rstd (rows) or null.
DV_KERNEL_IMPL(layerNorm) {
  Buffer& x = a.buffer(0, DType::f32);
  Buffer* w = a.optional_buffer(2, DType::f32);
  Buffer* b = a.optional_buffer(4, DType::f32);
  Buffer& y = a.buffer(6, DType::f32);
  Buffer* mean = a.optional_buffer(8, DType::f32);
  Buffer* rstd = a.optional_buffer(10, DType::f32);
  int64_t xo = a.integer(1), wo = a.integer(3), bo = a.integer(5), yo = a.integer(7), mo = a.integer(9),
          ro = a.integer(11);
  int64_t rows = a.integer(12, 0, kMaxSize), cols = a.integer(13, 0, kMaxSize);
  float eps = a.positive_float32(14);
  int64_t numel = checked_numel({rows, cols});
  a.require_extent(0, x, xo, numel);
  a.require_extent(6, y, yo, numel);
  if (w) {
    a.require_same_device(0, x, 2, *w);
    a.require_extent(2, *w, wo, cols);
  }
  if (b) {
    a.require_same_device(0, x, 4, *b);
    a.require_extent(4, *b, bo, cols);
  }
  a.require_same_device(0, x, 6, y);
  if (mean) {
    a.require_same_device(0, x, 8, *mean);
    a.require_extent(8, *mean, mo, rows);
  }
  if (rstd) {
    a.require_same_device(0, x, 10, *rstd);
    a.require_extent(10, *rstd, ro, rows);
  }
  if (rows == 0) return info.Env().Undefined();
  DV_RUN(a, layer_norm, x.as<float>() + xo, w ? w->as<float>() + wo : nullptr, b ? b->as<float>() + bo : nullptr,
         y.as<float>() + yo, mean ? mean->as<float>() + mo : nullptr, rstd ? rstd->as<float>() + ro : nullptr, rows,
         cols, eps);
  return info.Env().Undefined();
}

// weight null = no affine; dx, dweight, dbias null = not wanted; dweight/dbias are overwritten.
DV_KERNEL_IMPL(layerNormBackward) {
  Buffer& x = a.buffer(0, DType::f32);
  Buffer* w = a.optional_buffer(2, DType::f32);
  Buffer& mean = a.buffer(4, DType::f32);
  Buffer& rstd = a.buffer(6, DType::f32);
  Buffer& dy = a.buffer(8, DType::f32);
  Buffer* dx = a.optional_buffer(10, DType::f32);
  Buffer* dw = a.optional_buffer(12, DType::f32);
  Buffer* db = a.optional_buffer(14, DType::f32);
  int64_t xo = a.integer(1), wo = a.integer(3), mo = a.integer(5), ro = a.integer(7), go = a.integer(9),
          dxo = a.integer(11), dwo = a.integer(13), dbo = a.integer(15);
  int64_t rows = a.integer(16, 0, kMaxSize), cols = a.integer(17, 0, kMaxSize);
  int64_t numel = checked_numel({rows, cols});
  a.require_extent(0, x, xo, numel);
  if (w) {
    a.require_same_device(0, x, 2, *w);
    a.require_extent(2, *w, wo, cols);
  }
  a.require_same_device(0, x, 4, mean);
  a.require_extent(4, mean, mo, rows);
  a.require_same_device(0, x, 6, rstd);
  a.require_extent(6, rstd, ro, rows);
  a.require_same_device(0, x, 8, dy);
  a.require_extent(8, dy, go, numel);
  if (dx) {
    a.require_same_device(0, x, 10, *dx);
    a.require_extent(10, *dx, dxo, numel);
  }
  if (dw) {
    a.require_same_device(0, x, 12, *dw);
    a.require_extent(12, *dw, dwo, cols);
  }
  if (db) {
    a.require_same_device(0, x, 14, *db);
    a.require_extent(14, *db, dbo, cols);
  }
  if (!dx && !dw && !db) return info.Env().Undefined();
  DV_RUN(a, layer_norm_backward, x.as<float>() + xo, w ? w->as<float>() + wo : nullptr, mean.as<float>() + mo,
         rstd.as<float>() + ro, dy.as<float>() + go, dx ? dx->as<float>() + dxo : nullptr,
         dw ? dw->as<float>() + dwo : nullptr, db ? db->as<float>() + dbo : nullptr, rows, cols);
  return info.Env().Undefined();
}

}  // namespace dv::addon
