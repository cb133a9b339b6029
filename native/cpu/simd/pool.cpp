// max/avg pooling and bilinear resizing (NCHW), compiled once per ISA level. The pools walk each
// output row's window as (input row, kernel column) taps; for every tap the output columns whose
// input pixel lies inside the image form one contiguous span (computed, not tested per pixel), so
// the inner loop is a plain vector max/add over contiguous memory when the stride is 1 (every
// pool of Inception-v3's mixed blocks) and a strided gather otherwise.
#include <algorithm>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/pool.h"
#include "cpu/simd/simd.h"
#include "cpu/simd/window.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr int64_t kGrainElems = 16384;  // input reads per parallel_for chunk, at least
constexpr float kNegInf = -std::numeric_limits<float>::infinity();


// max(a, b) that returns NaN when either is NaN (PyTorch's max pooling propagates NaN; the
// hardware max returns its second operand when one is NaN, so a NaN input a is put back).
inline float max_nan(float a, float b) { return (a > b || a != a) ? a : b; }
#if defined(DV_ISA_AVX512)
inline VF max_nan(VF a, VF b) {
  return _mm512_mask_mov_ps(_mm512_max_ps(a.v, b.v), _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q), a.v);
}
#elif defined(DV_ISA_AVX2)
inline VF max_nan(VF a, VF b) {
  return _mm256_blendv_ps(_mm256_max_ps(a.v, b.v), a.v, _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q));
}
#else
inline VF max_nan(VF a, VF b) { return max_nan(a.v, b.v); }
#endif

struct MaxOp {
  VF operator()(VF in, VF acc) const { return max_nan(in, acc); }
  float operator()(float in, float acc) const { return max_nan(in, acc); }
};
struct SumOp {
  VF operator()(VF in, VF acc) const { return acc + in; }
  float operator()(float in, float acc) const { return acc + in; }
};

// out[s.lo + k] = op(in_row[first + k*stride], out[s.lo + k]) over span s, where `first` is the
// input column that output column s.lo reads.
template <class Op>
inline void accumulate_tap(const float* in_row, float* out, Span s, int64_t first, int64_t stride, Op op) {
  const int64_t n = s.hi - s.lo;
  const float* src = in_row + first;
  float* dst = out + s.lo;
  if (stride == 1) {
    int64_t k = 0;
    for (; k + VF::W <= n; k += VF::W) op(VF::load(src + k), VF::load(dst + k)).store(dst + k);
    if (k < n) {
      const int r = int(n - k);
      op(VF::load_partial(src + k, r), VF::load_partial(dst + k, r)).store_partial(dst + k, r);
    }
  } else {
    for (int64_t k = 0; k < n; ++k) dst[k] = op(src[k * stride], dst[k]);
  }
}

// Runs every output row (plane, oh) through: fill with `init`, combine every tap of its window
// (input rows in order, kernel columns in order within a row), then finish(out_row, oh, window).
struct RowWindow {
  int64_t h_start, h_end;  // window rows, clipped to the padded input [-pad_h, height + pad_h)
  int64_t h_lo, h_hi;      // window rows inside the input
};
template <class Op, class Finish>
void pool_rows(const PoolGeometry& g, const float* x, float* y, float init, Op op, Finish finish) {
  const int64_t rows = g.planes * g.out_h, plane = g.height * g.width;
  // Only kernel columns that some window places inside the image contribute: j in [j_lo, j_hi).
  // (A huge kernel over a small padded image then costs its overlap, not its size.)
  const int64_t j_lo = std::max<int64_t>(0, g.pad_w - (g.out_w - 1) * g.stride_w);
  const int64_t j_hi = std::min(g.kernel_w, g.width + g.pad_w);
  std::vector<Span> spans(std::max<int64_t>(0, j_hi - j_lo));
  for (int64_t j = j_lo; j < j_hi; ++j) spans[j - j_lo] = valid_span(j, g.pad_w, g.stride_w, g.width, g.out_w);
  const Span* span = spans.data();  // raw pointers in the hot loops: no reloads through the vector
  const double work = double(g.out_w) * double(std::min(g.kernel_h, g.height)) * double(spans.size() + 1);
  const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(kGrainElems / work));
  parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t p = r / g.out_h, oh = r % g.out_h;
      const float* src = x + p * plane;
      float* out = y + r * g.out_w;
      RowWindow w;
      w.h_start = oh * g.stride_h - g.pad_h;
      w.h_end = std::min(w.h_start + g.kernel_h, g.height + g.pad_h);
      w.h_lo = std::max<int64_t>(w.h_start, 0);
      w.h_hi = std::min(w.h_end, g.height);
      std::fill(out, out + g.out_w, init);
      for (int64_t ih = w.h_lo; ih < w.h_hi; ++ih) {
        for (int64_t j = j_lo; j < j_hi; ++j) {
          const Span s = span[j - j_lo];
          if (s.hi == s.lo) continue;
          accumulate_tap(src + ih * g.width, out, s, s.lo * g.stride_w - g.pad_w + j, g.stride_w, op);
        }
      }
      finish(out, w);
    }
  });
}

}  // namespace

