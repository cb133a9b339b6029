// Softmax, LayerNorm and GroupNorm on the GPU (norm.cu), as cpu/norm.h.
#pragma once
#include "cpu/norm.h"

namespace dv::cuda {
void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner);
void softmax_backward(const float* y, const float* dy, float* dx, int64_t outer, int64_t n, int64_t inner);
void layer_norm(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps);
void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dweight, float* dbias, int64_t rows, int64_t cols);
void group_norm(const float* x, const float* scale, int64_t scale_stride, const float* shift, int64_t shift_stride,
                float* y, float* mean, float* rstd, int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                float eps, bool silu);
void group_norm_backward(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                         int64_t shift_stride, const float* mean, const float* rstd, const float* dy, float* dx,
                         float* dscale, float* dshift, int64_t batch, int64_t channels, int64_t groups,
                         int64_t spatial, bool silu);
}  // namespace dv::cuda
