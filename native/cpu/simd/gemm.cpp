// GEMM, GotoBLAS/BLIS style: op(A) and op(B) are packed into cache-sized, k-major panels and an
// MR x NR register-blocked micro-kernel runs over them. Compiled once per ISA level.
//
// Loop nest for one work item (a rectangle of one batch item's C), as in BLIS:
//   jc over N in NC columns
//     pc over K in KC rows         pack B[pc:, jc:] into NR-wide panels   (L3)
//       ic over M in MC rows       pack A[ic:, pc:] into MR-tall panels   (L2)
//         jr over NR columns       one KC x NR panel of B                 (L1/L2)
//           ir over MR rows        micro-kernel: MR x NR tile of C += A panel * B panel
//
// Micro-tiles and blocking, per level, measured on a 2-core Zen 5 EPYC (1 MB L2, 48 KB L1d; single
// thread, best of 3; a hand-written FMA loop peaks at 210 GFLOP/s with zmm, 105 with ymm):
//   avx512  14 x 32  28 zmm accumulators; per k: 2 loads of B, 14 broadcasts of A, 28 FMAs.
//                    12x32, 8x48 and 6x64 ran within ~5% of it on square sizes (8x48 slightly
//                    ahead at 1024-2048) but 8x48 was 14% slower on the 65 x 64 attention batches,
//                    and 32 divides the model widths 256 and 1024 where 48 does not.
//                    KC 512 / MC 336 beat KC 256 / MC 280 by 3-7% at 1024^3-2048^3: the KC x 32 B
//                    panel (64 KB) then streams from L2, but C is read and written half as often.
//   avx2      6 x 16  12 ymm accumulators (BLIS haswell shape); 90-103 GFLOP/s of 105.
//   scalar    4 x 8   plain float arrays the compiler vectorises (28 GFLOP/s with SSE2); 4x16,
//                    6x8 and 8x8 ran 4-5x slower.
// Edge tiles use the same kernel instantiated for fewer rows (MRr < MR) and fewer vectors of
// columns, with masked (avx512) or staged (avx2, scalar) stores of the last partial vector.
//
// Determinism: K is cut into KC blocks by k alone, and every C element is one FMA chain over p
// inside a block, blocks added into C in order. The M/N/batch split into work items (which does
// depend on the thread count) therefore never changes any element's value.
//
// alpha is folded into the packed A; beta is applied when the first K block is stored
// (beta == 0 never reads C, so C may hold garbage); later K blocks accumulate into C.
//
// Epilogue (GemmArgs bias/act/pre): the last K block's micro-kernel adds the bias, writes the
// pre-activation copy and applies the activation to its accumulators as it stores the tile. A
// Linear + GELU then costs no pass over C beyond the GEMM's own.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <utility>

#include "core/thread_pool.h"
#include "cpu/gemm.h"
#include "cpu/simd/activation.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr int W = VF::W;
#if defined(DV_ISA_AVX512)
constexpr int kMR = 14, kNV = 2;
constexpr int64_t kKC = 512, kMC = 336, kNC = 3072;
#elif defined(DV_ISA_AVX2)
constexpr int kMR = 6, kNV = 2;
constexpr int64_t kKC = 512, kMC = 192, kNC = 3072;
#else
constexpr int kMR = 4, kNV = 8;
constexpr int64_t kKC = 256, kMC = 128, kNC = 2048;
#endif
constexpr int kNR = kNV * W;  // columns of a micro-tile
static_assert(kMC % kMR == 0, "MC must be a whole number of micro-panels");

// ---- thread-local, 64-byte aligned packing buffers, grown on demand and reused ----

