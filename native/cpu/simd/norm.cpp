// Softmax and LayerNorm, forward and backward, vectorised through VF (compiled once per ISA
// level) and parallel over rows. Each row is handled start to finish by one thread in a fixed
// order; LayerNorm's dweight/dbias (sums over rows) keep one partial per parallel_for chunk and
// add them in chunk order, so every result is bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "core/thread_pool.h"
#include "cpu/norm.h"
#include "cpu/simd/activation.h"
#include "cpu/simd/rows.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ================================ softmax ================================

// y = softmax(x) over one contiguous row of n floats. Safe in place (x == y).
void softmax_row(const float* x, float* y, int64_t n) {
  if (n == 0) return;
  const int64_t body = n - n % VF::W;
  const int tail = int(n - body);
  VF m0 = VF::set1(kNegInf), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * VF::W <= body; i += 2 * VF::W) {
    m0 = vmax(m0, VF::load(x + i));
    m1 = vmax(m1, VF::load(x + i + VF::W));
  }
  if (i < body) m0 = vmax(m0, VF::load(x + i));
  if (tail) m1 = vmax(m1, load_pad(x + body, tail, kNegInf));
  const VF vm = VF::set1(reduce_max(vmax(m0, m1)));

  VF s0 = VF::zero(), s1 = VF::zero();
  for (i = 0; i + 2 * VF::W <= body; i += 2 * VF::W) {
    VF e0 = vexp(VF::load(x + i) - vm), e1 = vexp(VF::load(x + i + VF::W) - vm);
    e0.store(y + i);
    e1.store(y + i + VF::W);
    s0 = s0 + e0;
    s1 = s1 + e1;
  }
  if (i < body) {
    VF e = vexp(VF::load(x + i) - vm);
    e.store(y + i);
    s0 = s0 + e;
  }
  if (tail) {
    VF e = vexp(load_pad(x + body, tail, kNegInf) - vm);  // padding lanes give exp(-inf) = 0
    e.store_partial(y + body, tail);
    s1 = s1 + e;
  }
  const VF inv = VF::set1(1.0f / reduce_add(s0 + s1));
  for (i = 0; i < body; i += VF::W) (VF::load(y + i) * inv).store(y + i);
  if (tail) (VF::load_partial(y + body, tail) * inv).store_partial(y + body, tail);
}

// dx = y * (dy - sum(dy * y)) over one contiguous row.
void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  const int64_t body = n - n % VF::W;
  const int tail = int(n - body);
  VF d0 = VF::zero(), d1 = VF::zero();
  int64_t i = 0;
  for (; i + 2 * VF::W <= body; i += 2 * VF::W) {
    d0 = fmadd(VF::load(dy + i), VF::load(y + i), d0);
    d1 = fmadd(VF::load(dy + i + VF::W), VF::load(y + i + VF::W), d1);
  }
  if (i < body) d0 = fmadd(VF::load(dy + i), VF::load(y + i), d0);
  if (tail) d1 = fmadd(VF::load_partial(dy + body, tail), VF::load_partial(y + body, tail), d1);
  const VF dot = VF::set1(reduce_add(d0 + d1));
  for (i = 0; i < body; i += VF::W) ((VF::load(dy + i) - dot) * VF::load(y + i)).store(dx + i);
  if (tail) {
    ((VF::load_partial(dy + body, tail) - dot) * VF::load_partial(y + body, tail)).store_partial(dx + body, tail);
  }
}

// Columns per task in the strided (inner > 1) softmax: each of the n rows of a block is read as
// 512 contiguous bytes. Narrower blocks (one vector) walk memory at a stride of `inner` floats,
// which for power-of-two widths maps every row to the same cache set.
constexpr int64_t kColBlock = 128;
static_assert(kColBlock % VF::W == 0, "column blocks hold whole vectors");

