// Sliding-window index helper shared by the convolution (im2col) and pooling kernels.
#pragma once
#include <algorithm>
#include <cstdint>

namespace dv::cpu::DV_ISA {
namespace {

// Output positions t in [lo, hi) whose input coordinate t*stride - pad + tap lies in [0, in).
struct Span {
  int64_t lo, hi;
};
inline Span valid_span(int64_t tap, int64_t pad, int64_t stride, int64_t in, int64_t out) {
  int64_t first = pad - tap;  // smallest t*stride that reaches input coordinate 0
  int64_t lo = first > 0 ? (first + stride - 1) / stride : 0;
  int64_t last = in - 1 + pad - tap;  // largest t*stride that stays inside the input
  int64_t hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  lo = std::min(lo, out);
  return {lo, std::max(lo, hi)};
}

}  // namespace
}  // namespace dv::cpu::DV_ISA
