// Bindings for cpu/norm.h. Offsets and sizes are in elements; every buffer is float32.
#include <cmath>
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/norm.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// GroupNorm's (batch, channels, groups, spatial): channels a positive multiple of groups.
struct GroupShape {
  int64_t batch, channels, groups, spatial, numel;
};
GroupShape group_shape(Args& a, int first) {
  GroupShape s{a.integer(first, 0, kMaxSize), a.integer(first + 1, 1, kMaxSize), a.integer(first + 2, 1, kMaxSize),
               a.integer(first + 3, 0, kMaxSize), 0};
  if (s.channels % s.groups) {
    a.fail(first + 1, "a multiple of groups (" + std::to_string(s.groups) + ")", std::to_string(s.channels));
  }
  s.numel = checked_numel({s.batch, s.channels, s.spatial});
  return s;
}

// A per-(item, channel) vector: batch rows of `channels` floats, `stride` apart (0: one row for all), or null.
const float* channel_rows(Args& a, int i, const Buffer& x, const GroupShape& s) {
  Buffer* b = a.optional_buffer(i);
  if (!b) return nullptr;
  const int64_t offset = a.integer(i + 1), stride = a.integer(i + 2, 0, kMaxSize);
  a.require_extent(i, *b, offset, strided_extent({s.batch, s.channels}, {stride, 1}));
  return b->as<float>() + offset;
}
int64_t stride_of(Args& a, int i) { return a.integer(i, 0, kMaxSize); }

float* optional_out(Args& a, int i, const Buffer& x, int64_t extent) {
  Buffer* b = a.optional_buffer(i);
  if (!b) return nullptr;
  const int64_t offset = a.integer(i + 1);
  a.require_extent(i, *b, offset, extent);
  return b->as<float>() + offset;
}
}  // namespace

// softmax: y = softmax over the n axis of (outer, n, inner).
DV_KERNEL_IMPL(softmax) {
  Buffer& x = a.buffer(0);
  Buffer& y = a.buffer(2);
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
  Buffer& y = a.buffer(0);
  Buffer& dy = a.buffer(2);
  Buffer& dx = a.buffer(4);
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
  Buffer& x = a.buffer(0);
  Buffer* w = a.optional_buffer(2);
  Buffer* b = a.optional_buffer(4);
  Buffer& y = a.buffer(6);
  Buffer* mean = a.optional_buffer(8);
  Buffer* rstd = a.optional_buffer(10);
  int64_t xo = a.integer(1), wo = a.integer(3), bo = a.integer(5), yo = a.integer(7), mo = a.integer(9),
          ro = a.integer(11);
  int64_t rows = a.integer(12, 0, kMaxSize), cols = a.integer(13, 0, kMaxSize);
  float eps = a.positive_float32(14);
  int64_t numel = checked_numel({rows, cols});
  a.require_extent(0, x, xo, numel);
  a.require_extent(6, y, yo, numel);
  if (w) a.require_extent(2, *w, wo, cols);
  if (b) a.require_extent(4, *b, bo, cols);
  if (mean) a.require_extent(8, *mean, mo, rows);
  if (rstd) a.require_extent(10, *rstd, ro, rows);
  if (rows == 0) return info.Env().Undefined();
  DV_RUN(a, layer_norm, x.as<float>() + xo, w ? w->as<float>() + wo : nullptr, b ? b->as<float>() + bo : nullptr,
         y.as<float>() + yo, mean ? mean->as<float>() + mo : nullptr, rstd ? rstd->as<float>() + ro : nullptr, rows,
         cols, eps);
  return info.Env().Undefined();
}