// Visits (outer, n, inner) as blocks of up to kColBlock adjacent columns of one outer slice; each
// column is a separate softmax over n with stride `inner`. fn(offset of the block's first
// element, columns in the block). Every column is reduced over n in order by one thread, so the
// block split (and the thread count) never changes a result.
template <typename F>
void for_column_blocks(int64_t outer, int64_t n, int64_t inner, F fn) {
  const int64_t blocks = (inner + kColBlock - 1) / kColBlock;
  const int64_t work = std::max<int64_t>(1, n * std::min(inner, kColBlock));
  parallel_for(outer * blocks, std::max<int64_t>(1, kRowGrain / work), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / blocks, i0 = (t % blocks) * kColBlock;
      fn(o * n * inner + i0, std::min(kColBlock, inner - i0));
    }
  });
}

// fn(j, lanes) for the vectors covering `len` columns.
template <typename F>
inline void for_vectors(int64_t len, F fn) {
  for (int64_t j = 0; j < len; j += VF::W) fn(j, int(std::min<int64_t>(VF::W, len - j)));
}

}  // namespace

void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {
    parallel_for(outer, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_row(x + r * n, y + r * n, n);
    });
    return;
  }
  // Softmax over a middle axis: vectors hold adjacent columns, each column reduced over n with
  // stride `inner`, so no transpose is needed.
  for_column_blocks(outer, n, inner, [&](int64_t base, int64_t len) {
    // Per-column running max, then sum, in whole vectors (lanes past `len` see zeros, never stored).
    float m[kColBlock], sum[kColBlock];
    for_vectors(len, [&](int64_t j, int) {
      VF::set1(kNegInf).store(m + j);
      VF::zero().store(sum + j);
    });
    for (int64_t k = 0; k < n; ++k) {
      const float* px = x + base + k * inner;
      for_vectors(len, [&](int64_t j, int lanes) { vmax(VF::load(m + j), load_lanes(px + j, lanes)).store(m + j); });
    }
    for (int64_t k = 0; k < n; ++k) {
      const float* px = x + base + k * inner;
      float* py = y + base + k * inner;
      for_vectors(len, [&](int64_t j, int lanes) {
        VF e = vexp(load_lanes(px + j, lanes) - VF::load(m + j));
        store_lanes(e, py + j, lanes);
        (VF::load(sum + j) + e).store(sum + j);
      });
    }
    for_vectors(len, [&](int64_t j, int) { (VF::set1(1.0f) / VF::load(sum + j)).store(sum + j); });
    for (int64_t k = 0; k < n; ++k) {
      float* py = y + base + k * inner;
      for_vectors(len, [&](int64_t j, int lanes) { store_lanes(load_lanes(py + j, lanes) * VF::load(sum + j), py + j, lanes); });
    }
  });
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {
    parallel_for(outer, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_backward_row(y + r * n, dy + r * n, dx + r * n, n);
    });
    return;
  }
  for_column_blocks(outer, n, inner, [&](int64_t base, int64_t len) {
    float dot[kColBlock];
    for_vectors(len, [&](int64_t j, int) { VF::zero().store(dot + j); });
    for (int64_t k = 0; k < n; ++k) {
      const float* py = y + base + k * inner;
      const float* pg = dy + base + k * inner;
      for_vectors(len, [&](int64_t j, int lanes) {
        fmadd(load_lanes(pg + j, lanes), load_lanes(py + j, lanes), VF::load(dot + j)).store(dot + j);
      });
    }
    for (int64_t k = 0; k < n; ++k) {
      const float* py = y + base + k * inner;
      const float* pg = dy + base + k * inner;
      float* pd = dx + base + k * inner;
      for_vectors(len, [&](int64_t j, int lanes) {
        store_lanes((load_lanes(pg + j, lanes) - VF::load(dot + j)) * load_lanes(py + j, lanes), pd + j, lanes);
      });
    }
  });
}

// =============================== LayerNorm ===============================

namespace {

template <bool HasW, bool HasB>
void layer_norm_rows(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows,
                     int64_t cols, float eps) {
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      float mu, rs;
      row_stats(xr, cols, eps, mu, rs);
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
      const VF vm = VF::set1(mu), vr = VF::set1(rs);
      auto norm = [&](VF v, int64_t i, int lanes) {
        VF h = (v - vm) * vr;
        if constexpr (HasW && HasB) return fmadd(h, load_lanes(w + i, lanes), load_lanes(b + i, lanes));
        else if constexpr (HasW) return h * load_lanes(w + i, lanes);
        else if constexpr (HasB) return h + load_lanes(b + i, lanes);
        else return h;
      };
      int64_t i = 0;
      for (; i + VF::W <= cols; i += VF::W) norm(VF::load(xr + i), i, VF::W).store(yr + i);
      if (i < cols) {
        const int tail = int(cols - i);
        norm(VF::load_partial(xr + i, tail), i, tail).store_partial(yr + i, tail);
      }
    }
  });
}

