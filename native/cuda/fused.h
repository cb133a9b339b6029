// The fused transformer-block kernels on the GPU (fused.cu), as cpu/fused.h.
#pragma once
#include "cpu/fused.h"

namespace dv::cuda {
void layer_norm_modulate(const float* x, const float* shift, int64_t shift_stride, const float* scale,
                         int64_t scale_stride, float* y, float* mean, float* rstd, int64_t batch, int64_t tokens,
                         int64_t cols, float eps);
void layer_norm_modulate_backward(const float* x, const float* scale, int64_t scale_stride, const float* mean,
                                  const float* rstd, const float* dy, float* dx, float* dshift, float* dscale,
                                  int64_t batch, int64_t tokens, int64_t cols);
void add_gated(const float* x, const float* gate, int64_t gate_stride, const float* y, float* out, int64_t batch,
               int64_t tokens, int64_t cols);
void add_gated_backward(const float* gate, int64_t gate_stride, const float* y, const float* dout, float* dy,
                        float* dgate, int64_t batch, int64_t tokens, int64_t cols);
void gelu_backward_bias(const float* h, const float* dout, float* dh, float* dbias, int64_t rows, int64_t cols);
}  // namespace dv::cuda
