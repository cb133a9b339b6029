// Bindings for cpu/elementwise.h. Offsets, strides and sizes are in elements.
#include <algorithm>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "addon/tensor_lists.h"
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
  const int64_t n = a.integer(2);
  if (a.any_buffer(0).dtype() == DType::f32) {
    DV_RUN(a, fill, a.f32(0), n, static_cast<float>(a.number(3, true)));
  } else {
    DV_RUN(a, fill_i32, a.data<int32_t>(0), n, static_cast<int32_t>(a.integer(3, -2147483648LL, 2147483647LL)));
  }
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(copyStrided) {
  Buffer& src = a.any_buffer(0);
  Buffer& dst = a.any_buffer(3);
  if (src.dtype() != dst.dtype()) a.fail(3, std::string("dtype ") + dtype_name(src.dtype()), dtype_name(dst.dtype()));
  // Both dtypes are 4 bytes: the copy moves 32-bit words. (Reading them checks the extents, and so
  // that each strides array has one entry per dim of shape, before nested_strides reads them.)
  const uint32_t* from = a.data<const uint32_t>(0);
  uint32_t* to = a.data<uint32_t>(3);
  const std::vector<int64_t>& shape = a.dims(6);
  const std::vector<int64_t>& ss = a.dims(2);
  const std::vector<int64_t>& ds = a.dims(5);
  int64_t n = checked_numel(shape);
  if (n > kMaxSize) a.fail(6, "at most 2^40 elements", n == INT64_MAX ? "more than 2^63" : std::to_string(n));
  if (!nested_strides(shape, ds))
    a.fail(5, "strides that write each element once (no zero or overlapping strides on dims of size > 1)",
           "overlapping strides");
  DV_RUN(a, copy_strided, from, to, static_cast<int>(shape.size()), shape.data(), ss.data(), ds.data());
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(randomFill) {
  const int64_t n = a.integer(2);
  const int dist = a.choice(3, {"normal", "uniform"});
  const uint64_t seed = static_cast<uint64_t>(a.integer(4, 0, (int64_t(1) << 53)));
  const uint64_t counter = static_cast<uint64_t>(a.integer(5, 0, (int64_t(1) << 53)));
  const float p = static_cast<float>(a.number(6)), q = static_cast<float>(a.number(7));
  if (dist == 0) DV_RUN(a, random_normal, a.f32(0), n, seed, counter, p, q);
  else DV_RUN(a, random_uniform, a.f32(0), n, seed, counter, p, q);
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(unary) {
  auto op = static_cast<cpu::UnaryOp>(a.choice(0, {DV_UNARY_OP_NAMES}));
  DV_RUN(a, unary, op, a.f32(1), a.f32(3), a.integer(5), static_cast<float>(a.number(6)),
         static_cast<float>(a.number(7)));
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(unaryGrad) {
  auto op = static_cast<cpu::UnaryOp>(a.choice(0, {DV_UNARY_OP_NAMES}));
  DV_RUN(a, unary_grad, op, a.f32(1), a.f32(3), a.f32(5), a.integer(7), static_cast<float>(a.number(8)),
         static_cast<float>(a.number(9)));
  return info.Env().Undefined();
}

// binary: out is contiguous.
DV_KERNEL_IMPL(binary) {
  auto op = static_cast<cpu::BinaryOp>(a.choice(0, {DV_BINARY_OP_NAMES}));
  const std::vector<int64_t>& shape = a.dims(9);
  const std::vector<int64_t>& sa = a.dims(3);
  const std::vector<int64_t>& sb = a.dims(6);
  int64_t n = checked_numel(shape);
  if (n > kMaxSize) a.fail(9, "at most 2^40 elements", std::to_string(n));
  DV_RUN(a, binary, op, a.f32(1), a.f32(4), a.f32(7), static_cast<int>(shape.size()), shape.data(), sa.data(),
         sb.data());
  return info.Env().Undefined();
}

// axpby: dst = alpha*dst + beta*src
DV_KERNEL_IMPL(axpby) {
  DV_RUN(a, axpby, a.f32(0), a.f32(2), a.integer(4), static_cast<float>(a.number(5)), static_cast<float>(a.number(6)));
  return info.Env().Undefined();
}

// axpbyMany: axpby on every pair of the lists (the EMA of all parameters), one pass on the CPU
DV_KERNEL_IMPL(axpbyMany) {
  TensorList dsts{0, true, {}}, srcs{2, false, {}};
  const std::vector<int64_t> counts = read_tensor_lists(a, {&dsts, &srcs}, 4);
  const float alpha = static_cast<float>(a.number(5)), beta = static_cast<float>(a.number(6));
  std::vector<cpu::AxpbyTensor> tensors(counts.size());
  for (size_t t = 0; t < counts.size(); ++t) tensors[t] = {dsts.data[t], srcs.data[t], counts[t]};
  DV_RUN(a, axpby_many, tensors.data(), static_cast<int64_t>(tensors.size()), alpha, beta);
  return info.Env().Undefined();
}

}  // namespace dv::addon
