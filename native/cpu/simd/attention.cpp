// Fused scaled-dot-product attention (cpu/attention.h), FlashAttention-2 on the CPU, compiled once
// per ISA level.
//
// All block products go through one register-blocked kernel, block_gemm: C (M × NV vectors) =
// init(C) + A (M × K, any row/column strides) · B (K × NV vectors, rows contiguous). A is read one
// scalar at a time and broadcast, B one vector at a time, so the operand whose rows are indexed by
// the reduction must be laid out with the output columns contiguous. That decides the packing:
//
// Sequences are cut into blocks of 64 rows; a remainder of fewer than 16 rows joins the last block
// (so N = 65 is one block, not 64 + 1), which keeps slivers from paying a whole block's overheads.
//
// Forward, one task per (batch·head, query block):
//   QsT (D × Bq)  = (scale · Q_blk)ᵀ, packed once per task;
//   per key block:  Sᵀ (Bk × Bq) = K_blk · QsT   (K rows read in place, no transpose)
//   online softmax down the columns of Sᵀ, i.e. vectorised across queries: running max m and sum l
//   per query, alpha = exp(m_old - m_new);  O (Bq × D) = diag(alpha) O + (Pᵀ)ᵀ V_blk.
//   Finally O /= l and L = m + log(l) (the log-sum-exp the backward needs).
//
// Backward (FA-2), one task per (batch·head, group of key blocks); per key block the transposes
// Kᵀ, Vᵀ (D × Bk) are packed once and reused for every query block:
//   S = Qs Kᵀ, P = exp(S - L)                  (Qs = scale · Q, so S matches the forward bit for bit)
//   dV += Pᵀ dO;  dP = dO Vᵀ;  dS = P ∘ (dP - Dvec),  Dvec_i = dO_i · O_i
//   dK += dSᵀ Qs  (= scale · dSᵀ Q);  dQ_part += dS K  (scaled once at the end)
// dK and dV of a key block belong to one task. dQ sums over all key blocks, so each task writes its
// own partial (Nq × D) and a last pass adds the partials in group order. The number of groups
// depends only on the shapes (enough tasks for B·H = 1 with long sequences), never on the thread
// count, so results are bit-identical for every DIFFVIT_THREADS.
//
// Measured (kernel calls on preallocated buffers, q/k/v strided in a (B, N, 3, H, D) tensor, D = 64,
// one core of an AVX-512 EPYC VM, best of 9; flops: forward 4·B·H·N²·D, backward 10·B·H·N²·D):
//   avx512  B,H,N = 32,4,65: fwd 1.3 ms (105 GFLOP/s), bwd 3.8 ms (92)
//           32,4,257: fwd 17.5 ms (124), bwd 39.6 ms (137);  4,4,1025: fwd 29.8 ms (144), bwd 67 ms (160)
//   avx2    32,4,257: fwd 33 ms (65), bwd 66 ms (82)
// Folding the short remainder into the last block took N = 65 from about 2.0 to 1.3-1.5 ms forward; the
// remaining non-GEMM time is mostly exp and the first reads of Q, K, V from memory.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/attention.h"
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr int64_t kW = VF::W;
constexpr int64_t kBlock = 64;       // query and key rows per block; a multiple of every W
constexpr int64_t kSliver = 16;      // a remainder shorter than this joins the last block
constexpr int64_t kBlockMax = kBlock + kSliver;  // rows a block can hold; row stride of block buffers
constexpr int64_t kMinBlockQ = 16;   // the forward splits queries down to this to feed the threads
constexpr int64_t kTargetTasks = 64;  // tasks wanted per call; a constant, so results never depend on threads
// The backward's dQ partials (groups · B·H · Nq · D floats) are capped near 64 MiB, unless one group
// alone needs more.
constexpr int64_t kMaxPartialFloats = int64_t(1) << 24;
constexpr int kTileR = 4;  // register tile: kTileR rows × kTileC vectors of accumulators
#if defined(DV_ISA_AVX2)
constexpr int kTileC = 2;  // 16 ymm registers: 8 accumulators + 2 B vectors + the broadcast
#else
constexpr int kTileC = 4;  // avx512 has 32 zmm registers: 16 accumulators + 4 B vectors + the broadcast
#endif
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// a·b + c and exp for this file's loops. The scalar level is built without FMA, where simd.h's
// fmadd (std::fma) and hence vexp become exact software routines, ~20× slower than a multiply and an
// add; there the plain forms are used (rounded separately, which is all a CPU without FMA offers).
#if defined(DV_ISA_SCALAR)
inline VF madd(VF a, VF b, VF c) { return a * b + c; }
inline VF exp_v(VF x) { return std::exp(x.v); }
#else
inline VF madd(VF a, VF b, VF c) { return fmadd(a, b, c); }
inline VF exp_v(VF x) { return vexp(x); }
#endif

