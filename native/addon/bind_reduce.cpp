// Bindings for cpu/reduce.h.
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/reduce.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;
}

DV_KERNEL_IMPL(reduceSum) {
  DV_RUN(a, reduce_sum, a.f32(0), a.f32(2), a.integer(4), a.integer(5), a.integer(6));
  return info.Env().Undefined();
}

// sumSquares: out[outOffset] = the sum of the squares of every element of every tensor, accumulated in
// float64 (the gradient norm of all parameters in one call; NaN/Inf anywhere make it non-finite).
DV_KERNEL_IMPL(sumSquares) {
  std::vector<Buffer*> xs = a.buffers(0);
  std::vector<int64_t> offsets = a.integers(1, 1 << 24, 0, int64_t(1) << 50);
  std::vector<int64_t> counts = a.integers(2, 1 << 24, 0, kMaxSize);
  if (offsets.size() != xs.size()) a.fail(1, std::to_string(xs.size()) + " offsets (one per buffer)", std::to_string(offsets.size()));
  if (counts.size() != xs.size()) a.fail(2, std::to_string(xs.size()) + " counts (one per buffer)", std::to_string(counts.size()));
  for (size_t t = 0; t < xs.size(); ++t) a.require_extent(0, *xs[t], offsets[t], counts[t]);
  float* out = a.f32(3);
  if (DV_ON_CUDA(a)) {
#if DV_CUDA
    // One launch for every tensor; the result stays on the device.
    std::vector<const float*> ptrs(xs.size());
    for (size_t t = 0; t < xs.size(); ++t) ptrs[t] = xs[t]->as<float>() + offsets[t];
    cuda::sum_squares(ptrs, counts, out);
#endif
  } else {
    double total = 0;
    for (size_t t = 0; t < xs.size(); ++t) total += cpu::sum_squares(xs[t]->as<float>() + offsets[t], counts[t]);
    *out = static_cast<float>(total);
  }
  return info.Env().Undefined();
}

}  // namespace dv::addon
