// Bindings for cpu/elementwise.h. Offsets, strides and sizes are in elements.
#include <algorithm>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/elementwise.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// True when the strides give every index of `shape` its own element: sorted by stride, each
// dimension of size > 1 must step over everything the smaller ones span. (Every view diffvit
// makes of contiguous memory has this form, except expand's zero strides.) A destination that
// passes can not be written twice, and its element count is bounded by its extent.
bool nested_strides(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return true;  // nothing is written
    if (shape[d] > 1) dims.push_back({strides[d], shape[d]});
  }
  std::sort(dims.begin(), dims.end());
  int64_t span = 1;
  for (auto [stride, size] : dims) {
    int64_t step;
    if (stride < span || __builtin_mul_overflow(stride, size - 1, &step) || __builtin_add_overflow(span, step, &span))
      return false;
  }
  return true;
}

}  // namespace

DV_KERNEL_IMPL(fill) {
  Buffer& out = a.any_buffer(0);
  int64_t offset = a.integer(1), n = a.integer(2, 0, kMaxSize);
  a.require_extent(0, out, offset, n);
  if (out.dtype() == DType::f32) {
    DV_RUN(a, fill, out.as<float>() + offset, n, static_cast<float>(a.number(3, true)));
  } else {
    DV_RUN(a, fill_i32, out.as<int32_t>() + offset, n, static_cast<int32_t>(a.integer(3, -2147483648LL, 2147483647LL)));
  }
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(copyStrided) {
  Buffer& src = a.any_buffer(0);
  Buffer& dst = a.any_buffer(3);
  if (src.dtype() != dst.dtype()) a.fail(3, std::string("dtype ") + dtype_name(src.dtype()), dtype_name(dst.dtype()));
  int64_t so = a.integer(1), doff = a.integer(4);
  std::vector<int64_t> shape = a.integers(6, cpu::kMaxRank, 0, kMaxSize);
  std::vector<int64_t> ss = a.integers(2, cpu::kMaxRank, 0, kMaxSize);
  std::vector<int64_t> ds = a.integers(5, cpu::kMaxRank, 0, kMaxSize);
  if (ss.size() != shape.size()) a.fail(2, std::to_string(shape.size()) + " strides (one per dim of shape)", std::to_string(ss.size()));
  if (ds.size() != shape.size()) a.fail(5, std::to_string(shape.size()) + " strides (one per dim of shape)", std::to_string(ds.size()));
  int64_t n = checked_numel(shape);
  if (n > kMaxSize) a.fail(6, "at most 2^40 elements", n == INT64_MAX ? "more than 2^63" : std::to_string(n));
  if (!nested_strides(shape, ds))
    a.fail(5, "strides that write each element once (no zero or overlapping strides on dims of size > 1)",
           "overlapping strides");
  a.require_extent(0, src, so, strided_extent(shape, ss));
  a.require_extent(3, dst, doff, strided_extent(shape, ds));
  DV_RUN(a, copy_strided, static_cast<const uint32_t*>(src.data()) + so, static_cast<uint32_t*>(dst.data()) + doff,
         static_cast<int>(shape.size()), shape.data(), ss.data(), ds.data());
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(randomFill) {
  Buffer& out = a.buffer(0);
  int64_t offset = a.integer(1), n = a.integer(2, 0, kMaxSize);
  int dist = a.choice(3, {"normal", "uniform"});
  uint64_t seed = static_cast<uint64_t>(a.integer(4, 0, (int64_t(1) << 53)));
  uint64_t counter = static_cast<uint64_t>(a.integer(5, 0, (int64_t(1) << 53)));
  float p = static_cast<float>(a.number(6)), q = static_cast<float>(a.number(7));
  a.require_extent(0, out, offset, n);
  if (dist == 0) DV_RUN(a, random_normal, out.as<float>() + offset, n, seed, counter, p, q);
  else DV_RUN(a, random_uniform, out.as<float>() + offset, n, seed, counter, p, q);
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(unary) {
  auto op = static_cast<cpu::UnaryOp>(a.choice(0, {DV_UNARY_OP_NAMES}));
  Buffer& x = a.buffer(1);
  Buffer& out = a.buffer(3);
  int64_t xo = a.integer(2), oo = a.integer(4), n = a.integer(5, 0, kMaxSize);
  a.require_extent(1, x, xo, n);
  a.require_extent(3, out, oo, n);
  DV_RUN(a, unary, op, x.as<float>() + xo, out.as<float>() + oo, n, static_cast<float>(a.number(6)),
         static_cast<float>(a.number(7)));
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(unaryGrad) {
  auto op = static_cast<cpu::UnaryOp>(a.choice(0, {DV_UNARY_OP_NAMES}));
  Buffer& x = a.buffer(1);
  Buffer& dy = a.buffer(3);
  Buffer& dx = a.buffer(5);
  int64_t xo = a.integer(2), dyo = a.integer(4), dxo = a.integer(6), n = a.integer(7, 0, kMaxSize);
  a.require_extent(1, x, xo, n);
  a.require_extent(3, dy, dyo, n);
  a.require_extent(5, dx, dxo, n);
  DV_RUN(a, unary_grad, op, x.as<float>() + xo, dy.as<float>() + dyo, dx.as<float>() + dxo, n,
         static_cast<float>(a.number(8)), static_cast<float>(a.number(9)));
  return info.Env().Undefined();
}

// binary: out is contiguous.
DV_KERNEL_IMPL(binary) {
  auto op = static_cast<cpu::BinaryOp>(a.choice(0, {DV_BINARY_OP_NAMES}));
  Buffer& A = a.buffer(1);
  Buffer& B = a.buffer(4);
  Buffer& out = a.buffer(7);
  int64_t ao = a.integer(2), bo = a.integer(5), oo = a.integer(8);
  std::vector<int64_t> shape = a.integers(9, cpu::kMaxRank, 0, kMaxSize);
  std::vector<int64_t> sa = a.integers(3, cpu::kMaxRank, 0, kMaxSize);
  std::vector<int64_t> sb = a.integers(6, cpu::kMaxRank, 0, kMaxSize);
  if (sa.size() != shape.size()) a.fail(3, std::to_string(shape.size()) + " strides", std::to_string(sa.size()));
  if (sb.size() != shape.size()) a.fail(6, std::to_string(shape.size()) + " strides", std::to_string(sb.size()));
  int64_t n = checked_numel(shape);
  if (n > kMaxSize) a.fail(9, "at most 2^40 elements", std::to_string(n));
  a.require_extent(1, A, ao, strided_extent(shape, sa));
  a.require_extent(4, B, bo, strided_extent(shape, sb));
  a.require_extent(7, out, oo, n);
  DV_RUN(a, binary, op, A.as<float>() + ao, B.as<float>() + bo, out.as<float>() + oo, static_cast<int>(shape.size()),
         shape.data(), sa.data(), sb.data());
  return info.Env().Undefined();
}

// axpby: dst = alpha*dst + beta*src
DV_KERNEL_IMPL(axpby) {
  Buffer& dst = a.buffer(0);
  Buffer& src = a.buffer(2);
  int64_t dof = a.integer(1), sof = a.integer(3), n = a.integer(4, 0, kMaxSize);
  a.require_extent(0, dst, dof, n);
  a.require_extent(2, src, sof, n);
  DV_RUN(a, axpby, dst.as<float>() + dof, src.as<float>() + sof, n, static_cast<float>(a.number(5)),
         static_cast<float>(a.number(6)));
  return info.Env().Undefined();
}

}  // namespace dv::addon
