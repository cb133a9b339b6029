// im2col / col2im on the GPU (conv.cu), as cpu/conv.h.
#pragma once
#include "cpu/conv.h"

namespace dv::cuda {
void im2col(const cpu::ConvGeometry& g, const float* x, float* cols);
void col2im(const cpu::ConvGeometry& g, const float* cols, float* x);
}  // namespace dv::cuda