// With xh = (x - mean) * rstd and g = dy * weight (dy without affine):
//   dx = rstd * (g - mean(g) - xh * mean(g * xh)),  dweight = sum_rows dy * xh,  dbias = sum_rows dy.
template <bool HasW>
void layer_norm_backward_rows(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                              float* dx, float* dw, float* db, int64_t rows, int64_t cols) {
  const int64_t grain = row_grain(cols), chunks = num_chunks(rows, grain);
  // Uninitialised: each chunk zeroes its own rows (in its own cache) before accumulating.
  std::unique_ptr<float[]> pw(dw ? new float[size_t(chunks * cols)] : nullptr);
  std::unique_ptr<float[]> pb(db ? new float[size_t(chunks * cols)] : nullptr);
  const float inv_n = cols ? 1.0f / float(cols) : 0.0f;
  parallel_for_chunks(rows, grain, [&](int64_t c, int64_t r0, int64_t r1) {
    float* cw = dw ? pw.get() + c * cols : nullptr;
    float* cb = db ? pb.get() + c * cols : nullptr;
    if (cw) std::fill(cw, cw + cols, 0.0f);
    if (cb) std::fill(cb, cb + cols, 0.0f);
    for (int64_t r = r0; r < r1; ++r) {
      float* dr = dx ? dx + r * cols : nullptr;
      if constexpr (HasW) {
        layer_norm_backward_row(x + r * cols, dy + r * cols, mean[r], rstd[r], cols, inv_n, cb, cw, dr,
                                [&](int64_t i, int lanes) { return load_lanes(w + i, lanes); });
      } else {
        layer_norm_backward_row(x + r * cols, dy + r * cols, mean[r], rstd[r], cols, inv_n, cb, cw, dr, nullptr);
      }
    }
  });
  if (dw) combine_partials(pw.get(), 1, chunks, cols, dw);
  if (db) combine_partials(pb.get(), 1, chunks, cols, db);
}

}  // namespace

void layer_norm(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                int64_t rows, int64_t cols, float eps) {
  if (weight && bias) return layer_norm_rows<true, true>(x, weight, bias, y, mean, rstd, rows, cols, eps);
  if (weight) return layer_norm_rows<true, false>(x, weight, bias, y, mean, rstd, rows, cols, eps);
  if (bias) return layer_norm_rows<false, true>(x, weight, bias, y, mean, rstd, rows, cols, eps);
  layer_norm_rows<false, false>(x, weight, bias, y, mean, rstd, rows, cols, eps);
}

void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dweight, float* dbias, int64_t rows, int64_t cols) {
  if (weight) return layer_norm_backward_rows<true>(x, weight, mean, rstd, dy, dx, dweight, dbias, rows, cols);
  layer_norm_backward_rows<false>(x, weight, mean, rstd, dy, dx, dweight, dbias, rows, cols);
}

// ================================ GroupNorm ================================
// One task per (batch item, group): its cpg * spatial floats are contiguous, so the statistics are
// LayerNorm's row_stats over that run, and every result of the task (y, or dx and the task's
// channels of dscale/dshift) is computed by one thread in a fixed order: bit-identical for any
// thread count, with no partial sums to combine.

namespace {

inline int64_t group_grain(int64_t group_elems) { return std::max<int64_t>(1, kRowGrain / std::max<int64_t>(1, group_elems)); }

// silu(p) = p * sigmoid(p); silu'(p) = sigmoid(p) * (1 + p * (1 - sigmoid(p))).
inline VF vsilu_grad(VF p) {
  const VF one = VF::set1(1.0f), sg = vsigmoid(p);
  return sg * fmadd(p, one - sg, one);
}

}  // namespace