class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(data_); }
  float* get(int64_t floats) {
    if (floats > cap_) {
      std::free(data_);
      data_ = nullptr;
      size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      cap_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t cap_ = 0;
};
thread_local PackBuffer t_pack_a, t_pack_b;

// ---- B packed once for all M parts of a GEMM ----
//
// When the work items of a single GEMM differ only in their rows (plan() splits M alone), they
// all need the same packed B. Instead of every item packing all of it (with 2 threads at 1024^3
// that doubled the packing per multiply-add and held 2-thread GEMMs to 74% of the FMA peak against
// 86% on one thread), the packed B lives in one buffer of the calling thread and each micro-panel
// is packed by whichever item reaches it first: an item claims the free panels of a (jc, pc)
// block, packs them, then waits for the panels other items claimed. A claimed panel is always
// being packed by a running thread, so the wait ends even when one thread runs every item.
// The packed values are the same whoever packs them, so results do not change.
struct SharedB {
  float* data;
  std::atomic<uint8_t>* state;  // per micro-panel: 0 free, 1 being packed, 2 packed
  int64_t pc_blocks, panels, block_floats;

  // The block (jc, pc) of the tile loops, jc and pc in units of their block sizes.
  float* block(int64_t jcb, int64_t pcb) const { return data + (jcb * pc_blocks + pcb) * block_floats; }

  // Ensures every micro-panel of block (jcb, pcb) is packed; pack(jr_panel, dst) packs one.
  template <typename Pack>
  const float* ready(int64_t jcb, int64_t pcb, int64_t block_panels, int64_t panel_floats, Pack pack) const {
    float* dst = block(jcb, pcb);
    std::atomic<uint8_t>* flags = state + (jcb * pc_blocks + pcb) * panels;
    for (int64_t p = 0; p < block_panels; ++p) {
      uint8_t free = 0;
      if (flags[p].compare_exchange_strong(free, 1, std::memory_order_acq_rel)) {
        pack(p, dst + p * panel_floats);
        flags[p].store(2, std::memory_order_release);
      }
    }
    for (int64_t p = 0; p < block_panels; ++p) {
      while (flags[p].load(std::memory_order_acquire) != 2) std::this_thread::yield();
    }
    return dst;
  }
};

// The calling thread's shared-B storage, grown on demand (a fresh 8 MB buffer per GEMM would cost
// its page faults every call).
class SharedBStorage {
 public:
  SharedB get(int64_t pc_blocks, int64_t jc_blocks, int64_t panels, int64_t block_floats) {
    const int64_t flags = jc_blocks * pc_blocks * panels;
    if (flags > flag_cap_) {
      flags_.reset(new std::atomic<uint8_t>[static_cast<size_t>(flags)]);
      flag_cap_ = flags;
    }
    for (int64_t i = 0; i < flags; ++i) flags_[i].store(0, std::memory_order_relaxed);
    return SharedB{data_.get(jc_blocks * pc_blocks * block_floats), flags_.get(), pc_blocks, panels, block_floats};
  }

 private:
  PackBuffer data_;
  std::unique_ptr<std::atomic<uint8_t>[]> flags_;
  int64_t flag_cap_ = 0;
};
thread_local SharedBStorage t_shared_b;

// ---- per-ISA helpers: store of the first n lanes ----

#if defined(DV_ISA_AVX512)
inline __mmask16 lanes(int n) { return static_cast<__mmask16>((1u << n) - 1); }
inline void store_n(float* p, VF v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v.v); }
#elif defined(DV_ISA_AVX2)
// AVX2 masked stores are slow on AMD; stage through the stack instead.
inline void store_n(float* p, VF v, int n) {
  if (n == W) return v.store(p);
  alignas(32) float tmp[W];
  v.store(tmp);
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
#else
inline void store_n(float* p, VF v, int n) { v.store_partial(p, n); }
#endif

// ---- packing ----

// Packs op(A)[i0:i0+mc, p0:p0+kc] * alpha into panels of kMR rows (the last may be shorter):
// panel r holds, for each p, its rows' values contiguously: dst[r*kMR*kc + p*mr + i].
void pack_a(const GemmArgs& g, const float* A, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  const VF alpha = VF::set1(g.alpha);
  const bool scale = g.alpha != 1.0f;
  for (int64_t ir = 0; ir < mc; ir += kMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
    float* out = dst + ir * kc;
    if (g.trans_a) {
      // A stored k x m: each p is a contiguous run of the panel's rows.
      const float* src = A + p0 * g.lda + i0 + ir;
      for (int64_t p = 0; p < kc; ++p) {
        const float* s = src + p * g.lda;
        for (int i = 0; i < mr; i += W) {
          const int n = std::min(W, mr - i);
          VF v = n == W ? VF::load(s + i) : VF::load_partial(s + i, n);
          store_n(out + p * mr + i, scale ? v * alpha : v, n);
        }
      }
    } else {
      // A stored m x k: transpose W x W blocks (rows i of the panel x W consecutive p).
      const float* src = A + (i0 + ir) * g.lda + p0;
      for (int i = 0; i < mr; i += W) {
        const int ni = std::min(W, mr - i);
        for (int64_t p = 0; p < kc; p += W) {
          const int np = static_cast<int>(std::min<int64_t>(W, kc - p));
          VF r[W];
          for (int q = 0; q < W; ++q) {
            r[q] = VF::zero();
            if (q < ni) r[q] = np == W ? VF::load(src + (i + q) * g.lda + p) : VF::load_partial(src + (i + q) * g.lda + p, np);
          }
          transpose(r);
          for (int q = 0; q < np; ++q) store_n(out + (p + q) * mr + i, scale ? r[q] * alpha : r[q], ni);
        }
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] into panels of kNR columns: panel c holds, for each p, its
// columns contiguously, dst[c*kNR*kc + p*s + j] with s = its width rounded up to whole vectors
// (zero-padded, so the kernel's spare lanes compute harmless zeros).
void pack_b(const GemmArgs& g, const float* B, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
    const int nv = (nr + W - 1) / W, s = nv * W;
    float* out = dst + jr * kc;
    if (!g.trans_b) {
      // B stored k x n: each p is a contiguous run of the panel's columns.
      const float* src = B + p0 * g.ldb + j0 + jr;
      for (int64_t p = 0; p < kc; ++p) {
        const float* row = src + p * g.ldb;
        for (int v = 0; v < nv; ++v) {
          const int n = std::min(W, nr - v * W);
          (n == W ? VF::load(row + v * W) : VF::load_partial(row + v * W, n)).store(out + p * s + v * W);
        }
      }
    } else {
      // B stored n x k: transpose W x W blocks (W columns j of op(B) x W consecutive p).
      const float* src = B + (j0 + jr) * g.ldb + p0;
      for (int v = 0; v < nv; ++v) {
        const int nj = std::min(W, nr - v * W);
        for (int64_t p = 0; p < kc; p += W) {
          const int np = static_cast<int>(std::min<int64_t>(W, kc - p));
          VF r[W];
          for (int q = 0; q < W; ++q) {
            r[q] = VF::zero();
            if (q < nj) r[q] = np == W ? VF::load(src + (v * W + q) * g.ldb + p) : VF::load_partial(src + (v * W + q) * g.ldb + p, np);
          }
          transpose(r);
          for (int q = 0; q < np; ++q) r[q].store(out + (p + q) * s + v * W);
        }
      }
    }
  }
}

// ---- bf16 precision, emulated: the packed panels are rounded, then the fp32 kernel runs ----

// x rounded to bfloat16 and widened back to fp32 bits, exactly as VCVTNEPS2BF16 rounds: to
// nearest even, zero and subnormal inputs to signed zero, NaN to a quiet NaN.
inline uint32_t bf16_round_bits(uint32_t x) {
  const uint32_t mag = x & 0x7fffffffu;
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
  const uint32_t nan = (x | 0x00400000u) & 0xffff0000u;
  return mag > 0x7f800000u ? nan : mag < 0x00800000u ? x & 0x80000000u : rounded;
}

// Rounds n packed floats in place (branch-free, so the compiler vectorises it). A product of two
// bf16 values is exact in fp32, so the fp32 kernel then computes what vdpbf16ps computes.
void round_to_bf16(float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t x;
    std::memcpy(&x, p + i, sizeof x);
    x = bf16_round_bits(x);
    std::memcpy(p + i, &x, sizeof x);
  }
}

// ---- epilogue ----

// The pre-activation copy is only read by the backward pass, long after: where its vectors are
// aligned it bypasses the caches (non-temporal stores), which took its store in fc1's forward
// (2048 x 1024, bf16, 2 threads, Zen 4) from 0.8 to 0.3 ms, the plain stores costing a read of
// each line and evicting the GEMM's operands. The tile functions end with streaming_fence().
inline void store_streaming(float* p, VF v, int n) {
#if defined(DV_ISA_AVX512)
  if (n == W && (reinterpret_cast<uintptr_t>(p) & 63) == 0) return _mm512_stream_ps(p, v.v);
#elif defined(DV_ISA_AVX2)
  if (n == W && (reinterpret_cast<uintptr_t>(p) & 31) == 0) return _mm256_stream_ps(p, v.v);
#endif
  store_n(p, v, n);
}
// Orders this thread's non-temporal stores before whatever it does next (e.g. reporting its work
// item done to the thread that returns to JS).
inline void streaming_fence() {
#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)
  _mm_sfence();
#endif
}

// The epilogue of one tile: C = act(C + bias), pre = C + bias, applied by the micro-kernel as it
// stores the tile after the last K block, so C is written once. Applied to the stored tile
// afterwards, it reloaded every vector: a bias cost 0.4 ms over the plain 2048 x 1024 x 256 bf16
// GEMM (2 threads, Zen 4) and costs 0.05 ms now; with GELU and pre (fc1) 3.5 -> 3.0 ms.
struct TileEpilogue {
  const float* bias;  // at the tile's first column, or null
  float* pre;         // at the tile's first element (C's row stride), or null
  bool gelu;
};

inline TileEpilogue tile_epilogue(const GemmArgs& g, float* pre, int64_t col) {
  return {g.bias ? g.bias + col : nullptr, pre, g.act == GemmAct::gelu_tanh};
}

// The finished value of the n lanes of v at row-major offset `at` of the tile, column j.
inline VF finish(const TileEpilogue& e, VF v, int64_t at, int64_t j, int n) {
  if (e.bias) v = v + (n == W ? VF::load(e.bias + j) : VF::load_partial(e.bias + j, n));
  if (e.pre) store_streaming(e.pre + at, v, n);
  return e.gelu ? vgelu(v) : v;
}

// ---- micro-kernels ----

// C[0:MRr, 0:nr] = A panel (kc x MRr) * B panel (kc x NV*W) + beta * C  (beta == 0: C not read),
// finished by `epi` when not null. nr > (NV-1)*W: only the last vector of columns can be partial.
using Kernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int nr, float beta,
                        const TileEpilogue* epi);

#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)
// Stores r, the product's vector at column j of the tile row `row` (row-major offset `at` of the
// tile), as r + beta * C (beta == 0: C not read), finished by `epi` when not null, n lanes of it.
inline void store_vector(VF r, float* row, int64_t at, int j, int n, float beta, const TileEpilogue* epi) {
  if (beta != 0.0f) r = fmadd(n == W ? VF::load(row + j) : VF::load_partial(row + j, n), VF::set1(beta), r);
  if (epi) r = finish(*epi, r, at, j, n);
  if (n == W) {
    r.store(row + j);
  } else {
    store_n(row + j, r, n);
  }
}

// C[0:MRr, 0:nr] = acc + beta * C (beta == 0: C not read), finished by `epi` when not null; only
// the last vector may be partial. Acc: VF, or the raw register type of a kernel written with
// intrinsics (bf16).
template <int MRr, int NV, typename Acc>
inline void store_tile(const Acc (&acc)[MRr][NV], float* c, int64_t ldc, int nr, float beta, const TileEpilogue* epi) {
  const int last = nr - (NV - 1) * W;  // lanes of the last vector to store, 1..W
#pragma GCC unroll 16
  for (int i = 0; i < MRr; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) store_vector(acc[i][v], c + i * ldc, i * ldc + v * W, v * W, v == NV - 1 ? last : W, beta, epi);
  }
}

