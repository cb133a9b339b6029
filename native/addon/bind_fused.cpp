// Bindings for cpu/fused.h and for the GEMM with a bias/activation epilogue (cpu/gemm.h).
// Offsets, strides and sizes are in elements; every buffer is float32.
#include <cmath>
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "addon/precision.h"
#include "cpu/fused.h"
#include "cpu/gemm.h"

namespace dv::addon {

// x, y: (batch, tokens, cols); shift, scale: batch rows of cols, `stride` apart; mean, rstd:
// (batch * tokens) or null.
DV_KERNEL_IMPL(layerNormModulate) {
  const int64_t shift_stride = a.integer(4), scale_stride = a.integer(7);
  const int64_t batch = a.integer(14), tokens = a.integer(15), cols = a.integer(16);
  const float eps = a.positive_float32(17);
  if (checked_numel({batch, tokens}) == 0) return info.Env().Undefined();
  DV_RUN(a, layer_norm_modulate, a.f32(0), a.f32(2), shift_stride, a.f32(5), scale_stride, a.f32(8), a.f32(10),
         a.f32(12), batch, tokens, cols, eps);
  return info.Env().Undefined();
}

// dx (batch, tokens, cols), dshift and dscale (batch, cols) contiguous, each null when not wanted.
DV_KERNEL_IMPL(layerNormModulateBackward) {
  const int64_t scale_stride = a.integer(4);
  const int64_t batch = a.integer(17), tokens = a.integer(18), cols = a.integer(19);
  float *dx = a.f32(11), *dshift = a.f32(13), *dscale = a.f32(15);
  if (!dx && !dshift && !dscale) return info.Env().Undefined();
  DV_RUN(a, layer_norm_modulate_backward, a.f32(0), a.f32(2), scale_stride, a.f32(5), a.f32(7), a.f32(9), dx, dshift,
         dscale, batch, tokens, cols);
  return info.Env().Undefined();
}

// out = x + gate[b] * y over (batch, tokens, cols); gate: batch rows of cols, gateStride apart.
DV_KERNEL_IMPL(addGated) {
  const int64_t gate_stride = a.integer(4);
  const int64_t batch = a.integer(9), tokens = a.integer(10), cols = a.integer(11);
  if (checked_numel({batch, tokens, cols}) == 0) return info.Env().Undefined();
  DV_RUN(a, add_gated, a.f32(0), a.f32(2), gate_stride, a.f32(5), a.f32(7), batch, tokens, cols);
  return info.Env().Undefined();
}

// dy = gate[b] * dout (batch, tokens, cols), dgate[b] = sum_n y * dout (batch, cols); each null when not wanted.
DV_KERNEL_IMPL(addGatedBackward) {
  const int64_t gate_stride = a.integer(2);
  const int64_t batch = a.integer(11), tokens = a.integer(12), cols = a.integer(13);
  float *dy = a.f32(7), *dgate = a.f32(9);
  if (!dy && !dgate) return info.Env().Undefined();
  DV_RUN(a, add_gated_backward, a.f32(0), gate_stride, a.f32(3), a.f32(5), dy, dgate, batch, tokens, cols);
  return info.Env().Undefined();
}

// out (rows, outFeatures) = act(x Wᵀ + bias) with x (rows, inFeatures) contiguous and W the
// (outFeatures, inFeatures) matrix, stored with rows ldw apart, or transposed ((inFeatures,
// outFeatures) rows ldw apart) when weightTransposed. bias (outFeatures) or null; pre, when given,
// receives x Wᵀ + bias before the activation. act: 'none' or 'gelu_tanh'. The bias and the
// activation are the GEMM's epilogue, applied to each output tile while it is in cache.
DV_KERNEL_IMPL(linearAct) {
  const bool wt = a.boolean(4);
  const int64_t ldw = a.integer(5);
  const int64_t rows = a.integer(12), outF = a.integer(13), inF = a.integer(14);
  const int act = a.choice(15, {"none", "gelu_tanh"});
  const int64_t w_cols = wt ? outF : inF;  // W as stored: (outF, inF), or (inF, outF) when transposed
  if (ldw < w_cols) a.fail(5, "ldw >= " + std::to_string(w_cols), std::to_string(ldw));
  const cpu::MatmulPrecision precision = read_precision(a, 16);  // checked even when there is nothing to compute
  if (rows == 0 || outF == 0) return info.Env().Undefined();
  cpu::GemmArgs g{};
  g.a = a.f32(0);
  g.b = a.f32(2);
  g.c = a.f32(8);
  g.batch = 1;
  g.m = rows;
  g.n = outF;
  g.k = inF;
  g.trans_a = false;
  g.trans_b = !wt;  // op(B) = Wᵀ (inF x outF): W stored (outF, inF) is B stored n x k
  g.alpha = 1.0f;
  g.beta = 0.0f;
  g.lda = inF;
  g.ldb = ldw;
  g.ldc = outF;
  g.bias = a.f32(6);
  g.act = act == 1 ? cpu::GemmAct::gelu_tanh : cpu::GemmAct::none;
  g.pre = a.f32(10);
  g.precision = precision;
  DV_RUN(a, gemm, g);
  return info.Env().Undefined();
}

// dh = dout * gelu_tanh'(h) over (rows, cols); dbias (cols) = sum_rows dh, or null.
DV_KERNEL_IMPL(geluBackwardBias) {
  const int64_t rows = a.integer(8), cols = a.integer(9);
  if (cols == 0) return info.Env().Undefined();
  DV_RUN(a, gelu_backward_bias, a.f32(0), a.f32(2), a.f32(4), a.f32(6), rows, cols);
  return info.Env().Undefined();
}

}  // namespace dv::addon
