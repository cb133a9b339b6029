// Fused transformer-block kernels on the GPU (as cpu/fused.h): each replaces a chain of elementwise
// ops by one pass over the (batch, tokens, cols) activation.
//
//   layer_norm_modulate(_backward)  cuda/rows.cuh's LayerNorm with the output transform
//                                   h (1 + scale[b]) + shift[b] and, backward, the gradient factor
//                                   1 + scale[b]; dshift/dscale are its per-group column sums (a
//                                   group = one batch item's tokens), kept as partials over fixed
//                                   chunks of tokens and added in a fixed order.
//   add_gated                       out = x + gate[b] y: flat, float4 when every row and the gate
//                                   rows are 16-byte aligned.
//   add_gated_backward              dy = gate[b] dout, and dgate[b] = sum_n y dout as column sums
//                                   over fixed token runs (rows.cuh column_runs), dy written in the
//                                   same pass.
//   gelu_backward_bias              dh = dout gelu'(h) and dbias = sum_rows dh, the same way.
//
// The GELU derivative is cpu/simd/activation.h's formula (exp of the clamped argument), so large
// |h| gives 0/1 slopes instead of inf*0. Every reduction has a fixed order (no atomics).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/common.cuh"
#include "cuda/fused.h"
#include "cuda/rows.cuh"

namespace dv::cuda {
namespace {

// ============================ LayerNorm + modulation ============================

// y = h (1 + scale[b]) + shift[b], b = row / tokens.
struct Modulate {
  const float* shift;
  int64_t shift_stride;
  const float* scale;
  int64_t scale_stride;
  int64_t tokens;
  struct Row {
    const float* sh;
    const float* sc;
    __device__ __forceinline__ float operator()(float h, int64_t c) const { return fmaf(h, 1.0f + sc[c], sh[c]); }
  };
  __device__ __forceinline__ Row bind(int64_t row) const {
    const int64_t b = row / tokens;
    return {shift + b * shift_stride, scale + b * scale_stride};
  }
};

// The backward's gradient factor 1 + scale[group].
struct OnePlusScale {
  const float* scale;
  int64_t scale_stride;
  static constexpr bool kHas = true;
  struct Col {
    const float* sc;
    __device__ __forceinline__ float operator()(int64_t c) const { return 1.0f + sc[c]; }
  };
  __device__ __forceinline__ Col bind(int64_t group) const { return {scale + group * scale_stride}; }
};

// ================================ gated residual ================================

constexpr int kThreads = 256;

// Flat over (rows, cols) in units of W floats (W = 4: every row start and gate row 16-byte aligned
// and cols % 4 == 0, so a vector never straddles rows).
template <int W>
__global__ void __launch_bounds__(kThreads) add_gated_kernel(const float* x, const float* gate, int64_t gate_stride,
                                                             const float* y, float* out, int64_t tokens, int64_t cols,
                                                             int64_t numel) {
  const int64_t vec_cols = cols / W, total = numel / W;
  for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < total; v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = v / vec_cols, c = (v - r * vec_cols) * W;
    const float* gt = gate + (r / tokens) * gate_stride + c;
    const int64_t i = r * cols + c;
    if constexpr (W == 4) {
      const float4 g = *reinterpret_cast<const float4*>(gt);
      const float4 a = *reinterpret_cast<const float4*>(x + i);
      const float4 b = *reinterpret_cast<const float4*>(y + i);
      *reinterpret_cast<float4*>(out + i) = make_float4(fmaf(g.x, b.x, a.x), fmaf(g.y, b.y, a.y), fmaf(g.z, b.z, a.z),
                                                        fmaf(g.w, b.w, a.w));
    } else {
      out[i] = fmaf(gt[0], y[i], x[i]);
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

unsigned flat_blocks(int64_t work) { return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, kThreads), int64_t(1) << 20))); }

// dy = gate[b] dout (when wanted); returns acc + y dout (the dgate partial).
struct GatedBackward {
  const float* gate;
  int64_t gate_stride;
  const float* y;
  const float* dout;
  float* dy;
  int64_t cols;
  __device__ __forceinline__ float operator()(int64_t group, int64_t r, int64_t c, float acc) const {
    const int64_t i = r * cols + c;
    const float g = dout[i];
    if (dy) dy[i] = gate[group * gate_stride + c] * g;
    return fmaf(y[i], g, acc);
  }
};