template <int MRr, int NV>
void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int nr,
                  float beta, const TileEpilogue* epi) {
  VF acc[MRr][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MRr; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = VF::zero();
  for (int64_t p = 0; p < kc; ++p) {
    VF bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = VF::load(b + p * NV * W + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MRr; ++i) {
      const VF av = VF::set1(a[p * MRr + i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = fmadd(av, bv[v], acc[i][v]);
    }
  }
  store_tile(acc, c, ldc, nr, beta, epi);
}
#else
template <int MRr, int NV>
void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int nr,
                  float beta, const TileEpilogue* epi) {
  float acc[MRr][NV] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* bp = b + p * NV;
    for (int i = 0; i < MRr; ++i) {
      const float av = a[p * MRr + i];
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bp[j];
    }
  }
  for (int i = 0; i < MRr; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < nr; ++j) {
      const float r = beta == 0.0f ? acc[i][j] : acc[i][j] + beta * row[j];
      row[j] = epi ? finish(*epi, r, i * ldc + j, j, 1).v : r;
    }
  }
}
#endif

// kernel_table<Pick>()[mr - 1][nv - 1] = Pick<mr, nv>::fn, the kernel for an mr-row tile of nv
// vectors of columns (Pick names one micro-kernel template: fp32 here, bf16 below).
template <template <int, int> class Pick, int MRr, int... NVs>
constexpr std::array<Kernel, kNV> kernel_row(std::integer_sequence<int, NVs...>) {
  return {Pick<MRr, NVs + 1>::fn...};
}
template <template <int, int> class Pick, int... MRs>
constexpr std::array<std::array<Kernel, kNV>, kMR> kernel_table(std::integer_sequence<int, MRs...>) {
  return {kernel_row<Pick, MRs + 1>(std::make_integer_sequence<int, kNV>{})...};
}
template <int MRr, int NV>
struct Fp32Kernel {
  static constexpr Kernel fn = &micro_kernel<MRr, NV>;
};
constexpr auto kKernels = kernel_table<Fp32Kernel>(std::make_integer_sequence<int, kMR>{});

// ---- driver ----

// Starts fetching a C tile that the kernel reads or writes only after its k loop: the tile was
// last touched a whole K block ago (or never). Best of 4: 196 vs 187 GFLOP/s at 1024^3, equal at
// 512^3 and 2048^3. (Prefetching inside the kernel made GCC keep the row pointers live across the
// k loop and spill an accumulator: 30% slower.)
inline void prefetch_tile(const float* c, int64_t ldc, int mr, int nr) {
#if defined(DV_ISA_AVX512) || defined(DV_ISA_AVX2)
  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + nr - 1), _MM_HINT_T0);
  }
