// Fused transformer-block kernels (see cpu/fused.h), vectorised through VF (compiled once per ISA
// level) and parallel over rows.
//
// What each saves, per (B, N, D) activation, against the op chains they replace:
//   layer_norm_modulate   LayerNorm, 1 + scale, *, +: 3 passes over (B, N, D) and 2 temporaries
//                         become 1 pass; the backward's 3 chains (mul, sum over N twice, norm
//                         backward) become 1 pass.
//   add_gated             gate * y, x + ...: 2 passes and 1 temporary become 1; the backward's
//                         dy and dgate share one read of dout.
//   gelu_backward_bias    dh = dout * gelu'(h) and the bias gradient's sum over rows share one
//                         read of dh.
#include <algorithm>
#include <memory>

#include "core/thread_pool.h"
#include "cpu/fused.h"
#include "cpu/simd/activation.h"
#include "cpu/simd/rows.h"

namespace dv::cpu::DV_ISA {
namespace {

// Runs of row_grain(cols) tokens that each batch item's tokens are cut into (sizes only).
inline int64_t token_runs(int64_t tokens, int64_t cols) { return (tokens + row_grain(cols) - 1) / row_grain(cols); }

// fn(b, n0, n1, task) over each batch item's tokens cut into token_runs(tokens, cols) runs: task
// t = b * runs + run covers rows [n0, n1) of item b. The runs depend on the sizes only, so
// per-run partial sums over tokens, added in run order, are the same for every thread count.
template <typename F>
void for_token_runs(int64_t batch, int64_t tokens, int64_t cols, F fn) {
  const int64_t grain = row_grain(cols), runs = token_runs(tokens, cols);
  const int64_t task_elems = std::max<int64_t>(1, std::min(tokens, grain) * cols);
  parallel_for(batch * runs, std::max<int64_t>(1, kRowGrain / task_elems), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / runs, n0 = t % runs * grain;
      fn(b, n0, std::min(tokens, n0 + grain), t);
    }
  });
}

// Per-run partial rows of `cols` floats for up to two sums over tokens, or none (null).
struct Partials {
  std::unique_ptr<float[]> a, b;
  Partials(int64_t tasks, int64_t cols, bool want_a, bool want_b)
      : a(want_a ? new float[size_t(tasks * cols)] : nullptr), b(want_b ? new float[size_t(tasks * cols)] : nullptr) {}
  // Task t's rows, zeroed (in the cache of the thread that then accumulates into them).
  float* row_a(int64_t t, int64_t cols) { return zeroed(a.get(), t, cols); }
  float* row_b(int64_t t, int64_t cols) { return zeroed(b.get(), t, cols); }

 private:
  static float* zeroed(float* p, int64_t t, int64_t cols) {
    if (!p) return nullptr;
    std::fill(p + t * cols, p + (t + 1) * cols, 0.0f);
    return p + t * cols;
  }
};

}  // namespace

// ============================ LayerNorm + modulation ============================

void layer_norm_modulate(const float* x, const float* shift, int64_t shift_stride, const float* scale,
                         int64_t scale_stride, float* y, float* mean, float* rstd, int64_t batch, int64_t tokens,
                         int64_t cols, float eps) {
  const VF one = VF::set1(1.0f);
  parallel_for(batch * tokens, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / tokens;
      const float* xr = x + r * cols;
      const float* sh = shift + b * shift_stride;
      const float* sc = scale + b * scale_stride;
      float* yr = y + r * cols;
      float mu, rs;
      row_stats(xr, cols, eps, mu, rs);
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
      const VF vm = VF::set1(mu), vr = VF::set1(rs);
      for_lanes(cols, [&](int64_t i, int lanes) {
        VF h = (load_lanes(xr + i, lanes) - vm) * vr;
        store_lanes(fmadd(h, one + load_lanes(sc + i, lanes), load_lanes(sh + i, lanes)), yr + i, lanes);
      });
    }
  });
}