// ============================ GELU backward + bias sum ============================

constexpr float kSqrt2OverPi = 0.7978845608028654f, kGeluCubic = 0.044715f;
constexpr float kGeluLinear = -2.0f * kSqrt2OverPi, kGeluCube = -2.0f * kSqrt2OverPi * kGeluCubic;
constexpr float kExpLo = -87.3365447504019f, kExpHi = 88.3762626647949f;

// d gelu_tanh / dx = s (1 + e s x 2u'(x)), e = exp(-2u) (argument clamped as the CPU's
// vexp_clamped), s = 1 / (1 + e): cpu/simd/activation.h's vgelu_grad.
__device__ __forceinline__ float gelu_grad(float x) {
  const float x2 = x * x;
  const float z = x * fmaf(kGeluCube, x2, kGeluLinear);
  const float e = expf(fminf(fmaxf(z, kExpLo), kExpHi));
  const float s = __frcp_rn(1.0f + e);  // = 1 / (1 + e), without the division's slow-path call
  const float two_du = fmaf(6.0f * kSqrt2OverPi * kGeluCubic, x2, 2.0f * kSqrt2OverPi);
  return s * fmaf(e * s, x * two_du, 1.0f);
}

struct GeluBackward {
  const float* h;
  const float* dout;
  float* dh;
  int64_t cols;
  __device__ __forceinline__ float operator()(int64_t, int64_t r, int64_t c, float acc) const {
    const int64_t i = r * cols + c;
    const float d = dout[i] * gelu_grad(h[i]);
    dh[i] = d;
    return acc + d;
  }
};

}  // namespace

void layer_norm_modulate(const float* x, const float* shift, int64_t shift_stride, const float* scale,
                         int64_t scale_stride, float* y, float* mean, float* rstd, int64_t batch, int64_t tokens,
                         int64_t cols, float eps) {
  if (batch <= 0 || tokens <= 0) return;
  rowops::ln_forward("layerNormModulate", x, y, mean, rstd, batch * tokens, cols, eps,
                     Modulate{shift, shift_stride, scale, scale_stride, tokens});
}

void layer_norm_modulate_backward(const float* x, const float* scale, int64_t scale_stride, const float* mean,
                                  const float* rstd, const float* dy, float* dx, float* dshift, float* dscale,
                                  int64_t batch, int64_t tokens, int64_t cols) {
  // Groups = batch items: sum_dy is dshift, sum_dyxh is dscale.
  rowops::ln_backward("layerNormModulateBackward", x, mean, rstd, dy, dx, dshift, dscale, batch, tokens, cols,
                      OnePlusScale{scale, scale_stride});
}

void add_gated(const float* x, const float* gate, int64_t gate_stride, const float* y, float* out, int64_t batch,
               int64_t tokens, int64_t cols) {
  const int64_t numel = batch * tokens * cols;
  if (numel <= 0) return;
  const bool vec = cols % 4 == 0 && gate_stride % 4 == 0 && aligned16(x) && aligned16(gate) && aligned16(y) &&
                   aligned16(out);
  if (vec) {
    launch("addGated", add_gated_kernel<4>, dim3(flat_blocks(numel / 4)), dim3(kThreads), 0, x, gate, gate_stride, y,
           out, tokens, cols, numel);
  } else {
    launch("addGated", add_gated_kernel<1>, dim3(flat_blocks(numel)), dim3(kThreads), 0, x, gate, gate_stride, y, out,
           tokens, cols, numel);
  }
}

void add_gated_backward(const float* gate, int64_t gate_stride, const float* y, const float* dout, float* dy,
                        float* dgate, int64_t batch, int64_t tokens, int64_t cols) {
  if (!dy && !dgate) return;
  rowops::column_runs("addGatedBackward", GatedBackward{gate, gate_stride, y, dout, dy, cols}, batch, tokens, cols,
                      dgate);
}

void gelu_backward_bias(const float* h, const float* dout, float* dh, float* dbias, int64_t rows, int64_t cols) {
  rowops::column_runs("geluBackwardBias", GeluBackward{h, dout, dh, cols}, 1, rows, cols, dbias);
}

}  // namespace dv::cuda
