// im2col / col2im (NCHW), compiled once per ISA level. Both walk each kernel tap (i, j) over the
// output rows and split every row into [zero padding | valid span | zero padding], so the inner
// loops carry no bounds checks: the valid span is a memcpy (stride 1) or a strided gather.
#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "cpu/conv.h"
#include "cpu/simd/simd.h"
#include "cpu/simd/window.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr int64_t kGrainElems = 16384;  // elements of work per parallel_for chunk, at least


// dst[k] += src[k], k < n
inline void add_row(float* dst, const float* src, int64_t n) {
  int64_t k = 0;
  for (; k + VF::W <= n; k += VF::W) (VF::load(dst + k) + VF::load(src + k)).store(dst + k);
  for (; k < n; ++k) dst[k] += src[k];
}

}  // namespace

void im2col(const ConvGeometry& g, const float* x, float* cols) {
  const int64_t taps = g.kernel_h * g.kernel_w, L = g.out_h * g.out_w, plane = g.height * g.width;
  const int64_t rows = g.batch * g.channels * taps;
  // One cols row per (n, c, i, j): chunks of rows, each row written in full.
  parallel_for(rows, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, L)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t nc = r / taps, tap = r % taps, i = tap / g.kernel_w, j = tap % g.kernel_w;
      const float* src = x + nc * plane;
      float* dst = cols + r * L;
      const Span oh = valid_span(i, g.pad_h, g.stride_h, g.height, g.out_h);
      const Span ow = valid_span(j, g.pad_w, g.stride_w, g.width, g.out_w);
      std::fill(dst, dst + oh.lo * g.out_w, 0.0f);
      for (int64_t y = oh.lo; y < oh.hi; ++y) {
        float* out_row = dst + y * g.out_w;
        std::fill(out_row, out_row + ow.lo, 0.0f);
        std::fill(out_row + ow.hi, out_row + g.out_w, 0.0f);
        const int64_t n = ow.hi - ow.lo;
        if (n == 0) continue;
        // the input pixel read by output column ow.lo
        const float* in_row = src + (y * g.stride_h - g.pad_h + i) * g.width + ow.lo * g.stride_w - g.pad_w + j;
        if (g.stride_w == 1) {
          std::memcpy(out_row + ow.lo, in_row, sizeof(float) * n);
        } else {
          for (int64_t t = 0; t < n; ++t) out_row[ow.lo + t] = in_row[t * g.stride_w];
        }
      }
      std::fill(dst + oh.hi * g.out_w, dst + L, 0.0f);
    }
  });
}

void col2im(const ConvGeometry& g, const float* cols, float* x) {
  const int64_t taps = g.kernel_h * g.kernel_w, L = g.out_h * g.out_w, plane = g.height * g.width;
  const int64_t planes = g.batch * g.channels;
  // One input plane per task: the plane owns every pixel it accumulates into, so no two threads
  // write the same memory and each pixel sums its contributions in the fixed (i, j, oh, ow) order.
  parallel_for(planes, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, taps * L)), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dst = x + p * plane;
      std::fill(dst, dst + plane, 0.0f);
      for (int64_t tap = 0; tap < taps; ++tap) {
        const int64_t i = tap / g.kernel_w, j = tap % g.kernel_w;
        const float* src = cols + (p * taps + tap) * L;
        const Span oh = valid_span(i, g.pad_h, g.stride_h, g.height, g.out_h);
        const Span ow = valid_span(j, g.pad_w, g.stride_w, g.width, g.out_w);
        const int64_t n = ow.hi - ow.lo;
        if (n == 0) continue;
        for (int64_t y = oh.lo; y < oh.hi; ++y) {
          const float* col_row = src + y * g.out_w + ow.lo;
          float* in_row = dst + (y * g.stride_h - g.pad_h + i) * g.width + ow.lo * g.stride_w - g.pad_w + j;
          if (g.stride_w == 1) {
            add_row(in_row, col_row, n);
          } else {
            for (int64_t t = 0; t < n; ++t) in_row[t * g.stride_w] += col_row[t];
          }
        }
      }
    }
  });
}

}  // namespace dv::cpu::DV_ISA