void layer_norm_modulate_backward(const float* x, const float* scale, int64_t scale_stride, const float* mean,
                                  const float* rstd, const float* dy, float* dx, float* dshift, float* dscale,
                                  int64_t batch, int64_t tokens, int64_t cols) {
  const int64_t runs = token_runs(tokens, cols);
  Partials part(batch * runs, cols, dshift != nullptr, dscale != nullptr);
  const float inv_n = cols ? 1.0f / float(cols) : 0.0f;
  const VF one = VF::set1(1.0f);
  for_token_runs(batch, tokens, cols, [&](int64_t b, int64_t n0, int64_t n1, int64_t t) {
    float* ps = part.row_a(t, cols);
    float* pc = part.row_b(t, cols);
    const float* sc = scale + b * scale_stride;
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t r = b * tokens + n;
      layer_norm_backward_row(x + r * cols, dy + r * cols, mean[r], rstd[r], cols, inv_n, ps, pc,
                              dx ? dx + r * cols : nullptr,
                              [&](int64_t i, int lanes) { return one + load_lanes(sc + i, lanes); });
    }
  });
  if (dshift) combine_partials(part.a.get(), batch, runs, cols, dshift);
  if (dscale) combine_partials(part.b.get(), batch, runs, cols, dscale);
}

// ================================ gated residual ================================

void add_gated(const float* x, const float* gate, int64_t gate_stride, const float* y, float* out, int64_t batch,
               int64_t tokens, int64_t cols) {
  parallel_for(batch * tokens, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* gt = gate + r / tokens * gate_stride;
      const float* xr = x + r * cols;
      const float* yr = y + r * cols;
      float* orow = out + r * cols;
      for_lanes(cols, [&](int64_t i, int lanes) {
        store_lanes(fmadd(load_lanes(gt + i, lanes), load_lanes(yr + i, lanes), load_lanes(xr + i, lanes)), orow + i,
                    lanes);
      });
    }
  });
}

void add_gated_backward(const float* gate, int64_t gate_stride, const float* y, const float* dout, float* dy,
                        float* dgate, int64_t batch, int64_t tokens, int64_t cols) {
  const int64_t runs = token_runs(tokens, cols);
  Partials part(batch * runs, cols, dgate != nullptr, false);
  for_token_runs(batch, tokens, cols, [&](int64_t b, int64_t n0, int64_t n1, int64_t t) {
    float* pg = part.row_a(t, cols);
    const float* gt = gate + b * gate_stride;
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t r = b * tokens + n;
      const float* gr = dout + r * cols;
      const float* yr = y + r * cols;
      float* dr = dy ? dy + r * cols : nullptr;
      for_lanes(cols, [&](int64_t i, int lanes) {
        VF g = load_lanes(gr + i, lanes);
        if (dr) store_lanes(load_lanes(gt + i, lanes) * g, dr + i, lanes);
        if (pg) store_lanes(fmadd(load_lanes(yr + i, lanes), g, load_lanes(pg + i, lanes)), pg + i, lanes);
      });
    }
  });
  if (dgate) combine_partials(part.a.get(), batch, runs, cols, dgate);
}

// ============================ GELU backward + bias sum ============================

void gelu_backward_bias(const float* h, const float* dout, float* dh, float* dbias, int64_t rows, int64_t cols) {
  const int64_t grain = row_grain(cols), chunks = num_chunks(rows, grain);
  Partials part(chunks, cols, dbias != nullptr, false);
  parallel_for_chunks(rows, grain, [&](int64_t c, int64_t r0, int64_t r1) {
    float* pb = part.row_a(c, cols);
    for (int64_t r = r0; r < r1; ++r) {
      const float* hr = h + r * cols;
      const float* gr = dout + r * cols;
      float* dr = dh + r * cols;
      for_lanes(cols, [&](int64_t i, int lanes) {
        // Tail lanes: h and dout zero-filled, so gelu'(0) * 0 = 0 goes into the partial.
        VF d = load_lanes(gr + i, lanes) * vgelu_grad(load_lanes(hr + i, lanes));
        store_lanes(d, dr + i, lanes);
        if (pb) store_lanes(load_lanes(pb + i, lanes) + d, pb + i, lanes);
      });
    }
  });
  if (dbias) combine_partials(part.a.get(), 1, chunks, cols, dbias);
}

}  // namespace dv::cpu::DV_ISA
