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
  int64_t batch, channels, groups, spatial;
};
GroupShape group_shape(Args& a, int first) {
  GroupShape s{a.integer(first, 0, kMaxSize), a.integer(first + 1, 1, kMaxSize), a.integer(first + 2, 1, kMaxSize),
               a.integer(first + 3, 0, kMaxSize)};
  if (s.channels % s.groups) {
    a.fail(first + 1, "a multiple of groups (" + std::to_string(s.groups) + ")", std::to_string(s.channels));
  }
  return s;
}
// The stride of an optional per-(item, channel) vector at argument i (0 when it is absent).
int64_t stride_if(Args& a, int i, const float* p) { return p ? a.integer(i, 0, kMaxSize) : 0; }
}  // namespace

// softmax: y = softmax over the n axis of (outer, n, inner).
DV_KERNEL_IMPL(softmax) {
  const int64_t outer = a.integer(4), n = a.integer(5), inner = a.integer(6);
  if (checked_numel({outer, n, inner}) == 0) return info.Env().Undefined();
  DV_RUN(a, softmax, a.f32(0), a.f32(2), outer, n, inner);
  return info.Env().Undefined();
}

// softmaxBackward: dx = y (dy - sum_n(dy y)).
DV_KERNEL_IMPL(softmaxBackward) {
  const int64_t outer = a.integer(6), n = a.integer(7), inner = a.integer(8);
  if (checked_numel({outer, n, inner}) == 0) return info.Env().Undefined();
  DV_RUN(a, softmax_backward, a.f32(0), a.f32(2), a.f32(4), outer, n, inner);
  return info.Env().Undefined();
}

// layerNorm: x, y (rows, cols); weight, bias (cols) or null; mean, rstd (rows) or null.
DV_KERNEL_IMPL(layerNorm) {
  const int64_t rows = a.integer(12), cols = a.integer(13);
  const float eps = a.positive_float32(14);
  if (rows == 0) return info.Env().Undefined();
  DV_RUN(a, layer_norm, a.f32(0), a.f32(2), a.f32(4), a.f32(6), a.f32(8), a.f32(10), rows, cols, eps);
  return info.Env().Undefined();
}

// weight null = no affine; dx, dweight, dbias null = not wanted; dweight/dbias are overwritten.
DV_KERNEL_IMPL(layerNormBackward) {
  const int64_t rows = a.integer(16), cols = a.integer(17);
  float *dx = a.f32(10), *dw = a.f32(12), *db = a.f32(14);
  if (!dx && !dw && !db) return info.Env().Undefined();
  DV_RUN(a, layer_norm_backward, a.f32(0), a.f32(2), a.f32(4), a.f32(6), a.f32(8), dx, dw, db, rows, cols);
  return info.Env().Undefined();
}

// groupNorm: x, y (batch, channels, spatial); scale, shift rows of channels (stride apart) or null;
// mean, rstd (batch * groups) or null.
DV_KERNEL_IMPL(groupNorm) {
  const GroupShape s = group_shape(a, 14);
  const float eps = a.positive_float32(18);
  const bool silu = a.boolean(19);
  if (checked_numel({s.batch, s.groups}) == 0) return info.Env().Undefined();
  const float *scale = a.f32(2), *shift = a.f32(5);
  DV_RUN(a, group_norm, a.f32(0), scale, stride_if(a, 4, scale), shift, stride_if(a, 7, shift), a.f32(8), a.f32(10),
         a.f32(12), s.batch, s.channels, s.groups, s.spatial, eps, silu);
  return info.Env().Undefined();
}

// groupNormBackward: dx (batch, channels, spatial), dscale and dshift (batch, channels), each null
// when not wanted; mean and rstd as groupNorm saved them.
DV_KERNEL_IMPL(groupNormBackward) {
  const GroupShape s = group_shape(a, 20);
  const bool silu = a.boolean(24);
  float *dx = a.f32(14), *dscale = a.f32(16), *dshift = a.f32(18);
  if (checked_numel({s.batch, s.groups}) == 0 || (!dx && !dscale && !dshift)) return info.Env().Undefined();
  const float *scale = a.f32(2), *shift = a.f32(5);
  DV_RUN(a, group_norm_backward, a.f32(0), scale, stride_if(a, 4, scale), shift, stride_if(a, 7, shift), a.f32(8),
         a.f32(10), a.f32(12), dx, dscale, dshift, s.batch, s.channels, s.groups, s.spatial, silu);
  return info.Env().Undefined();
}

}  // namespace dv::addon