#else
  (void)c, (void)ldc, (void)mr, (void)nr;
#endif
}

inline bool has_epilogue(const GemmArgs& g) { return g.bias || g.act != GemmAct::none || g.pre; }

// The epilogue on rows [0, mr) x columns [0, nr) of C at c (and of pre at p, or null), whose
// first column is column `col` of the whole C: for C = beta * C without a product (scale_c).
void epilogue(const GemmArgs& g, float* c, float* p, int64_t mr, int64_t nr, int64_t col) {
  const TileEpilogue e = tile_epilogue(g, p, col);
  for (int64_t i = 0; i < mr; ++i) {
    float* row = c + i * g.ldc;
    for (int64_t j = 0; j < nr; j += W) {
      const int n = static_cast<int>(std::min<int64_t>(W, nr - j));
      store_n(row + j, finish(e, n == W ? VF::load(row + j) : VF::load_partial(row + j, n), i * g.ldc + j, j, n), n);
    }
  }
}

// Splits [0, n) into ceil(n / max_block) nearly equal blocks, each rounded up to a multiple of
// `align`. Depends on n only, which keeps the K blocking (and so every result) thread-independent.
int64_t block_size(int64_t n, int64_t max_block, int64_t align) {
  int64_t blocks = (n + max_block - 1) / max_block;
  int64_t size = (n + blocks - 1) / blocks;
  return (size + align - 1) / align * align;
}

// C[i0:i1, j0:j1] of one batch item (P: the item's pre-activation output, or null); B's panels
// come from `shared` when the GEMM's M parts share them.
void gemm_tile(const GemmArgs& g, const float* A, const float* B, float* C, float* P, int64_t i0, int64_t i1,
               int64_t j0, int64_t j1, const SharedB* shared) {
  const bool epi = has_epilogue(g);
  const int64_t kc_max = block_size(g.k, kKC, 1);
  const int64_t mc_max = block_size(i1 - i0, kMC, kMR);
  const int64_t nc_max = block_size(j1 - j0, kNC, kNR);
  float* pa = t_pack_a.get(mc_max * kc_max);
  float* pb = shared ? nullptr : t_pack_b.get(nc_max * kc_max);  // a shared B needs no own buffer
  for (int64_t jc = j0; jc < j1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, j1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
      const bool last = pc + kc == g.k;
      const bool round = g.precision == MatmulPrecision::bf16;
      const float* pb_block = pb;
      if (shared) {
        pb_block = shared->ready((jc - j0) / nc_max, pc / kc_max, (nc + kNR - 1) / kNR, kNR * kc, [&](int64_t panel, float* dst) {
          const int64_t nr = std::min<int64_t>(kNR, nc - panel * kNR);
          pack_b(g, B, pc, kc, jc + panel * kNR, nr, dst);
          if (round) round_to_bf16(dst, kc * ((nr + W - 1) / W * W));
        });
      } else {
        pack_b(g, B, pc, kc, jc, nc, pb);
        if (round) round_to_bf16(pb, kc * ((nc + W - 1) / W * W));
      }
      for (int64_t ic = i0; ic < i1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, i1 - ic);
        pack_a(g, A, ic, mc, pc, kc, pa);
        if (g.precision == MatmulPrecision::bf16) round_to_bf16(pa, mc * kc);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          const int nv = (nr + W - 1) / W;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
            float* c = C + (ic + ir) * g.ldc + jc + jr;
            prefetch_tile(c, g.ldc, mr, nr);
            const TileEpilogue e = tile_epilogue(g, P ? P + (c - C) : nullptr, jc + jr);
            kKernels[mr - 1][nv - 1](kc, pa + ir * kc, pb_block + jr * kc, c, g.ldc, nr, beta, epi && last ? &e : nullptr);
          }
        }
      }
    }
  }
  if (P) streaming_fence();
}

// C = beta * C (k == 0 or alpha == 0: BLAS semantics, A and B are not read), then the epilogue.
void scale_c(const GemmArgs& g) {
  const bool epi = has_epilogue(g);
  parallel_for(g.batch * g.m, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t at = (r / g.m) * g.stride_c + (r % g.m) * g.ldc;
      float* row = g.c + at;
      if (g.beta == 0.0f) {
        std::fill(row, row + g.n, 0.0f);
      } else {
        for (int64_t j = 0; j < g.n; ++j) row[j] *= g.beta;
      }
      if (epi) epilogue(g, row, g.pre ? g.pre + at : nullptr, 1, g.n, 0);
    }
    if (g.pre) streaming_fence();
  });
}

int64_t gcd(int64_t a, int64_t b) { return b == 0 ? a : gcd(b, a % b); }

// Below this many multiply-adds a GEMM (or one work item) is not worth a thread hand-off.
constexpr double kMinParallelMacs = 1 << 20;

// How the GEMM is cut into work items: each batch item's C into pm x pn rectangles of whole
// micro-tiles (mt x nt of them per item).
struct Split {
  const GemmArgs* g;
  int64_t mt, nt, pm = 1, pn = 1;
  bool share_b = false;             // the pm parts (pn == 1) share one packed B ...
  const SharedB* shared = nullptr;  // ... this one, set up by run_tiles
};

// Largest packed B (floats) that M parts share; beyond it each part packs its own blocks.
constexpr int64_t kMaxSharedB = int64_t{1} << 24;

