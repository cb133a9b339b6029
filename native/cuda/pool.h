// Pooling and bilinear resizing on the GPU (pool.cu), as cpu/pool.h.
#pragma once
#include "cpu/pool.h"

namespace dv::cuda {
void max_pool2d(const cpu::PoolGeometry& g, const float* x, float* y);
void avg_pool2d(const cpu::PoolGeometry& g, bool count_include_pad, const float* x, float* y);
void resize_bilinear(const cpu::ResizeGeometry& g, const float* x, float* y);
}  // namespace dv::cuda
