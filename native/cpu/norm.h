// Normalisation kernels: softmax over one axis and LayerNorm over the last axis, forward and
// backward. Row-parallel on the native pool; every per-row result is computed by one thread in a
// fixed order, and the reductions over rows (LayerNorm's dweight/dbias) combine per-chunk partials
// in chunk order, so results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

DV_ISA_DECLARE(
    // x, y: contiguous (outer, n, inner); y = softmax over the n axis, stabilised by the max.
    // inner == 1 is the usual last-axis case (rows of n contiguous floats).
    void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner);
    // dx = y * (dy - sum_n(dy * y)) over the same (outer, n, inner) layout.
    void softmax_backward(const float* y, const float* dy, float* dx, int64_t outer, int64_t n, int64_t inner);
    // x, y: (rows, cols). y = (x - mean) * rstd [* weight] [+ bias], rstd = 1/sqrt(var + eps),
    // biased variance. weight/bias (cols) may be null (no affine); mean/rstd (rows) may be null
    // (not saved, e.g. without autograd).
    void layer_norm(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                    int64_t rows, int64_t cols, float eps);
    // Gradients from the saved mean/rstd. weight may be null (no affine: treated as ones). dx
    // (rows, cols), dweight (cols) and dbias (cols) may each be null when not needed; dweight and
    // dbias are overwritten (not accumulated).
    void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd,
                             const float* dy, float* dx, float* dweight, float* dbias, int64_t rows, int64_t cols);
    // GroupNorm with a per-(batch item, channel) affine and an optional SiLU, over x, y contiguous
    // (batch, channels, spatial): group g of item b is channels [g * cpg, (g + 1) * cpg), cpg =
    // channels / groups, one contiguous run of cpg * spatial floats; with xh = (x - mean) * rstd
    // over that run (biased variance),
    //   y[b, c, :] = act(xh * scale[b * scale_stride + c] + shift[b * shift_stride + c]),
    // act = SiLU when `silu`, else the identity. scale null = 1, shift null = 0; a stride of 0
    // broadcasts one row (GroupNorm's weight/bias) over the batch. mean/rstd (batch * groups) may
    // be null (not saved).
    void group_norm(const float* x, const float* scale, int64_t scale_stride, const float* shift, int64_t shift_stride,
                    float* y, float* mean, float* rstd, int64_t batch, int64_t channels, int64_t groups,
                    int64_t spatial, float eps, bool silu);
    // Its gradients from the saved mean/rstd, with g = dy * act'(xh * scale + shift):
    //   dshift[b, c] = sum_s g,  dscale[b, c] = sum_s g * xh,
    //   dx = rstd * (g * scale - mean_group(g * scale) - xh * mean_group(g * scale * xh)).
    // dx (batch, channels, spatial), dscale and dshift (batch, channels), contiguous, each null when
    // not wanted (overwritten).
    void group_norm_backward(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                             int64_t shift_stride, const float* mean, const float* rstd, const float* dy, float* dx,
                             float* dscale, float* dshift, int64_t batch, int64_t channels, int64_t groups,
                             int64_t spatial, bool silu);)

namespace dv::cpu {
inline void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner) {
  DV_DISPATCH(softmax, x, y, outer, n, inner);
}
inline void softmax_backward(const float* y, const float* dy, float* dx, int64_t outer, int64_t n, int64_t inner) {
  DV_DISPATCH(softmax_backward, y, dy, dx, outer, n, inner);
}
inline void layer_norm(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                       int64_t rows, int64_t cols, float eps) {
  DV_DISPATCH(layer_norm, x, weight, bias, y, mean, rstd, rows, cols, eps);
}
inline void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd,
                                const float* dy, float* dx, float* dweight, float* dbias, int64_t rows,
                                int64_t cols) {
  DV_DISPATCH(layer_norm_backward, x, weight, mean, rstd, dy, dx, dweight, dbias, rows, cols);
}
inline void group_norm(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                       int64_t shift_stride, float* y, float* mean, float* rstd, int64_t batch, int64_t channels,
                       int64_t groups, int64_t spatial, float eps, bool silu) {
  DV_DISPATCH(group_norm, x, scale, scale_stride, shift, shift_stride, y, mean, rstd, batch, channels, groups, spatial,
              eps, silu);
}
inline void group_norm_backward(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                                int64_t shift_stride, const float* mean, const float* rstd, const float* dy, float* dx,
                                float* dscale, float* dshift, int64_t batch, int64_t channels, int64_t groups,
                                int64_t spatial, bool silu) {
  DV_DISPATCH(group_norm_backward, x, scale, scale_stride, shift, shift_stride, mean, rstd, dy, dx, dscale, dshift,
              batch, channels, groups, spatial, silu);
}
}  // namespace dv::cpu