// Few batch items: cut each so that batch * parts is a multiple of the thread count (equal shares)
// and, work permitting, 2 items per thread, so a thread that is descheduled or starts late holds
// up the others by half a share at most. (Finer cuts cost more redundant packing: each M part packs
// all of its B columns, each N part all of its A rows, i.e. pm/m + pn/n packed elements per
// multiply-add: with 2 threads, the 256 x 1024 x 2048 weight gradient ran at 304, 300 and 255
// GFLOP/s with 1, 2 and 4 items per thread, best of 5.)
// Among the pm x pn = parts factorings pick the one that packs least. A single GEMM cut along M
// alone packs B once (SharedB): n + m per multiply-add, the least there is, when each part still
// has 4 or more micro-tile rows (finer M parts would be uneven).
Split plan(const GemmArgs& g, int64_t threads) {
  const int64_t mt = (g.m + kMR - 1) / kMR, nt = (g.n + kNR - 1) / kNR;
  Split s{&g, mt, nt};
  const double macs = static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  if (threads <= 1 || static_cast<double>(g.batch) * macs < kMinParallelMacs || g.batch >= 4 * threads) return s;
  const int64_t base = threads / gcd(g.batch, threads);
  int64_t parts = base;
  while (g.batch * parts < 2 * threads && static_cast<double>(parts + base) * kMinParallelMacs <= macs) parts += base;
  parts = std::min(parts, mt * nt);
  double best = -1;
  for (int64_t pm = 1; pm <= parts; ++pm) {
    const int64_t pn = parts / pm;
    if (parts % pm != 0 || pm > mt || pn > nt) continue;
    const bool share_b = g.batch == 1 && pn == 1 && pm > 1 && mt >= 4 * pm && g.k * nt * kNR <= kMaxSharedB;
    const double cost = static_cast<double>(share_b ? 1 : pm) * static_cast<double>(g.n) + static_cast<double>(pn) * g.m;
    if (best < 0 || cost < best) best = cost, s.pm = pm, s.pn = pn, s.share_b = share_b;
  }
  if (best < 0) s.pm = std::min(parts, mt), s.pn = std::min((parts + s.pm - 1) / s.pm, nt);
  return s;
}

}  // namespace

// Runs tile(g, A, B, C, P, i0, i1, j0, j1, shared) over the work split of plan(): every batch
// item's nearly equal runs of whole micro-tiles, so results do not depend on the thread count.
// The tile blocks K in k_block, aligned to k_align, with k_per_float values of k per packed float
// (2 for bf16 pairs), which lays out a shared B.
template <typename Tile>
void run_tiles(const GemmArgs& g, Tile tile, int64_t k_block, int64_t k_align, int64_t k_per_float) {
  if (g.batch <= 0 || g.m <= 0 || g.n <= 0) return;
  if (g.k == 0 || g.alpha == 0.0f) return scale_c(g);
  Split s = plan(g, num_threads());
  const int64_t items = g.batch * s.pm * s.pn;
  const double macs = static_cast<double>(g.batch) * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  SharedB shared{};
  if (s.share_b) {
    const int64_t kc_max = block_size(g.k, k_block, k_align), nc_max = block_size(g.n, kNC, kNR);
    const int64_t panels = (nc_max + kNR - 1) / kNR;
    shared = t_shared_b.get((g.k + kc_max - 1) / kc_max, (g.n + nc_max - 1) / nc_max, panels,
                            panels * kNR * ((kc_max + k_per_float - 1) / k_per_float));
    s.shared = &shared;
  }
  // One captured reference and a function pointer keep the std::function in its small buffer.
  parallel_for(items, macs < kMinParallelMacs ? items : 1, [&s, tile](int64_t t0, int64_t t1) {
    const GemmArgs& g = *s.g;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bi = t / (s.pm * s.pn), im = t % (s.pm * s.pn) / s.pn, jn = t % s.pn;
      const int64_t i0 = std::min(g.m, s.mt * im / s.pm * kMR), i1 = std::min(g.m, s.mt * (im + 1) / s.pm * kMR);
      const int64_t j0 = std::min(g.n, s.nt * jn / s.pn * kNR), j1 = std::min(g.n, s.nt * (jn + 1) / s.pn * kNR);
      if (i0 >= i1 || j0 >= j1) continue;
      tile(g, g.a + bi * g.stride_a, g.b + bi * g.stride_b, g.c + bi * g.stride_c,
           g.pre ? g.pre + bi * g.stride_c : nullptr, i0, i1, j0, j1, s.shared);
    }
  });
}

void gemm(const GemmArgs& g) { run_tiles(g, gemm_tile, kKC, 1, 1); }

#if defined(DV_ISA_AVX512)
// ---- bf16 precision on AVX512_BF16 (cpu/gemm.h; dispatched only where the CPU has it) ----
//
// vdpbf16ps adds, in each of 16 fp32 lanes, the products of one pair of bf16 values from each
// operand, so the packed panels hold k in pairs, each pair one 32-bit word (low half: even k):
//   A panel r, pair q: dst[r*kMR*kq + q*mr + i] = (a[i][2q], a[i][2q+1])   (kq = ceil(kc / 2))
//   B panel c, pair q: dst[c*kNR*kq + q*s + j]  = (b[2q][j], b[2q+1][j])
// and an odd kc's missing k is zero in both. pack_a_bf16 / pack_b_bf16 (every layout, alpha folded
// into A) convert straight from the operand.
// The micro-tile is fp32's 14 x 32 (28 zmm accumulators, so plan() splits work identically); each
// step is two k per instruction: 2 loads of B pairs, 14 broadcasts of A pairs, 28 vdpbf16ps.
// KC counts k and is even (whole pairs) in every K block but the last.
#define DV_TARGET_BF16 __attribute__((target("avx512bf16")))

namespace {

// Twice fp32's KC in k: the same bytes per packed panel (a 64 KB B micro-panel streamed from L2,
// a 688 KB A block), so one K block covers k = 1024 (fc2's forward). KC 512 and 2048 (MC 168)
// measured within noise of it on a shared 2-core Zen 5 (1024^3, 2048^3, the model's dW shapes).
constexpr int64_t kKC16 = 1024, kMC16 = 336;

// The packers read fp32 straight from the operand and write pairs in one pass (packing in fp32
// first and converting after took twice as long: 13 % of a 1-thread bf16 GEMM, against 82 % in
// the micro-kernel, on a Zen 4).

// The bf16 pairs (alpha * even[j], alpha * odd[j]) of columns j < cols (zero beyond, and for a
// null odd row) as 16 32-bit words, the even value in the low half.
DV_TARGET_BF16 inline __m512i pairs_of_rows(const float* even, const float* odd, int cols, float alpha) {
  // vcvtne2ps2bf16 puts the even row's 16 values in the low half and the odd row's in the high
  // half; word 2t of a pair vector takes element t, word 2t+1 element 16 + t.
  const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                              21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __mmask16 load = lanes(cols);
  VF lo = _mm512_maskz_loadu_ps(load, even);
  VF hi = odd ? VF(_mm512_maskz_loadu_ps(load, odd)) : VF::zero();
  if (alpha != 1.0f) lo = lo * VF::set1(alpha), hi = hi * VF::set1(alpha);
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(hi.v, lo.v));
}