// [0, n) cut into blocks of `size` rows, the last one also taking a remainder shorter than kSliver;
// no block holds more than size + kSliver - 1 rows.
struct Blocks {
  int64_t n, size, count;
  Blocks(int64_t n_, int64_t size_) : n(n_), size(size_), count(n_ / size_) {
    if (count == 0 || n % size >= kSliver) ++count;
  }
  int64_t begin(int64_t b) const { return b * size; }
  int64_t end(int64_t b) const { return b + 1 == count ? n : (b + 1) * size; }
};

// ---- block products ---------------------------------------------------------------------------

enum class Init { zero, accumulate, scale_rows };  // C starts as 0, as C, or as row_scale[r] · C

using TileFn = void (*)(float* c, int64_t ldc, const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb,
                        int64_t k, Init init, const float* row_scale);

// One R × CV-vector tile: C[r, :] = init(C[r, :]) + sum_k A[r*ars + k*aks] · B[k*ldb, :].
template <int R, int CV>
void tile(float* c, int64_t ldc, const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb, int64_t k,
          Init init, const float* row_scale) {
  VF acc[R][CV];
  for (int r = 0; r < R; ++r) {
    VF s = init == Init::scale_rows ? VF::set1(row_scale[r]) : VF::zero();
    for (int j = 0; j < CV; ++j) {
      if (init == Init::zero) {
        acc[r][j] = VF::zero();
      } else {
        VF x = VF::load(c + r * ldc + j * kW);
        acc[r][j] = init == Init::accumulate ? x : x * s;
      }
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    VF bv[CV];
    for (int j = 0; j < CV; ++j) bv[j] = VF::load(b + p * ldb + j * kW);
    for (int r = 0; r < R; ++r) {
      VF av = VF::set1(a[r * ars + p * aks]);
      for (int j = 0; j < CV; ++j) acc[r][j] = madd(av, bv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < CV; ++j) acc[r][j].store(c + r * ldc + j * kW);
}

template <int R>
TileFn tile_for_cols(int64_t cv) {
  if constexpr (kTileC == 4) {
    switch (cv) {
      case 1: return &tile<R, 1>;
      case 2: return &tile<R, 2>;
      case 3: return &tile<R, 3>;
      default: return &tile<R, 4>;
    }
  } else {
    return cv == 1 ? &tile<R, 1> : &tile<R, 2>;
  }
}

TileFn tile_for(int64_t rows, int64_t cv) {
  switch (rows) {
    case 1: return tile_for_cols<1>(cv);
    case 2: return tile_for_cols<2>(cv);
    case 3: return tile_for_cols<3>(cv);
    default: return tile_for_cols<4>(cv);
  }
}

// C (m × nv vectors, row stride ldc) = init(C) + A (m × k; element (r, p) at a[r*ars + p*aks]) ·
// B (k × nv vectors, row stride ldb). Column panels outermost so a B panel stays in L1 across the
// row tiles. Every element of every tile is summed over p in order, whatever the tiling.
void block_gemm(float* c, int64_t ldc, const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb,
                int64_t m, int64_t nv, int64_t k, Init init, const float* row_scale = nullptr) {
  for (int64_t j0 = 0; j0 < nv; j0 += kTileC) {
    int64_t cv = std::min<int64_t>(kTileC, nv - j0);
    for (int64_t r0 = 0; r0 < m; r0 += kTileR) {
      int64_t rows = std::min<int64_t>(kTileR, m - r0);
      tile_for(rows, cv)(c + r0 * ldc + j0 * kW, ldc, a + r0 * ars, ars, aks, b + j0 * kW, ldb, k, init,
                         row_scale ? row_scale + r0 : nullptr);
    }
  }
}

// ---- packing ----------------------------------------------------------------------------------

// dst[0, dp) = scale · src[0, d), zero-filled up to dp = d rounded up to whole vectors.
void pack_row(float* dst, const float* src, int64_t d, float scale) {
  VF s = VF::set1(scale);
  int64_t c = 0;
  for (; c + kW <= d; c += kW) (VF::load(src + c) * s).store(dst + c);
  if (c < d) (VF::load_partial(src + c, static_cast<int>(d - c)) * s).store(dst + c);
}

// dst (d × ld): dst[c*ld + j] = scale · rows[j][c] for j < n (row j at src + j*sn), and zero for
// n <= j < n rounded up to whole vectors, so padded columns of the products stay finite. W × W
// blocks through registers (transpose): the scalar loop before took 12 % of the default model's
// attention forward + backward (B, H, N, D = 32, 4, 64, 32; perf), this 4 %.
void pack_transposed(float* dst, int64_t ld, const float* src, int64_t sn, int64_t n, int64_t d, float scale) {
  const VF s = VF::set1(scale);
  for (int64_t j0 = 0; j0 < n; j0 += kW) {
    const int64_t rows = std::min(kW, n - j0);
    for (int64_t c0 = 0; c0 < d; c0 += kW) {
      const int cols = static_cast<int>(std::min(kW, d - c0));
      VF r[kW];
      for (int64_t t = 0; t < kW; ++t) {
        if (t >= rows) {
          r[t] = VF::zero();
          continue;
        }
        const float* row = src + (j0 + t) * sn + c0;
        r[t] = (cols == kW ? VF::load(row) : VF::load_partial(row, cols)) * s;
      }
      transpose(r);
      for (int c = 0; c < cols; ++c) r[c].store(dst + (c0 + c) * ld + j0);
    }
  }
}

// dst[0, d) = scale · src[0, dp)  (unpacks a padded row into a strided output row).
void store_row(float* dst, const float* src, int64_t d, float scale) {
  VF s = VF::set1(scale);
  int64_t c = 0;
  for (; c + kW <= d; c += kW) (VF::load(src + c) * s).store(dst + c);
  if (c < d) (VF::load(src + c) * s).store_partial(dst + c, static_cast<int>(d - c));
}

float row_dot(const float* x, const float* y, int64_t d) {
  VF acc = VF::zero();
  int64_t c = 0;
  for (; c + kW <= d; c += kW) acc = madd(VF::load(x + c), VF::load(y + c), acc);
  if (c < d) {
    int n = static_cast<int>(d - c);
    acc = madd(VF::load_partial(x + c, n), VF::load_partial(y + c, n), acc);
  }
  return reduce_add(acc);
}

// Per-thread scratch of at least n floats, 64-byte aligned; regions carved from it are kept
// multiples of 16 floats so every region starts aligned too.
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + 16) buf.resize(n + 16);
  auto p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~uintptr_t(63));
}
int64_t region(int64_t n) { return round_up(n, 16); }

