// Spatial pooling and bilinear resizing of NCHW images, forward only (inference: the Inception-v3
// feature extractor of FID). Every (n, c) plane is independent, so the kernels see `planes`
// contiguous images and split their output rows over the native pool; each output value is
// computed by one thread in a fixed order, so results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dv::cpu {
// One pooling: `planes` images of height×width, a kernel_h×kernel_w window moved by
// stride_h/stride_w over the input padded by pad_h/pad_w on each side. out_h/out_w are set by
// the caller (PyTorch's rule, floor or ceil mode); every window must overlap the input, which
// PyTorch's constraints (pad <= kernel/2, the last window starting inside the input or the left
// padding) guarantee.
struct PoolGeometry {
  int64_t planes, height, width;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t out_h, out_w;
};

// Bilinear resize of `planes` images from in_h×in_w to out_h×out_w (PyTorch's
// F.interpolate(mode='bilinear') given a size, without antialiasing).
struct ResizeGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
  bool align_corners;
};
}  // namespace dv::cpu

DV_ISA_DECLARE(
    // y (planes, out_h, out_w) = the maximum of x (planes, height, width) over each window; the
    // padding never wins (it is -inf), and a NaN anywhere in a window gives NaN (as PyTorch).
    void max_pool2d(const dv::cpu::PoolGeometry& g, const float* x, float* y);
    // y = the mean of each window. count_include_pad: divide by the window's size clipped to the
    // padded input (PyTorch's default); otherwise by the number of input pixels it covers.
    void avg_pool2d(const dv::cpu::PoolGeometry& g, bool count_include_pad, const float* x, float* y);
    // y (planes, out_h, out_w) = x (planes, in_h, in_w) resized bilinearly. Source coordinates
    // follow PyTorch: align_corners ? dst·(in-1)/(out-1) : max((dst+0.5)·in/out - 0.5, 0), with the
    // scale computed in float32 as PyTorch does for float tensors.
    void resize_bilinear(const dv::cpu::ResizeGeometry& g, const float* x, float* y);)

namespace dv::cpu {
inline void max_pool2d(const PoolGeometry& g, const float* x, float* y) { DV_DISPATCH(max_pool2d, g, x, y); }
inline void avg_pool2d(const PoolGeometry& g, bool count_include_pad, const float* x, float* y) {
  DV_DISPATCH(avg_pool2d, g, count_include_pad, x, y);
}
inline void resize_bilinear(const ResizeGeometry& g, const float* x, float* y) { DV_DISPATCH(resize_bilinear, g, x, y); }
}  // namespace dv::cpu
