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
                             const float* dy, float* dx, float* dweight, float* dbias, int64_t rows, int64_t cols);)

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
}  // namespace dv::cpu