// ---- forward ----------------------------------------------------------------------------------

int64_t forward_scratch(int64_t d) {
  int64_t dp = round_up(d, kW);
  return region(d * kBlockMax) + region(kBlockMax * kBlockMax) + region(kBlockMax * dp) +
         region(kBlockMax * dp) + 3 * region(kBlockMax);
}

// Rows [i0, i0 + mq) of one (batch, head); mq <= kBlockMax.
void forward_block(const AttentionForwardArgs& a, int64_t bh, int64_t i0, int64_t mq, float* buf) {
  const int64_t d = a.d, dp = round_up(d, kW), nvd = dp / kW, nvq = ceil_div(mq, kW);
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const float* q = a.q.data + b * a.q.sb + h * a.q.sh + i0 * a.q.sn;
  const float* k = a.k.data + b * a.k.sb + h * a.k.sh;
  const float* v = a.v.data + b * a.v.sb + h * a.v.sh;
  constexpr int64_t ld = kBlockMax;
  float* qt = buf;                          // QsT: (d, ld), query columns
  float* st = qt + region(d * ld);          // Sᵀ, then Pᵀ: (keys, ld)
  float* vp = st + region(ld * ld);         // V block: (keys, dp)
  float* acc = vp + region(ld * dp);        // unnormalised O: (queries, dp)
  float* m = acc + region(ld * dp);         // running max per query
  float* l = m + region(ld);                // running sum per query
  float* alpha = l + region(ld);            // exp(m_old - m_new) per query

  pack_transposed(qt, ld, q, a.q.sn, mq, d, a.scale);
  for (int64_t j = 0; j < nvq; ++j) {
    VF::set1(kNegInf).store(m + j * kW);
    VF::zero().store(l + j * kW);
  }
  const Blocks keys(a.nk, kBlock);
  for (int64_t kb = 0; kb < keys.count; ++kb) {
    const int64_t j0 = keys.begin(kb), mk = keys.end(kb) - j0;
    // Sᵀ (mk × mq) = K_blk (mk × d, read in place) · QsT (d × mq)
    block_gemm(st, ld, k + j0 * a.k.sn, a.k.sn, 1, qt, ld, mk, nvq, d, Init::zero);
    // Online softmax per query column (padded query columns hold S = 0 and are never read back).
    for (int64_t jq = 0; jq < nvq; ++jq) {
      float* col = st + jq * kW;
      VF m_old = VF::load(m + jq * kW), m_new = m_old;
      for (int64_t r = 0; r < mk; ++r) m_new = vmax(m_new, VF::load(col + r * ld));
      VF sum = VF::zero();
      for (int64_t r = 0; r < mk; ++r) {
        VF p = exp_v(VF::load(col + r * ld) - m_new);
        p.store(col + r * ld);
        sum = sum + p;
      }
      VF al = exp_v(m_old - m_new);  // 0 on the first block, where m_old = -inf
      madd(VF::load(l + jq * kW), al, sum).store(l + jq * kW);
      m_new.store(m + jq * kW);
      al.store(alpha + jq * kW);
    }
    for (int64_t r = 0; r < mk; ++r) pack_row(vp + r * dp, v + (j0 + r) * a.v.sn, d, 1.0f);
    // O (mq × dp) = diag(alpha) O + P (mq × mk, stored transposed in st) · V_blk (mk × dp)
    block_gemm(acc, dp, st, 1, ld, vp, dp, mq, nvd, mk, kb == 0 ? Init::zero : Init::scale_rows, alpha);
  }
  for (int64_t r = 0; r < mq; ++r) {
    float* o = a.o.data + b * a.o.sb + h * a.o.sh + (i0 + r) * a.o.sn;
    store_row(o, acc + r * dp, d, 1.0f / l[r]);
    if (a.lse) a.lse[bh * a.nq + i0 + r] = m[r] + std::log(l[r]);
  }
}