// The bf16 pairs (alpha * k[2u], alpha * k[2u+1]) of n (<= 32) neighbouring values k as 16 32-bit
// words, zero past n: pairs along one stored row.
DV_TARGET_BF16 inline VF pairs_along(const float* k, int n, float alpha) {
  VF lo = _mm512_maskz_loadu_ps(lanes(std::min(n, W)), k), hi = _mm512_maskz_loadu_ps(lanes(std::max(n - W, 0)), k + W);
  if (alpha != 1.0f) lo = lo * VF::set1(alpha), hi = hi * VF::set1(alpha);
  return (__m512)_mm512_cvtne2ps_pbh(hi.v, lo.v);
}

// k runs down the stored rows (A transposed, B not): pair q of column j joins rows 2q and 2q+1.
// Columns [0, n) go in panels of `panel` columns, panel c at dst + c*panel*kq (kq = ceil(kc / 2))
// with its width w (whole vectors when `pad`, zero-filled) per pair: dst[c*panel*kq + q*w + j] =
// bf16 pair (alpha * row(2q)[c*panel + j], alpha * row(2q+1)[c*panel + j]), row(p) = src + p*ld;
// the missing k of an odd kc is zero. Each pair of rows is read once across all the panels, so the
// reads run along the rows: packing one 14-column panel at a time down a 4 KB-strided dyᵀ held the
// 1024 x 256 x 2048 weight gradient 8-11 % lower (1 and 2 threads, Zen 4, interleaved A/B runs).
DV_TARGET_BF16 void pairs_across_rows(const float* src, int64_t ld, int64_t kc, int64_t n, int panel, bool pad,
                                      float alpha, float* dst) {
  const int64_t kq = (kc + 1) / 2;
  for (int64_t q = 0; q < kq; ++q) {
    const float* even = src + 2 * q * ld;
    const float* odd = 2 * q + 1 < kc ? even + ld : nullptr;
    for (int64_t c0 = 0; c0 < n; c0 += panel) {
      const int cols = static_cast<int>(std::min<int64_t>(panel, n - c0));
      const int w = pad ? (cols + W - 1) / W * W : cols;
      float* out = dst + c0 * kq + q * w;
      for (int j = 0; j < w; j += W) {
        const __m512i words = pairs_of_rows(even + c0 + j, odd ? odd + c0 + j : nullptr, std::clamp(cols - j, 0, W), alpha);
        _mm512_mask_storeu_epi32(out + j, lanes(std::min(W, w - j)), words);
      }
    }
  }
}

// k runs along the stored rows (A not transposed, B transposed): pair q of row i is its k values
// 2q and 2q+1, already neighbours, so 16 rows x 32 k convert to 16 x 16 pairs, then transpose.
// dst[q*w + i] = bf16 pair (alpha * row_i[2q], alpha * row_i[2q+1]), row_i = src + i*ld, for
// q < ceil(kc / 2) and i < w; rows i >= n and the missing k of an odd kc are zero.
DV_TARGET_BF16 void pairs_along_rows(const float* src, int64_t ld, int64_t kc, int n, int w, float alpha, float* dst) {
  for (int i = 0; i < w; i += W) {
    const int rows = std::clamp(n - i, 0, W);
    const __mmask16 store = lanes(std::min(W, w - i));
    for (int64_t p = 0; p < kc; p += 2 * W) {
      const int np = static_cast<int>(std::min<int64_t>(2 * W, kc - p));
      VF r[W];  // r[t] word u: row t's k pair (p + 2u, p + 2u + 1)
      for (int t = 0; t < W; ++t) r[t] = t < rows ? pairs_along(src + (i + t) * ld + p, np, alpha) : VF::zero();
      transpose(r);
      for (int u = 0; 2 * u < np; ++u) _mm512_mask_storeu_ps(dst + (p / 2 + u) * w + i, store, r[u].v);
    }
  }
}

// Packs op(A)[i0:i0+mc, p0:p0+kc] * alpha as bf16 pairs in micro-panels of kMR rows.
DV_TARGET_BF16 void pack_a_bf16(const GemmArgs& g, const float* A, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                                float* dst) {
  if (g.trans_a) return pairs_across_rows(A + p0 * g.lda + i0, g.lda, kc, mc, kMR, false, g.alpha, dst);
  const int64_t kq = (kc + 1) / 2;
  for (int64_t ir = 0; ir < mc; ir += kMR) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
    pairs_along_rows(A + (i0 + ir) * g.lda + p0, g.lda, kc, mr, mr, g.alpha, dst + ir * kq);
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as bf16 pairs in micro-panels of kNR columns, each panel's
// width rounded up to whole vectors (zero columns).
DV_TARGET_BF16 void pack_b_bf16(const GemmArgs& g, const float* B, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                                float* dst) {
  if (!g.trans_b) return pairs_across_rows(B + p0 * g.ldb + j0, g.ldb, kc, nc, kNR, true, 1.0f, dst);
  const int64_t kq = (kc + 1) / 2;
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr)), s = (nr + W - 1) / W * W;
    pairs_along_rows(B + (j0 + jr) * g.ldb + p0, g.ldb, kc, nr, s, 1.0f, dst + jr * kq);
  }
}

// As micro_kernel, over kq pairs of k.
template <int MRr, int NV>
DV_TARGET_BF16 void micro_kernel_bf16(int64_t kq, const float* __restrict a, const float* __restrict b, float* c,
                                      int64_t ldc, int nr, float beta, const TileEpilogue* epi) {
  __m512 acc[MRr][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MRr; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t q = 0; q < kq; ++q) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_ps(b + q * NV * W + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MRr; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_ps(a[q * MRr + i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, bv[v]);
    }
  }
  store_tile(acc, c, ldc, nr, beta, epi);
}