void group_norm(const float* x, const float* scale, int64_t scale_stride, const float* shift, int64_t shift_stride,
                float* y, float* mean, float* rstd, int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                float eps, bool silu) {
  const int64_t cpg = channels / groups, n = cpg * spatial;
  parallel_for(batch * groups, group_grain(n), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / groups, c0 = t % groups * cpg;
      const float* xg = x + t * n;
      float* yg = y + t * n;
      float mu, rs;
      row_stats(xg, n, eps, mu, rs);
      if (mean) mean[t] = mu;
      if (rstd) rstd[t] = rs;
      const VF vm = VF::set1(mu), vr = VF::set1(rs);
      for (int64_t ci = 0; ci < cpg; ++ci) {
        const VF s = VF::set1(scale ? scale[b * scale_stride + c0 + ci] : 1.0f);
        const VF h = VF::set1(shift ? shift[b * shift_stride + c0 + ci] : 0.0f);
        const float* xr = xg + ci * spatial;
        float* yr = yg + ci * spatial;
        for_lanes(spatial, [&](int64_t i, int lanes) {
          VF p = fmadd((load_lanes(xr + i, lanes) - vm) * vr, s, h);
          if (silu) p = p * vsigmoid(p);
          store_lanes(p, yr + i, lanes);
        });
      }
    }
  });
}

void group_norm_backward(const float* x, const float* scale, int64_t scale_stride, const float* shift,
                         int64_t shift_stride, const float* mean, const float* rstd, const float* dy, float* dx,
                         float* dscale, float* dshift, int64_t batch, int64_t channels, int64_t groups,
                         int64_t spatial, bool silu) {
  const int64_t cpg = channels / groups, n = cpg * spatial;
  const float inv_n = n ? 1.0f / float(n) : 0.0f;
  parallel_for(batch * groups, group_grain(n), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / groups, c0 = t % groups * cpg;
      const float* xg = x + t * n;
      const float* gg = dy + t * n;
      float* dg = dx ? dx + t * n : nullptr;
      const VF vm = VF::set1(mean[t]), vr = VF::set1(rstd[t]);
      // Pass 1, per channel: g = dy * act'(pre); the sums of g and g * xh give dshift and dscale,
      // and g * scale is parked in dx, whose group sums (with and without xh) pass 2 subtracts.
      VF a_gs = VF::zero(), a_gsx = VF::zero();
      for (int64_t ci = 0; ci < cpg; ++ci) {
        const int64_t c = c0 + ci;
        const VF s = VF::set1(scale ? scale[b * scale_stride + c] : 1.0f);
        const VF h = VF::set1(shift ? shift[b * shift_stride + c] : 0.0f);
        const float* xr = xg + ci * spatial;
        const float* gr = gg + ci * spatial;
        float* dr = dg ? dg + ci * spatial : nullptr;
        VF sg = VF::zero(), sgx = VF::zero();
        for_lanes(spatial, [&](int64_t i, int lanes) {
          // Tail lanes: dy zero-filled, so they add exact zeros (xh there is finite).
          const VF xh = (load_lanes(xr + i, lanes) - vm) * vr;
          VF g = load_lanes(gr + i, lanes);
          if (silu) g = g * vsilu_grad(fmadd(xh, s, h));
          sg = sg + g;
          sgx = fmadd(g, xh, sgx);
          if (dr) {
            const VF gs = g * s;
            store_lanes(gs, dr + i, lanes);
            a_gs = a_gs + gs;
            a_gsx = fmadd(gs, xh, a_gsx);
          }
        });
        if (dshift) dshift[b * channels + c] = reduce_add(sg);
        if (dscale) dscale[b * channels + c] = reduce_add(sgx);
      }
      if (!dg) continue;
      // Pass 2: dx = rstd * (g * scale - mean(g * scale) - xh * mean(g * scale * xh)).
      const VF ma = VF::set1(reduce_add(a_gs) * inv_n), mb = VF::set1(reduce_add(a_gsx) * inv_n);
      for_lanes(n, [&](int64_t i, int lanes) {
        const VF xh = (load_lanes(xg + i, lanes) - vm) * vr;
        store_lanes(vr * (load_lanes(dg + i, lanes) - ma - xh * mb), dg + i, lanes);
      });
    }
  });
}

}  // namespace dv::cpu::DV_ISA