// ---- backward ---------------------------------------------------------------------------------

int64_t backward_scratch(int64_t d, int64_t nq) {
  int64_t dp = round_up(d, kW);
  return 2 * region(d * kBlockMax) + 5 * region(kBlockMax * dp) + 2 * region(kBlockMax * kBlockMax) + region(nq);
}

// Key blocks [kb0, kb1) of one (batch, head): writes their rows of dK and dV, and this group's
// unscaled dQ contribution into dq_part (nq × dp).
void backward_group(const AttentionBackwardArgs& a, int64_t bh, int64_t kb0, int64_t kb1, float* dq_part,
                    float* buf) {
  const int64_t d = a.d, dp = round_up(d, kW), nvd = dp / kW;
  const int64_t b = bh / a.heads, h = bh % a.heads;
  const float* q = a.q.data + b * a.q.sb + h * a.q.sh;
  const float* k = a.k.data + b * a.k.sb + h * a.k.sh;
  const float* v = a.v.data + b * a.v.sb + h * a.v.sh;
  const float* o = a.o.data + b * a.o.sb + h * a.o.sh;
  const float* dout = a.dout.data + b * a.dout.sb + h * a.dout.sh;
  const float* lse = a.lse + bh * a.nq;
  constexpr int64_t ld = kBlockMax;
  float* kt = buf;                          // Kᵀ block: (d, ld), key columns
  float* vt = kt + region(d * ld);          // Vᵀ block: (d, ld)
  float* kp = vt + region(d * ld);          // K block: (keys, dp)
  float* dk = kp + region(ld * dp);         // dK block accumulator: (keys, dp)
  float* dv = dk + region(ld * dp);         // dV block accumulator: (keys, dp)
  float* qs = dv + region(ld * dp);         // scale · Q block: (queries, dp)
  float* dop = qs + region(ld * dp);        // dO block: (queries, dp)
  float* p = dop + region(ld * dp);         // S, then P: (queries, ld)
  float* ds = p + region(ld * ld);          // dP, then dS: (queries, ld)
  float* delta = ds + region(ld * ld);      // Dvec_i = dO_i · O_i: (nq)

  for (int64_t i = 0; i < a.nq; ++i) delta[i] = row_dot(dout + i * a.dout.sn, o + i * a.o.sn, d);
  const Blocks keys(a.nk, kBlock), queries(a.nq, kBlock);
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    const int64_t j0 = keys.begin(kb), mk = keys.end(kb) - j0, nvk = ceil_div(mk, kW);
    pack_transposed(kt, ld, k + j0 * a.k.sn, a.k.sn, mk, d, 1.0f);
    pack_transposed(vt, ld, v + j0 * a.v.sn, a.v.sn, mk, d, 1.0f);
    for (int64_t r = 0; r < mk; ++r) pack_row(kp + r * dp, k + (j0 + r) * a.k.sn, d, 1.0f);
    for (int64_t qb = 0; qb < queries.count; ++qb) {
      const int64_t i0 = queries.begin(qb), mq = queries.end(qb) - i0;
      const Init first_q = qb == 0 ? Init::zero : Init::accumulate;
      for (int64_t r = 0; r < mq; ++r) {
        pack_row(qs + r * dp, q + (i0 + r) * a.q.sn, d, a.scale);
        pack_row(dop + r * dp, dout + (i0 + r) * a.dout.sn, d, 1.0f);
      }
      // S (mq × mk) = Qs · Kᵀ;  P = exp(S - L), zero in the padded key columns.
      block_gemm(p, ld, qs, dp, 1, kt, ld, mq, nvk, d, Init::zero);
      for (int64_t r = 0; r < mq; ++r) {
        float* row = p + r * ld;
        VF lr = VF::set1(lse[i0 + r]);
        for (int64_t j = 0; j < nvk; ++j) exp_v(VF::load(row + j * kW) - lr).store(row + j * kW);
        for (int64_t j = mk; j < nvk * kW; ++j) row[j] = 0.0f;
      }
      // dV (mk × dp) += Pᵀ · dO
      block_gemm(dv, dp, p, 1, ld, dop, dp, mk, nvd, mq, first_q);
      // dP (mq × mk) = dO · Vᵀ;  dS = P ∘ (dP - Dvec)
      block_gemm(ds, ld, dop, dp, 1, vt, ld, mq, nvk, d, Init::zero);
      for (int64_t r = 0; r < mq; ++r) {
        float* dsr = ds + r * ld;
        const float* pr = p + r * ld;
        VF dr = VF::set1(delta[i0 + r]);
        for (int64_t j = 0; j < nvk; ++j) (VF::load(pr + j * kW) * (VF::load(dsr + j * kW) - dr)).store(dsr + j * kW);
      }
      // dQ_part (mq × dp) += dS · K;  dK (mk × dp) += dSᵀ · Qs
      block_gemm(dq_part + i0 * dp, dp, ds, ld, 1, kp, dp, mq, nvd, mk, kb == kb0 ? Init::zero : Init::accumulate);
      block_gemm(dk, dp, ds, 1, ld, qs, dp, mk, nvd, mq, first_q);
    }
    for (int64_t r = 0; r < mk; ++r) {
      store_row(a.dk.data + b * a.dk.sb + h * a.dk.sh + (j0 + r) * a.dk.sn, dk + r * dp, d, 1.0f);
      store_row(a.dv.data + b * a.dv.sb + h * a.dv.sh + (j0 + r) * a.dv.sn, dv + r * dp, d, 1.0f);
    }
  }
}

