// Fused kernels of the transformer block: each replaces a chain of elementwise ops (a memory pass
// and a temporary each) by one pass. Layouts: x, y, dx ... are contiguous (batch, tokens, cols);
// the per-batch-item modulation vectors (shift, scale, gate: one row of `cols` floats per batch
// item, broadcast over the tokens) are read at `row stride` elements apart, so the column slices
// of adaLN's (B, 6D) output are used in place.
//
// Determinism: every per-row result is computed by one thread in a fixed order; sums over tokens
// (dshift, dscale, dgate) and over rows (dbias) keep one partial per fixed-size run of rows and add
// them in order, so results are bit-identical for any thread count.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

DV_ISA_DECLARE(
    // adaLN's modulated LayerNorm (no affine):
    //   y[b, n, :] = (x[b, n, :] - mean) * rstd * (1 + scale[b]) + shift[b],
    // rstd = 1/sqrt(biased var + eps). mean/rstd (batch * tokens) receive the row statistics when
    // not null (for the backward).
    void layer_norm_modulate(const float* x, const float* shift, int64_t shift_stride, const float* scale,
                             int64_t scale_stride, float* y, float* mean, float* rstd, int64_t batch, int64_t tokens,
                             int64_t cols, float eps);
    // Its gradients from the saved mean/rstd, with xh = (x - mean) * rstd:
    //   dshift[b] = sum_n dy,  dscale[b] = sum_n dy * xh,
    //   dx = rstd * (g - mean(g) - xh * mean(g * xh)),  g = dy * (1 + scale[b]).
    // dx (batch, tokens, cols), dshift and dscale (batch, cols), contiguous, each null when not
    // wanted; dshift/dscale are overwritten.
    void layer_norm_modulate_backward(const float* x, const float* scale, int64_t scale_stride, const float* mean,
                                      const float* rstd, const float* dy, float* dx, float* dshift, float* dscale,
                                      int64_t batch, int64_t tokens, int64_t cols);
    // Gated residual: out[b, n, :] = x[b, n, :] + gate[b] * y[b, n, :].
    void add_gated(const float* x, const float* gate, int64_t gate_stride, const float* y, float* out, int64_t batch,
                   int64_t tokens, int64_t cols);
    // Its gradients w.r.t. y and gate (dx is dout itself): dy = gate[b] * dout,
    // dgate[b] = sum_n y * dout. dy (batch, tokens, cols) and dgate (batch, cols) may each be null.
    void add_gated_backward(const float* gate, int64_t gate_stride, const float* y, const float* dout, float* dy,
                            float* dgate, int64_t batch, int64_t tokens, int64_t cols);
    // Backward of h -> gelu_tanh(h) followed by the bias gradient of the Linear that made h:
    // dh = dout * gelu'(h) over (rows, cols), dbias (cols) = sum_rows dh (null: not wanted).
    void gelu_backward_bias(const float* h, const float* dout, float* dh, float* dbias, int64_t rows, int64_t cols);)

namespace dv::cpu {
inline void layer_norm_modulate(const float* x, const float* shift, int64_t shift_stride, const float* scale,
                                int64_t scale_stride, float* y, float* mean, float* rstd, int64_t batch,
                                int64_t tokens, int64_t cols, float eps) {
  DV_DISPATCH(layer_norm_modulate, x, shift, shift_stride, scale, scale_stride, y, mean, rstd, batch, tokens, cols,
              eps);
}
inline void layer_norm_modulate_backward(const float* x, const float* scale, int64_t scale_stride, const float* mean,
                                         const float* rstd, const float* dy, float* dx, float* dshift, float* dscale,
                                         int64_t batch, int64_t tokens, int64_t cols) {
  DV_DISPATCH(layer_norm_modulate_backward, x, scale, scale_stride, mean, rstd, dy, dx, dshift, dscale, batch, tokens,
              cols);
}
inline void add_gated(const float* x, const float* gate, int64_t gate_stride, const float* y, float* out,
                      int64_t batch, int64_t tokens, int64_t cols) {
  DV_DISPATCH(add_gated, x, gate, gate_stride, y, out, batch, tokens, cols);
}
inline void add_gated_backward(const float* gate, int64_t gate_stride, const float* y, const float* dout, float* dy,
                               float* dgate, int64_t batch, int64_t tokens, int64_t cols) {
  DV_DISPATCH(add_gated_backward, gate, gate_stride, y, dout, dy, dgate, batch, tokens, cols);
}
inline void gelu_backward_bias(const float* h, const float* dout, float* dh, float* dbias, int64_t rows,
                               int64_t cols) {
  DV_DISPATCH(gelu_backward_bias, h, dout, dh, dbias, rows, cols);
}
}  // namespace dv::cpu