void max_pool2d(const PoolGeometry& g, const float* x, float* y) {
  pool_rows(g, x, y, kNegInf, MaxOp{}, [](float*, const RowWindow&) {});
}

void avg_pool2d(const PoolGeometry& g, bool count_include_pad, const float* x, float* y) {
  // Per output column: the window's width clipped to the padded input (count_include_pad) or to
  // the input itself. The divisor of (oh, ow) is the row count times this, as PyTorch computes it.
  std::vector<int64_t> cols(g.out_w);
  for (int64_t ow = 0; ow < g.out_w; ++ow) {
    const int64_t start = ow * g.stride_w - g.pad_w, end = std::min(start + g.kernel_w, g.width + g.pad_w);
    cols[ow] = count_include_pad ? end - start : std::min(end, g.width) - std::max<int64_t>(start, 0);
  }
  const int64_t* col = cols.data();
  pool_rows(g, x, y, 0.0f, SumOp{}, [&](float* out, const RowWindow& w) {
    const int64_t rows = count_include_pad ? w.h_end - w.h_start : w.h_hi - w.h_lo;
    for (int64_t ow = 0; ow < g.out_w; ++ow) out[ow] /= static_cast<float>(rows * col[ow]);
  });
}

void resize_bilinear(const ResizeGeometry& g, const float* x, float* y) {
  // Source index and weights per output coordinate of one axis, as PyTorch's
  // compute_indices_weights_linear: float32 arithmetic, scale = in/out (or (in-1)/(out-1)).
  struct Axis {
    std::vector<int64_t> i0, i1;
    std::vector<float> w0, w1;
  };
  auto axis = [&](int64_t in, int64_t out) {
    Axis a{std::vector<int64_t>(out), std::vector<int64_t>(out), std::vector<float>(out), std::vector<float>(out)};
    const float scale = g.align_corners ? (out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f)
                                        : static_cast<float>(in) / static_cast<float>(out);
    for (int64_t o = 0; o < out; ++o) {
      // The float32 product is formed exactly in double and rounded once, so no level contracts
      // it with the subtraction into an fma: every ISA level gets the same indices and weights.
      const double pos = g.align_corners ? double(o) : double(o) + 0.5;
      float src = static_cast<float>(double(scale) * pos);
      if (!g.align_corners) src = std::max(src - 0.5f, 0.0f);
      const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
      const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
      a.i0[o] = i0;
      a.i1[o] = i0 < in - 1 ? i0 + 1 : i0;
      a.w0[o] = 1.0f - l1;
      a.w1[o] = l1;
    }
    return a;
  };
  const Axis h = axis(g.in_h, g.out_h), w = axis(g.in_w, g.out_w);
  const int64_t rows = g.planes * g.out_h, plane = g.in_h * g.in_w;
  parallel_for(rows, std::max<int64_t>(1, kGrainElems / (4 * g.out_w)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t p = r / g.out_h, oh = r % g.out_h;
      const float* top = x + p * plane + h.i0[oh] * g.in_w;
      const float* bottom = x + p * plane + h.i1[oh] * g.in_w;
      const float hw0 = h.w0[oh], hw1 = h.w1[oh];
      float* out = y + r * g.out_w;
      const int64_t *i0 = w.i0.data(), *i1 = w.i1.data();
      const float *w0 = w.w0.data(), *w1 = w.w1.data();
      // Interpolate along the width in each source row, then between the rows (PyTorch's order).
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const int64_t c0 = i0[ow], c1 = i1[ow];
        const float t0 = top[c0] * w0[ow] + top[c1] * w1[ow];
        const float t1 = bottom[c0] * w0[ow] + bottom[c1] * w1[ow];
        out[ow] = t0 * hw0 + t1 * hw1;
      }
    }
  });
}

}  // namespace dv::cpu::DV_ISA