void zero_rows(const AttnOut& t, int64_t batch, int64_t heads, int64_t n, int64_t d) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < n; ++i) std::fill_n(t.data + b * t.sb + h * t.sh + i * t.sn, d, 0.0f);
}

}  // namespace

void attention_forward(const AttentionForwardArgs& a) {
  const int64_t pairs = a.batch * a.heads;
  if (pairs == 0 || a.nq == 0) return;
  // Query blocks of kBlock rows, or of fewer rows (a multiple of 16, at least kMinBlockQ) when B·H
  // alone gives too few tasks. Each query row's result is independent of how rows are grouped.
  int64_t rows = kBlock;
  if (pairs * Blocks(a.nq, kBlock).count < kTargetTasks)
    rows = std::max(kMinBlockQ, round_up(ceil_div(pairs * a.nq, kTargetTasks), 16));
  const Blocks queries(a.nq, rows);
  const int64_t need = forward_scratch(a.d);
  parallel_for(pairs * queries.count, 1, [&](int64_t t0, int64_t t1) {
    float* buf = scratch(need);
    for (int64_t t = t0; t < t1; ++t) {
      int64_t bh = t / queries.count, qb = t % queries.count;
      forward_block(a, bh, queries.begin(qb), queries.end(qb) - queries.begin(qb), buf);
    }
  });
}

