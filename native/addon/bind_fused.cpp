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
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// Elements spanned by `batch` rows of `cols` floats, `stride` apart.
int64_t rows_extent(int64_t batch, int64_t stride, int64_t cols) { return strided_extent({batch, cols}, {stride, 1}); }

const float* ptr(const Buffer* b, int64_t offset) { return b ? b->as<float>() + offset : nullptr; }
float* mut(Buffer* b, int64_t offset) { return b ? b->as<float>() + offset : nullptr; }
}  // namespace

// x, y: (batch, tokens, cols); shift, scale: batch rows of cols, `stride` apart; mean, rstd:
// (batch * tokens) or null.
DV_KERNEL_IMPL(layerNormModulate) {
  Buffer& x = a.buffer(0);
  Buffer& shift = a.buffer(2);
  Buffer& scale = a.buffer(5);
  Buffer& y = a.buffer(8);
  Buffer* mean = a.optional_buffer(10);
  Buffer* rstd = a.optional_buffer(12);
  int64_t xo = a.integer(1), sho = a.integer(3), shs = a.integer(4, 0, kMaxSize), sco = a.integer(6),
          scs = a.integer(7, 0, kMaxSize), yo = a.integer(9), mo = a.integer(11), ro = a.integer(13);
  int64_t batch = a.integer(14, 0, kMaxSize), tokens = a.integer(15, 0, kMaxSize), cols = a.integer(16, 0, kMaxSize);
  float eps = a.positive_float32(17);
  int64_t rows = checked_numel({batch, tokens}), numel = checked_numel({batch, tokens, cols});
  a.require_extent(0, x, xo, numel);
  a.require_extent(2, shift, sho, rows_extent(batch, shs, cols));
  a.require_extent(5, scale, sco, rows_extent(batch, scs, cols));
  a.require_extent(8, y, yo, numel);
  if (mean) a.require_extent(10, *mean, mo, rows);
  if (rstd) a.require_extent(12, *rstd, ro, rows);
  if (rows == 0) return info.Env().Undefined();
  DV_RUN(a, layer_norm_modulate, x.as<float>() + xo, shift.as<float>() + sho, shs, scale.as<float>() + sco, scs,
         y.as<float>() + yo, mut(mean, mo), mut(rstd, ro), batch, tokens, cols, eps);
  return info.Env().Undefined();
}

// dx (batch, tokens, cols), dshift and dscale (batch, cols) contiguous, each null when not wanted.
DV_KERNEL_IMPL(layerNormModulateBackward) {
  Buffer& x = a.buffer(0);
  Buffer& scale = a.buffer(2);
  Buffer& mean = a.buffer(5);
  Buffer& rstd = a.buffer(7);
  Buffer& dy = a.buffer(9);
  Buffer* dx = a.optional_buffer(11);
  Buffer* dshift = a.optional_buffer(13);
  Buffer* dscale = a.optional_buffer(15);
  int64_t xo = a.integer(1), sco = a.integer(3), scs = a.integer(4, 0, kMaxSize), mo = a.integer(6),
          ro = a.integer(8), go = a.integer(10), dxo = a.integer(12), dso = a.integer(14), dco = a.integer(16);
  int64_t batch = a.integer(17, 0, kMaxSize), tokens = a.integer(18, 0, kMaxSize), cols = a.integer(19, 0, kMaxSize);
  int64_t rows = checked_numel({batch, tokens}), numel = checked_numel({batch, tokens, cols});
  int64_t mod = checked_numel({batch, cols});
  a.require_extent(0, x, xo, numel);
  a.require_extent(2, scale, sco, rows_extent(batch, scs, cols));
  a.require_extent(5, mean, mo, rows);
  a.require_extent(7, rstd, ro, rows);
  a.require_extent(9, dy, go, numel);
  if (dx) a.require_extent(11, *dx, dxo, numel);
  if (dshift) a.require_extent(13, *dshift, dso, mod);
  if (dscale) a.require_extent(15, *dscale, dco, mod);
  if (!dx && !dshift && !dscale) return info.Env().Undefined();
  DV_RUN(a, layer_norm_modulate_backward, x.as<float>() + xo, scale.as<float>() + sco, scs, mean.as<float>() + mo,
         rstd.as<float>() + ro, dy.as<float>() + go, mut(dx, dxo), mut(dshift, dso), mut(dscale, dco), batch, tokens,
         cols);
  return info.Env().Undefined();
}

// out = x + gate[b] * y over (batch, tokens, cols); gate: batch rows of cols, gateStride apart.
DV_KERNEL_IMPL(addGated) {
  Buffer& x = a.buffer(0);
  Buffer& gate = a.buffer(2);
  Buffer& y = a.buffer(5);
  Buffer& out = a.buffer(7);
  int64_t xo = a.integer(1), go = a.integer(3), gs = a.integer(4, 0, kMaxSize), yo = a.integer(6),
          oo = a.integer(8);
  int64_t batch = a.integer(9, 0, kMaxSize), tokens = a.integer(10, 0, kMaxSize), cols = a.integer(11, 0, kMaxSize);
  int64_t numel = checked_numel({batch, tokens, cols});
  a.require_extent(0, x, xo, numel);
  a.require_extent(2, gate, go, rows_extent(batch, gs, cols));
  a.require_extent(5, y, yo, numel);
  a.require_extent(7, out, oo, numel);
  if (numel == 0) return info.Env().Undefined();
  DV_RUN(a, add_gated, x.as<float>() + xo, gate.as<float>() + go, gs, y.as<float>() + yo, out.as<float>() + oo, batch,
         tokens, cols);
  return info.Env().Undefined();
}

