// Bindings for cpu/rope.h (and cuda/rope.h for buffers on a CUDA device). Offsets and sizes are in
// elements; every buffer is float32 and dense.
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/rope.h"

namespace dv::addon {
// rope: x, y (batch, tokens, groups, dim), y apart from x; cos, sin (tokens, dim / 2).
DV_KERNEL_IMPL(rope) {
  const int64_t batch = a.integer(8), tokens = a.integer(9), groups = a.integer(10);
  const int64_t rotated = a.integer(11, 0, groups), dim = a.integer(12);
  const bool inverse = a.boolean(13);
  if (dim % 2) a.fail(12, "an even number (pairs i, i + dim/2)", std::to_string(dim));
  const int64_t numel = checked_numel({batch, tokens, groups, dim});
  a.require_disjoint(0, a.buffer(0), a.offset(0), numel, 2, a.buffer(2), a.offset(2), numel);
  if (numel == 0) return info.Env().Undefined();
  DV_RUN(a, rope, a.f32(0), a.f32(2), a.f32(4), a.f32(6), batch, tokens, groups, rotated, dim, inverse);
  return info.Env().Undefined();
}

}  // namespace dv::addon
