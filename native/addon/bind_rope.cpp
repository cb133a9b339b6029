// Bindings for cpu/rope.h (and cuda/rope.h for buffers on a CUDA device). Offsets and sizes are in
// elements; every buffer is float32 and dense.
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/rope.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;
}  // namespace

// rope: x, y (batch, tokens, groups, dim), y apart from x; cos, sin (tokens, dim / 2).
DV_KERNEL_IMPL(rope) {
  Buffer& x = a.buffer(0);
  const int64_t xo = a.integer(1);
  Buffer& y = a.buffer(2);
  const int64_t yo = a.integer(3);
  Buffer& cos = a.buffer(4);
  const int64_t co = a.integer(5);
  Buffer& sin = a.buffer(6);
  const int64_t so = a.integer(7);
  const int64_t batch = a.integer(8, 0, kMaxSize), tokens = a.integer(9, 0, kMaxSize);
  const int64_t groups = a.integer(10, 0, kMaxSize), rotated = a.integer(11, 0, groups);
  const int64_t dim = a.integer(12, 0, kMaxSize);
  const bool inverse = a.boolean(13);
  if (dim % 2) a.fail(12, "an even number (pairs i, i + dim/2)", std::to_string(dim));
  const int64_t numel = checked_numel({batch, tokens, groups, dim}), table = checked_numel({tokens, dim / 2});
  a.require_extent(0, x, xo, numel);
  a.require_extent(2, y, yo, numel);
  a.require_disjoint(0, x, xo, numel, 2, y, yo, numel);
  a.require_extent(4, cos, co, table);
  a.require_extent(6, sin, so, table);
  if (numel == 0) return info.Env().Undefined();
  DV_RUN(a, rope, x.as<float>() + xo, y.as<float>() + yo, cos.as<float>() + co, sin.as<float>() + so, batch, tokens,
         groups, rotated, dim, inverse);
  return info.Env().Undefined();
}

}  // namespace dv::addon