template <int MRr, int NV>
struct Bf16Kernel {
  static constexpr Kernel fn = &micro_kernel_bf16<MRr, NV>;
};
// kKernelsBf16[mr - 1][nv - 1], called with the number of k pairs.
constexpr auto kKernelsBf16 = kernel_table<Bf16Kernel>(std::make_integer_sequence<int, kMR>{});

// As gemm_tile, on bf16 pairs.
DV_TARGET_BF16 void gemm_tile_bf16(const GemmArgs& g, const float* A, const float* B, float* C, float* P, int64_t i0,
                                   int64_t i1, int64_t j0, int64_t j1, const SharedB* shared) {
  const bool epi = has_epilogue(g);
  const int64_t kc_max = block_size(g.k, kKC16, 2);
  const int64_t mc_max = block_size(i1 - i0, kMC16, kMR);
  const int64_t nc_max = block_size(j1 - j0, kNC, kNR);
  const int64_t kq_max = (kc_max + 1) / 2;
  float* pa = t_pack_a.get(mc_max * kq_max);
  float* pb = shared ? nullptr : t_pack_b.get(nc_max * kq_max);
  for (int64_t jc = j0; jc < j1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, j1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, g.k - pc), kq = (kc + 1) / 2;
      const float beta = pc == 0 ? g.beta : 1.0f;
      const bool last = pc + kc == g.k;
      const float* pb_block = pb;
      if (shared) {
        pb_block = shared->ready((jc - j0) / nc_max, pc / kc_max, (nc + kNR - 1) / kNR, kNR * kq, [&](int64_t panel, float* dst) {
          pack_b_bf16(g, B, pc, kc, jc + panel * kNR, std::min<int64_t>(kNR, nc - panel * kNR), dst);
        });
      } else {
        pack_b_bf16(g, B, pc, kc, jc, nc, pb);
      }
      for (int64_t ic = i0; ic < i1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, i1 - ic);
        pack_a_bf16(g, A, ic, mc, pc, kc, pa);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          const int nv = (nr + W - 1) / W;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
            float* c = C + (ic + ir) * g.ldc + jc + jr;
            prefetch_tile(c, g.ldc, mr, nr);
            const TileEpilogue e = tile_epilogue(g, P ? P + (c - C) : nullptr, jc + jr);
            kKernelsBf16[mr - 1][nv - 1](kq, pa + ir * kq, pb_block + jr * kq, c, g.ldc, nr, beta, epi && last ? &e : nullptr);
          }
        }
      }
    }
  }
  if (P) streaming_fence();
}

// ---- bf16 precision on AMX (cpu/gemm.h; dispatched only where the CPU and the OS allow it) ----
//
// TDPBF16PS adds to a 16 x 16 fp32 tile of C the products of a 16-row tile of A (16 k pairs a
// row) and a tile of B held as 16 rows of k pairs (pack_b_bf16's panel layout), each pair's two
// products added in k order as vdpbf16ps adds them. The micro-tile is 32 x 32: four C tiles, two A
// tiles and two B tiles, the eight tile registers, so one A tile load serves two products and one
// B tile load two. k is padded with zero pairs to whole tiles and A's rows to whole tiles when
// packing, so a single tile shape serves every GEMM; C leaves the tiles through a stack buffer
// that store_vector finishes (beta, epilogue) as the other kernels' registers are.
#define DV_TARGET_AMX __attribute__((target("avx512bf16,amx-tile,amx-bf16")))

constexpr int kTilePairs = 16;                   // k pairs in a tile row (64 bytes)
constexpr int kTileWords = 16 * kTilePairs;      // 32-bit words in one 16-row tile
constexpr int kAmxMR = 32;                       // C rows of a micro-tile: two A tiles
constexpr int64_t kMCAmx = 320;                  // whole micro-tiles; the A block as kMC16's

