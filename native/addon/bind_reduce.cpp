// Bindings for cpu/reduce.h.
#include "addon/args.h"
#include "addon/registry.h"
#include "cpu/reduce.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;
}

// reduceSum(x, xOffset, out, outOffset, outer, r, inner)
DV_BINDING(reduceSum) {
  Args a(info, "reduceSum", {"x", "xOffset", "out", "outOffset", "outer", "r", "inner"});
  Buffer& x = a.buffer(0, DType::f32);
  Buffer& out = a.buffer(2, DType::f32);
  int64_t xo = a.integer(1), oo = a.integer(3);
  int64_t outer = a.integer(4, 0, kMaxSize), r = a.integer(5, 0, kMaxSize), inner = a.integer(6, 0, kMaxSize);
  int64_t n_out = checked_numel({outer, inner}), n_in = checked_numel({outer, r, inner});
  a.require_extent(0, x, xo, n_in);
  a.require_extent(2, out, oo, n_out);
  cpu::reduce_sum(x.as<float>() + xo, out.as<float>() + oo, outer, r, inner);
  return info.Env().Undefined();
}

// sumSquares(x, xOffset, n) -> number
DV_BINDING(sumSquares) {
  Args a(info, "sumSquares", {"x", "xOffset", "n"});
  Buffer& x = a.buffer(0, DType::f32);
  int64_t xo = a.integer(1), n = a.integer(2, 0, kMaxSize);
  a.require_extent(0, x, xo, n);
  return Napi::Number::New(info.Env(), cpu::sum_squares(x.as<float>() + xo, n));
}

}  // namespace dv::addon
