// im2col / col2im for 2-D convolution (NCHW). A convolution is then one batched GEMM per group of
// images: out[n] (Cout, OH*OW) = weight (Cout, Cin*kh*kw) x cols[n] (Cin*kh*kw, OH*OW).
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dv::cpu {
// Geometry of one conv2d: input (batch, channels, height, width), kernel (kernel_h, kernel_w),
// stride and zero padding per axis; out_h/out_w follow PyTorch: (H + 2 pad - k) / stride + 1.
struct ConvGeometry {
  int64_t batch, channels, height, width;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t out_h, out_w;
};
}  // namespace dv::cpu

DV_ISA_DECLARE(
    // cols (batch, channels*kernel_h*kernel_w, out_h*out_w): row (c, i, j), column (oh, ow) holds
    // x[n, c, oh*stride_h - pad_h + i, ow*stride_w - pad_w + j], 0 where that falls in the padding.
    void im2col(const dv::cpu::ConvGeometry& g, const float* x, float* cols);
    // x (batch, channels, height, width) = the adjoint of im2col: every cols entry is added to the
    // input pixel it was read from (padding entries are dropped). x is overwritten, not accumulated.
    void col2im(const dv::cpu::ConvGeometry& g, const float* cols, float* x);)

namespace dv::cpu {
inline void im2col(const ConvGeometry& g, const float* x, float* cols) { DV_DISPATCH(im2col, g, x, cols); }
inline void col2im(const ConvGeometry& g, const float* cols, float* x) { DV_DISPATCH(col2im, g, cols, x); }
}  // namespace dv::cpu