void attention_backward(const AttentionBackwardArgs& a) {
  const int64_t pairs = a.batch * a.heads;
  if (pairs == 0) return;
  if (a.nq == 0) {  // no queries: every key and value gradient is an empty sum
    zero_rows(a.dk, a.batch, a.heads, a.nk, a.d);
    zero_rows(a.dv, a.batch, a.heads, a.nk, a.d);
    return;
  }
  const int64_t dp = round_up(a.d, kW), nkb = Blocks(a.nk, kBlock).count, part = a.nq * dp;
  int64_t groups = std::min(nkb, ceil_div(kTargetTasks, pairs));
  groups = std::max<int64_t>(1, std::min(groups, kMaxPartialFloats / (pairs * part)));
  std::unique_ptr<float[]> dq_part(new float[pairs * groups * part]);
  const int64_t need = backward_scratch(a.d, a.nq);
  parallel_for(pairs * groups, 1, [&](int64_t t0, int64_t t1) {
    float* buf = scratch(need);
    for (int64_t t = t0; t < t1; ++t) {
      int64_t bh = t / groups, g = t % groups;
      backward_group(a, bh, g * nkb / groups, (g + 1) * nkb / groups, dq_part.get() + t * part, buf);
    }
  });
  // dQ = scale · sum over groups, in group order.
  parallel_for(pairs * a.nq, std::max<int64_t>(1, 16384 / (dp * groups)), [&](int64_t r0, int64_t r1) {
    float* sum = scratch(dp);
    for (int64_t row = r0; row < r1; ++row) {
      int64_t bh = row / a.nq, i = row % a.nq, b = bh / a.heads, h = bh % a.heads;
      float* dst = a.dq.data + b * a.dq.sb + h * a.dq.sh + i * a.dq.sn;
      const float* src = dq_part.get() + bh * groups * part + i * dp;
      for (int64_t c = 0; c < dp; c += kW) {
        VF s = VF::load(src + c);
        for (int64_t g = 1; g < groups; ++g) s = s + VF::load(src + g * part + c);
        s.store(sum + c);
      }
      store_row(dst, sum, a.d, a.scale);
    }
  });
}

}  // namespace dv::cpu::DV_ISA