// Palette 1 with all eight tiles 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// Packs op(A)[i0:i0+mc, p0:p0+kc] * alpha as tiles: rows in groups of 16 (zero rows past mc), k in
// `chunks` chunks of 16 pairs (zero pairs past kc); group r's chunk t is the tile at
// dst + (r * chunks + t) * kTileWords, word 16 j + u the pair (k 2u, 2u+1 of the chunk) of row j.
DV_TARGET_AMX void pack_a_amx(const GemmArgs& g, const float* A, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                              int64_t chunks, float* dst) {
  for (int64_t r = 0; r * 16 < mc; ++r) {
    const int rows = static_cast<int>(std::min<int64_t>(16, mc - r * 16));
    float* group = dst + r * chunks * kTileWords;
    if (!g.trans_a) {
      // k runs along A's rows: 32 neighbouring k of a row convert to its 16 pairs of the chunk.
      for (int j = 0; j < 16; ++j) {
        const float* row = A + (i0 + r * 16 + j) * g.lda + p0;
        for (int64_t t = 0; t < chunks; ++t) {
          const int n = j < rows ? static_cast<int>(std::clamp<int64_t>(kc - 2 * kTilePairs * t, 0, 2 * W)) : 0;
          pairs_along(row + 2 * kTilePairs * t, n, g.alpha).store(group + t * kTileWords + j * kTilePairs);
        }
      }
    } else {
      // k runs down A's stored rows: each k pair of 16 columns is one vector of pairs, 16 of them a
      // block of words to transpose into the tile's rows.
      const float* col = A + p0 * g.lda + i0 + r * 16;
      for (int64_t t = 0; t < chunks; ++t) {
        VF w[16];
        for (int u = 0; u < 16; ++u) {
          const int64_t k0 = 2 * (t * kTilePairs + u);
          w[u] = k0 >= kc ? VF::zero()
                          : VF((__m512)pairs_of_rows(col + k0 * g.lda, k0 + 1 < kc ? col + (k0 + 1) * g.lda : nullptr,
                                                     rows, g.alpha));
        }
        transpose(w);
        for (int j = 0; j < 16; ++j) w[j].store(group + t * kTileWords + j * kTilePairs);
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as pack_b_bf16 does, each kNR-column panel followed by zero
// pairs up to kq16 (whole tiles): panel c at dst + c * kNR * kq16.
DV_TARGET_AMX void pack_b_amx(const GemmArgs& g, const float* B, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                              int64_t kq16, float* dst) {
  const int64_t kq = (kc + 1) / 2;
  for (int64_t jr = 0; jr < nc; jr += kNR) {
    const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr)), s = (nr + W - 1) / W * W;
    float* panel = dst + jr * kq16;
    pack_b_bf16(g, B, p0, kc, j0 + jr, nr, panel);
    std::fill(panel + kq * s, panel + kq16 * s, 0.0f);
  }
}

// C[0:mr, 0:nr] = A tiles x B panel + beta * C (beta == 0: C not read), finished by `epi` when not
// null, over `chunks` tiles of k: RT row tiles of A (mr <= 16 RT), NT column tiles of the B panel
// (nr <= 16 NT, the panel NT * 16 pairs wide).
template <int RT, int NT>
DV_TARGET_AMX void amx_micro_kernel(int64_t chunks, const float* a, const float* b, float* c, int64_t ldc, int mr,
                                    int nr, float beta, const TileEpilogue* epi) {
  constexpr int b_stride = NT * W * 4;  // bytes between the B panel's rows of pairs
  // The tile intrinsics are asm statements that do not tell the compiler which memory they read or
  // write: the barriers order them after the packing and before the reads of `out`.
  asm volatile("" ::: "memory");
  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (RT == 2) _tile_zero(2);
  if constexpr (RT == 2 && NT == 2) _tile_zero(3);
  for (int64_t t = 0; t < chunks; ++t) {
    const float* bt = b + t * kTilePairs * NT * W;
    _tile_loadd(4, a + t * kTileWords, 64);
    _tile_loadd(6, bt, b_stride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NT == 2) {
      _tile_loadd(7, bt + W, b_stride);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (RT == 2) {
      _tile_loadd(5, a + (chunks + t) * kTileWords, 64);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  alignas(64) float out[kAmxMR][2 * W];
  _tile_stored(0, out[0], sizeof out[0]);
  if constexpr (NT == 2) _tile_stored(1, out[0] + W, sizeof out[0]);
  if constexpr (RT == 2) _tile_stored(2, out[16], sizeof out[0]);
  if constexpr (RT == 2 && NT == 2) _tile_stored(3, out[16] + W, sizeof out[0]);
  asm volatile("" ::: "memory");
  const int last = nr - (NT - 1) * W;
  for (int i = 0; i < mr; ++i) {
    for (int v = 0; v < NT; ++v) store_vector(VF::load(out[i] + v * W), c + i * ldc, i * ldc + v * W, v * W, v == NT - 1 ? last : W, beta, epi);
  }
}

using AmxKernel = void (*)(int64_t chunks, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr,
                           float beta, const TileEpilogue* epi);
// kAmxKernels[row tiles - 1][column tiles - 1]
constexpr AmxKernel kAmxKernels[2][2] = {{amx_micro_kernel<1, 1>, amx_micro_kernel<1, 2>},
                                         {amx_micro_kernel<2, 1>, amx_micro_kernel<2, 2>}};

// As gemm_tile, on tiles. K blocks are whole tiles (32 k) but the last.
DV_TARGET_AMX void gemm_tile_amx(const GemmArgs& g, const float* A, const float* B, float* C, float* P, int64_t i0,
                                 int64_t i1, int64_t j0, int64_t j1, const SharedB* shared) {
  static const TileConfig config;
  _tile_loadconfig(&config);
  const bool epi = has_epilogue(g);
  const int64_t kc_max = block_size(g.k, kKC16, 2 * kTilePairs);
  const int64_t mc_max = block_size(i1 - i0, kMCAmx, kAmxMR);
  const int64_t nc_max = block_size(j1 - j0, kNC, kNR);
  float* pa = t_pack_a.get(mc_max * kc_max / 2);
  float* pb = shared ? nullptr : t_pack_b.get(nc_max * kc_max / 2);
  for (int64_t jc = j0; jc < j1; jc += nc_max) {
    const int64_t nc = std::min(nc_max, j1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, g.k - pc);
      const int64_t chunks = (kc + 2 * kTilePairs - 1) / (2 * kTilePairs), kq16 = chunks * kTilePairs;
      const float beta = pc == 0 ? g.beta : 1.0f;
      const bool last = pc + kc == g.k;
      const float* pb_block = pb;
      if (shared) {
        pb_block = shared->ready((jc - j0) / nc_max, pc / kc_max, (nc + kNR - 1) / kNR, kNR * kq16, [&](int64_t panel, float* dst) {
          pack_b_amx(g, B, pc, kc, jc + panel * kNR, std::min<int64_t>(kNR, nc - panel * kNR), kq16, dst);
        });
      } else {
        pack_b_amx(g, B, pc, kc, jc, nc, kq16, pb);
      }
      for (int64_t ic = i0; ic < i1; ic += mc_max) {
        const int64_t mc = std::min(mc_max, i1 - ic);
        pack_a_amx(g, A, ic, mc, pc, kc, chunks, pa);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += kAmxMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kAmxMR, mc - ir));
            float* c = C + (ic + ir) * g.ldc + jc + jr;
            prefetch_tile(c, g.ldc, mr, nr);
            const TileEpilogue e = tile_epilogue(g, P ? P + (c - C) : nullptr, jc + jr);
            kAmxKernels[mr > 16][nr > W](chunks, pa + ir / 16 * chunks * kTileWords, pb_block + jr * kq16, c, g.ldc, mr,
                                         nr, beta, epi && last ? &e : nullptr);
          }
        }
      }
    }
  }
  _tile_release();
  if (P) streaming_fence();
}

}  // namespace

void gemm_bf16(const GemmArgs& g) { run_tiles(g, gemm_tile_bf16, kKC16, 2, 2); }
void gemm_bf16_amx(const GemmArgs& g) { run_tiles(g, gemm_tile_amx, kKC16, 2 * kTilePairs, 2); }
#endif  // DV_ISA_AVX512

}  // namespace dv::cpu::DV_ISA