// dy = gate[b] * dout (batch, tokens, cols), dgate[b] = sum_n y * dout (batch, cols); each null when not wanted.
DV_KERNEL_IMPL(addGatedBackward) {
  Buffer& gate = a.buffer(0);
  Buffer& y = a.buffer(3);
  Buffer& dout = a.buffer(5);
  Buffer* dy = a.optional_buffer(7);
  Buffer* dgate = a.optional_buffer(9);
  int64_t go = a.integer(1), gs = a.integer(2, 0, kMaxSize), yo = a.integer(4), oo = a.integer(6),
          dyo = a.integer(8), dgo = a.integer(10);
  int64_t batch = a.integer(11, 0, kMaxSize), tokens = a.integer(12, 0, kMaxSize), cols = a.integer(13, 0, kMaxSize);
  int64_t numel = checked_numel({batch, tokens, cols});
  a.require_extent(0, gate, go, rows_extent(batch, gs, cols));
  a.require_extent(3, y, yo, numel);
  a.require_extent(5, dout, oo, numel);
  if (dy) a.require_extent(7, *dy, dyo, numel);
  if (dgate) a.require_extent(9, *dgate, dgo, checked_numel({batch, cols}));
  if (!dy && !dgate) return info.Env().Undefined();
  DV_RUN(a, add_gated_backward, gate.as<float>() + go, gs, y.as<float>() + yo, dout.as<float>() + oo, mut(dy, dyo),
         mut(dgate, dgo), batch, tokens, cols);
  return info.Env().Undefined();
}

// out (rows, outFeatures) = act(x Wᵀ + bias) with x (rows, inFeatures) contiguous and W the
// (outFeatures, inFeatures) matrix, stored with rows ldw apart, or transposed ((inFeatures,
// outFeatures) rows ldw apart) when weightTransposed. bias (outFeatures) or null; pre, when given,
// receives x Wᵀ + bias before the activation. act: 'none' or 'gelu_tanh'. The bias and the
// activation are the GEMM's epilogue, applied to each output tile while it is in cache.
DV_KERNEL_IMPL(linearAct) {
  Buffer& x = a.buffer(0);
  Buffer& w = a.buffer(2);
  Buffer* bias = a.optional_buffer(6);
  Buffer& out = a.buffer(8);
  Buffer* pre = a.optional_buffer(10);
  int64_t xo = a.integer(1), wo = a.integer(3), bo = a.integer(7), oo = a.integer(9), po = a.integer(11);
  bool wt = a.boolean(4);
  int64_t ldw = a.integer(5, 0, kMaxSize);
  int64_t rows = a.integer(12, 0, kMaxSize), outF = a.integer(13, 0, kMaxSize), inF = a.integer(14, 0, kMaxSize);
  int act = a.choice(15, {"none", "gelu_tanh"});
  // W as stored: (outF, inF), or (inF, outF) when transposed.
  int64_t w_rows = wt ? inF : outF, w_cols = wt ? outF : inF;
  if (ldw < w_cols) a.fail(5, "ldw >= " + std::to_string(w_cols), std::to_string(ldw));
  int64_t numel_out = checked_numel({rows, outF});
  a.require_extent(0, x, xo, checked_numel({rows, inF}));
  a.require_extent(2, w, wo, strided_extent({w_rows, w_cols}, {ldw, 1}));
  if (bias) a.require_extent(6, *bias, bo, outF);
  a.require_extent(8, out, oo, numel_out);
  if (pre) a.require_extent(10, *pre, po, numel_out);
  const cpu::MatmulPrecision precision = read_precision(a, 16);  // checked even when there is nothing to compute
  if (numel_out == 0) return info.Env().Undefined();
  cpu::GemmArgs g{};
  g.a = x.as<float>() + xo;
  g.b = w.as<float>() + wo;
  g.c = out.as<float>() + oo;
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
  g.bias = ptr(bias, bo);
  g.act = act == 1 ? cpu::GemmAct::gelu_tanh : cpu::GemmAct::none;
  g.pre = mut(pre, po);
  g.precision = precision;
  DV_RUN(a, gemm, g);
  return info.Env().Undefined();
}

// dh = dout * gelu_tanh'(h) over (rows, cols); dbias (cols) = sum_rows dh, or null.
DV_KERNEL_IMPL(geluBackwardBias) {
  Buffer& h = a.buffer(0);
  Buffer& dout = a.buffer(2);
  Buffer& dh = a.buffer(4);
  Buffer* dbias = a.optional_buffer(6);
  int64_t ho = a.integer(1), go = a.integer(3), dho = a.integer(5), dbo = a.integer(7);
  int64_t rows = a.integer(8, 0, kMaxSize), cols = a.integer(9, 0, kMaxSize);
  int64_t numel = checked_numel({rows, cols});
  a.require_extent(0, h, ho, numel);
  a.require_extent(2, dout, go, numel);
  a.require_extent(4, dh, dho, numel);
  if (dbias) a.require_extent(6, *dbias, dbo, cols);
  if (cols == 0) return info.Env().Undefined();
  DV_RUN(a, gelu_backward_bias, h.as<float>() + ho, dout.as<float>() + go, dh.as<float>() + dho, mut(dbias, dbo), rows,
         cols);
  return info.Env().Undefined();
}

}  // namespace dv::addon