// weight null = no affine; dx, dweight, dbias null = not wanted; dweight/dbias are overwritten.
DV_KERNEL_IMPL(layerNormBackward) {
  Buffer& x = a.buffer(0);
  Buffer* w = a.optional_buffer(2);
  Buffer& mean = a.buffer(4);
  Buffer& rstd = a.buffer(6);
  Buffer& dy = a.buffer(8);
  Buffer* dx = a.optional_buffer(10);
  Buffer* dw = a.optional_buffer(12);
  Buffer* db = a.optional_buffer(14);
  int64_t xo = a.integer(1), wo = a.integer(3), mo = a.integer(5), ro = a.integer(7), go = a.integer(9),
          dxo = a.integer(11), dwo = a.integer(13), dbo = a.integer(15);
  int64_t rows = a.integer(16, 0, kMaxSize), cols = a.integer(17, 0, kMaxSize);
  int64_t numel = checked_numel({rows, cols});
  a.require_extent(0, x, xo, numel);
  if (w) a.require_extent(2, *w, wo, cols);
  a.require_extent(4, mean, mo, rows);
  a.require_extent(6, rstd, ro, rows);
  a.require_extent(8, dy, go, numel);
  if (dx) a.require_extent(10, *dx, dxo, numel);
  if (dw) a.require_extent(12, *dw, dwo, cols);
  if (db) a.require_extent(14, *db, dbo, cols);
  if (!dx && !dw && !db) return info.Env().Undefined();
  DV_RUN(a, layer_norm_backward, x.as<float>() + xo, w ? w->as<float>() + wo : nullptr, mean.as<float>() + mo,
         rstd.as<float>() + ro, dy.as<float>() + go, dx ? dx->as<float>() + dxo : nullptr,
         dw ? dw->as<float>() + dwo : nullptr, db ? db->as<float>() + dbo : nullptr, rows, cols);
  return info.Env().Undefined();
}

// groupNorm: x, y (batch, channels, spatial); scale, shift rows of channels (stride apart) or null;
// mean, rstd (batch * groups) or null.
DV_KERNEL_IMPL(groupNorm) {
  Buffer& x = a.buffer(0);
  const int64_t xo = a.integer(1);
  const GroupShape s = group_shape(a, 14);
  const float eps = a.positive_float32(18);
  const bool silu = a.boolean(19);
  a.require_extent(0, x, xo, s.numel);
  const float* scale = channel_rows(a, 2, x, s);
  const float* shift = channel_rows(a, 5, x, s);
  Buffer& y = a.buffer(8);
  const int64_t yo = a.integer(9);
  a.require_extent(8, y, yo, s.numel);
  const int64_t stats = checked_numel({s.batch, s.groups});
  float* mean = optional_out(a, 10, x, stats);
  float* rstd = optional_out(a, 12, x, stats);
  if (stats == 0) return info.Env().Undefined();
  DV_RUN(a, group_norm, x.as<float>() + xo, scale, scale ? stride_of(a, 4) : 0, shift, shift ? stride_of(a, 7) : 0,
         y.as<float>() + yo, mean, rstd, s.batch, s.channels, s.groups, s.spatial, eps, silu);
  return info.Env().Undefined();
}

// groupNormBackward: dx (batch, channels, spatial), dscale and dshift (batch, channels), each null
// when not wanted; mean and rstd as groupNorm saved them.
DV_KERNEL_IMPL(groupNormBackward) {
  Buffer& x = a.buffer(0);
  const int64_t xo = a.integer(1);
  const GroupShape s = group_shape(a, 20);
  const bool silu = a.boolean(24);
  a.require_extent(0, x, xo, s.numel);
  const float* scale = channel_rows(a, 2, x, s);
  const float* shift = channel_rows(a, 5, x, s);
  const int64_t stats = checked_numel({s.batch, s.groups});
  Buffer& mean = a.buffer(8);
  Buffer& rstd = a.buffer(10);
  const int64_t mo = a.integer(9), ro = a.integer(11);
  a.require_extent(8, mean, mo, stats);
  a.require_extent(10, rstd, ro, stats);
  Buffer& dy = a.buffer(12);
  const int64_t go = a.integer(13);
  a.require_extent(12, dy, go, s.numel);
  float* dx = optional_out(a, 14, x, s.numel);
  const int64_t rows = checked_numel({s.batch, s.channels});
  float* dscale = optional_out(a, 16, x, rows);
  float* dshift = optional_out(a, 18, x, rows);
  if (stats == 0 || (!dx && !dscale && !dshift)) return info.Env().Undefined();
  DV_RUN(a, group_norm_backward, x.as<float>() + xo, scale, scale ? stride_of(a, 4) : 0, shift,
         shift ? stride_of(a, 7) : 0, mean.as<float>() + mo, rstd.as<float>() + ro, dy.as<float>() + go, dx, dscale,
         dshift, s.batch, s.channels, s.groups, s.spatial, silu);
  return info.Env().Undefined();
}

}  // namespace dv::addon
