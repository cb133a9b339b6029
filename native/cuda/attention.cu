// Fused scaled-dot-product attention on the GPU (cuda/attention.h; contract in cpu/attention.h),
// FlashAttention-2 style: S = Q Kᵀ exists one tile at a time in registers, the softmax is online, all
// accumulation is fp32, and the backward recomputes P from the saved log-sum-exp. Nothing N×N is
// ever stored.
//
// Work decomposition (a warp owns MB blocks of 16 rows; a block has W warps, so 16·MB·W rows):
//   forward       one block per (batch·head, 16·MB·W query rows); loops over key tiles of BN keys:
//                 S = Q Kᵀ, online softmax (running max / sum per row, rescale O), O += P V.
//   delta         D_i = rowsum(dO ∘ O) in fp32, one warp per query row.
//   backward_kv   one block per (batch·head, 16·W key rows, column chunk); loops over query tiles of
//                 BN queries and accumulates dK, dV in registers: Sᵀ = K Qᵀ, Pᵀ = exp(Sᵀ - L),
//                 dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ - D), dK += dSᵀ Q.
//   backward_q    one block per (batch·head, 16·MB·W query rows); loops over key tiles recomputing P
//                 and dP and accumulates dQ += dS K in registers. This second pass costs two extra
//                 tile products but needs no atomics, so every gradient is bit-identical run to run.
// Head dims are padded (in shared memory, with zeros) up to the instantiation's DMAX ∈ {32, 64, 128,
// 256}; loops skip the padding at run time, so DMAX only sizes the register arrays. Rows past the end
// of a sequence are zero in shared memory; keys past Nk score -inf (P = 0), padded queries get
// L = +inf (P = 0) in the backward, and rows past Nq / Nk are never written. For d > 128 the
// backward_kv accumulators (2 · 256 columns) would not fit the register file, so its blocks split the
// columns of dK, dV into chunks of 128 (each chunk's block recomputes Sᵀ and dPᵀ over all of d).
//
// Both precisions share this structure and one register layout for S: lane (g = lane/4, t = lane%4)
// of a warp holds rows g and g+8, columns 8n + 2t and 8n + 2t + 1 of every 8-column block n — the C
// fragment of mma.sync m16n8k16 — so the online softmax (two quad shuffles per row reduction),
// masking and the dS arithmetic are the same code. Scores are kept in the log2 domain (exp2f with
// scale·log2e folded in); lse is written in natural-log units as the CPU writes it. The paths differ
// in the two tile products, C = A·Bᵀ and acc += P·X:
//   bf16 (tensor cores, mma_bf16_16816): operands are rounded to bf16 (pack_bf16x2) when staged from
//     global memory into shared memory, in a fragment-native layout: a row-major matrix is cut into
//     blocks of 8 rows × 16 columns, and each block stores the 32 lanes' fragment words
//     (M[g][2t..2t+1] and M[g][2t+8..2t+9]) side by side, so a B fragment is one conflict-free 64-bit
//     shared load and an A fragment two. Operands whose reduction runs along the rows of the stored
//     matrix (V in P·V, dO and Q in the backward_kv products, K in dQ) are staged transposed into the
//     same layout. P and dS go from the accumulator registers straight into A fragments (the C
//     fragments of two adjacent 8-column blocks are exactly the A fragment of a 16-wide k step).
//     These loops are bound by shared-memory bandwidth (one 256-byte B fragment per mma), so where
//     the registers allow (forward and backward_q, d <= 64) each warp owns MB = 2 row blocks that
//     share every B fragment, halving the traffic per mma (as FlashAttention-2's 128-row tiles do).
//   fp32 (SIMT FMAs): tiles stay fp32, row-major with 4 floats of padding per row (conflict-free
//     float4 loads). S = A·Bᵀ is computed straight in the C-fragment layout, float4 along d (2 + 2·NB
//     shared loads per 16·NB FMAs); for P·X the warp writes P to its own shared scratch and each lane
//     accumulates rows g, g+8 × the 4-column groups 16c + 4t of the output.
// Shared memory per block stays under 99 KiB (the sm_86/sm_89 limit for code built for sm_80; blocks
// over 48 KiB opt in per kernel). Staging loads 4-8 independent items per thread before storing
// them, so several global loads are in flight per thread; float2 / float4 loads are used when the
// pointer and all strides of a view are aligned (checked on the host).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/attention.h"
#include "cuda/common.cuh"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {

#if defined(__CUDACC__)
#define DV_ATTN_UNROLL _Pragma("unroll")
#else
#define DV_ATTN_UNROLL
#endif

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int64_t kMaxGrid = 0x7fffffff;

// ---- parameters -------------------------------------------------------------------------------

// A (B, H, N, D) view; vec2 / vec4: every row start is 8- / 16-byte aligned (pointer and strides).
struct InView {
  const float* p;
  int64_t sb, sh, sn;
  bool vec2, vec4;
};
struct OutView {
  float* p;
  int64_t sb, sh, sn;
};

struct FwdParams {
  InView q, k, v;
  OutView o;
  float* lse;  // nullptr: not written
  int64_t heads, nq, nk;
  int64_t tiles, blocks;  // query tiles per (batch, head); tiles · B·H
  int d;
  float sl2;  // scale · log2(e): scores are kept in the log2 domain (exp2)
};

struct DeltaParams {
  InView o, dout;
  float* delta;  // (B·H·Nq) contiguous
  int64_t heads, nq, rows;
  int d;
};

struct BwdParams {
  InView q, k, v, dout;
  const float* lse;
  const float* delta;
  OutView dq, dk, dv;
  int64_t heads, nq, nk;
  int64_t tiles, chunks, blocks;  // row tiles per (batch, head), column chunks, tiles · chunks · B·H
  int d;
  float scale, sl2;
};

__device__ __forceinline__ const float* row0(const InView& v, int64_t b, int64_t h, int64_t n) {
  return v.p + b * v.sb + h * v.sh + n * v.sn;
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- staging: global fp32 -> shared ------------------------------------------------------------

// Word (pair of bf16) index of (row, word column w) in a fragment-layout tile whose rows hold kWords
// words: blocks of 8 rows × 8 words, each block 32 lanes × 2 words, lane = (row % 8)·4 + w % 4.
template <int kWords>
__device__ __forceinline__ int frag_index(int row, int w) {
  return ((row >> 3) * (kWords / 8) + (w >> 3)) * 64 + ((row & 7) * 4 + (w & 3)) * 2 + ((w >> 2) & 1);
}

constexpr int kStageBatch = 8;  // items loaded before they are stored

// Rows [0, R) × columns [0, dp) (dp a multiple of 16, <= DMAX) of a row-major operand into a
// fragment-layout tile of R × DMAX bf16; rows >= valid and columns >= d are zero. A warp handles 4
// rows × 8 words at a time (64 contiguous bytes per row; conflict-free shared stores).
template <int R, int DMAX, int W>
__device__ void stage_rows_bf16(uint32_t* dst, const float* src, int64_t sn, int64_t valid, int d, int dp,
                                bool vec2) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wblocks = dp >> 4, chunks = (R / 4) * wblocks;
  for (int c0 = warp; c0 < chunks; c0 += W * kStageBatch) {
    float x0[kStageBatch], x1[kStageBatch];
    DV_ATTN_UNROLL
    for (int i = 0; i < kStageBatch; ++i) {
      const int c = c0 + i * W;
      const int row = (c / wblocks) * 4 + (lane >> 3), col = ((c % wblocks) * 8 + (lane & 7)) * 2;
      x0[i] = 0.0f;
      x1[i] = 0.0f;
      if (c < chunks && row < valid) {
        const float* s = src + row * sn + col;
        if (col + 1 < d) {
          if (vec2) {
            const float2 v = *reinterpret_cast<const float2*>(s);
            x0[i] = v.x;
            x1[i] = v.y;
          } else {
            x0[i] = s[0];
            x1[i] = s[1];
          }
        } else if (col < d) {
          x0[i] = s[0];
        }
      }
    }
    DV_ATTN_UNROLL
    for (int i = 0; i < kStageBatch; ++i) {
      const int c = c0 + i * W;
      if (c < chunks) {
        const int row = (c / wblocks) * 4 + (lane >> 3), w = (c % wblocks) * 8 + (lane & 7);
        dst[frag_index<DMAX / 2>(row, w)] = pack_bf16x2(x0[i], x1[i]);
      }
    }
  }
}

// The transpose: columns [0, drows) (drows a multiple of 8) of rows [0, R) of a row-major operand
// become the rows of a fragment-layout tile with R bf16 columns (word = two consecutive source
// rows); source rows >= valid and columns >= dcount are zero. A warp handles 8 columns × 8 rows.
template <int R, int W>
__device__ void stage_cols_bf16(uint32_t* dst, const float* src, int64_t sn, int64_t valid, int dcount, int drows) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  constexpr int kWordBlocks = R / 8;  // 4-word groups per tile row
  const int chunks = (drows >> 3) * kWordBlocks;
  for (int c0 = warp; c0 < chunks; c0 += W * kStageBatch) {
    float x0[kStageBatch], x1[kStageBatch];
    DV_ATTN_UNROLL
    for (int i = 0; i < kStageBatch; ++i) {
      const int c = c0 + i * W;
      const int col = (c / kWordBlocks) * 8 + (lane & 7), tok = ((c % kWordBlocks) * 4 + (lane >> 3)) * 2;
      const bool ok = c < chunks && col < dcount;
      const float* s = src + tok * sn + col;
      x0[i] = ok && tok < valid ? s[0] : 0.0f;
      x1[i] = ok && tok + 1 < valid ? s[sn] : 0.0f;
    }
    DV_ATTN_UNROLL
    for (int i = 0; i < kStageBatch; ++i) {
      const int c = c0 + i * W;
      if (c < chunks) {
        const int col = (c / kWordBlocks) * 8 + (lane & 7), w = (c % kWordBlocks) * 4 + (lane >> 3);
        dst[frag_index<R / 2>(col, w)] = pack_bf16x2(x0[i], x1[i]);
      }
    }
  }
}

// Rows [0, R) × columns [0, dp4) (dp4 = d rounded up to 4) into an fp32 tile with row stride LD;
// rows >= valid and columns >= d are zero.
template <int R, int LD, int W>
__device__ void stage_f32(float* dst, const float* src, int64_t sn, int64_t valid, int d, int dp4, bool vec4) {
  constexpr int kBatch = 4;
  const int groups = dp4 >> 2, total = R * groups;
  for (int base = threadIdx.x; base < total; base += W * 32 * kBatch) {
    float4 x[kBatch];
    DV_ATTN_UNROLL
    for (int i = 0; i < kBatch; ++i) {
      const int it = base + i * W * 32, row = it / groups, col = (it - row * groups) * 4;
      x[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (it < total && row < valid) {
        const float* s = src + row * sn + col;
        if (vec4 && col + 4 <= d) {
          x[i] = *reinterpret_cast<const float4*>(s);
        } else {
          x[i].x = col < d ? s[0] : 0.0f;
          x[i].y = col + 1 < d ? s[1] : 0.0f;
          x[i].z = col + 2 < d ? s[2] : 0.0f;
          x[i].w = col + 3 < d ? s[3] : 0.0f;
        }
      }
    }
    DV_ATTN_UNROLL
    for (int i = 0; i < kBatch; ++i) {
      const int it = base + i * W * 32, row = it / groups, col = (it - row * groups) * 4;
      if (it < total) *reinterpret_cast<float4*>(dst + row * LD + col) = x[i];
    }
  }
}

// ---- tile products ----------------------------------------------------------------------------

// c[mb] (16 × 8·NB, C-fragment layout) = A[16-row block rb0 + mb] · B[rows 0 .. 8·NB)ᵀ for the MB
// row blocks of a warp, over the first `ksteps` 16-column steps; A and B are fragment-layout tiles
// with DMAX columns. Each B fragment is loaded once for all MB row blocks.
template <int DMAX, int NB, int MB>
__device__ __forceinline__ void abt_mma(float (&c)[MB][NB][4], const uint32_t* a, int rb0, const uint32_t* b,
                                        int ksteps) {
  constexpr int kBlocks = DMAX / 16;
  const int lane = threadIdx.x & 31;
  DV_ATTN_UNROLL
  for (int mb = 0; mb < MB; ++mb) {
    DV_ATTN_UNROLL
    for (int n = 0; n < NB; ++n) c[mb][n][0] = c[mb][n][1] = c[mb][n][2] = c[mb][n][3] = 0.0f;
  }
  DV_ATTN_UNROLL
  for (int kk = 0; kk < DMAX / 16; ++kk) {
    if (kk < ksteps) {
      uint32_t af[MB][4];
      DV_ATTN_UNROLL
      for (int mb = 0; mb < MB; ++mb) {
        const int rb = rb0 + mb;
        const uint2 top = *reinterpret_cast<const uint2*>(a + ((2 * rb) * kBlocks + kk) * 64 + lane * 2);
        const uint2 bot = *reinterpret_cast<const uint2*>(a + ((2 * rb + 1) * kBlocks + kk) * 64 + lane * 2);
        af[mb][0] = top.x;
        af[mb][1] = bot.x;
        af[mb][2] = top.y;
        af[mb][3] = bot.y;
      }
      DV_ATTN_UNROLL
      for (int n = 0; n < NB; ++n) {
        const uint2 bb = *reinterpret_cast<const uint2*>(b + (n * kBlocks + kk) * 64 + lane * 2);
        const uint32_t bf[2] = {bb.x, bb.y};
        DV_ATTN_UNROLL
        for (int mb = 0; mb < MB; ++mb) {
          float r[4];
          mma_bf16_16816(r, af[mb], bf, c[mb][n]);
          c[mb][n][0] = r[0];
          c[mb][n][1] = r[1];
          c[mb][n][2] = r[2];
          c[mb][n][3] = r[3];
        }
      }
    }
  }
}

// acc[mb] (16 × 8·NTMAX, C-fragment layout) += P[mb] (16 × BN, C-fragment layout in registers) ·
// X (BN × d), with X stored transposed (fragment layout, rows = the 8·NTMAX output columns, BN
// columns); only the first nt_used 8-column blocks are computed. P is rounded to bf16 here.
template <int BN, int NTMAX, int MB>
__device__ __forceinline__ void pv_mma(float (&acc)[MB][NTMAX][4], const float (&p)[MB][BN / 8][4],
                                       const uint32_t* xt, int nt_used) {
  constexpr int kBlocks = BN / 16;
  const int lane = threadIdx.x & 31;
  DV_ATTN_UNROLL
  for (int kk = 0; kk < BN / 16; ++kk) {
    uint32_t af[MB][4];
    DV_ATTN_UNROLL
    for (int mb = 0; mb < MB; ++mb) {
      af[mb][0] = pack_bf16x2(p[mb][2 * kk][0], p[mb][2 * kk][1]);
      af[mb][1] = pack_bf16x2(p[mb][2 * kk][2], p[mb][2 * kk][3]);
      af[mb][2] = pack_bf16x2(p[mb][2 * kk + 1][0], p[mb][2 * kk + 1][1]);
      af[mb][3] = pack_bf16x2(p[mb][2 * kk + 1][2], p[mb][2 * kk + 1][3]);
    }
    DV_ATTN_UNROLL
    for (int nt = 0; nt < NTMAX; ++nt) {
      if (nt < nt_used) {
        const uint2 bb = *reinterpret_cast<const uint2*>(xt + (nt * kBlocks + kk) * 64 + lane * 2);
        const uint32_t bf[2] = {bb.x, bb.y};
        DV_ATTN_UNROLL
        for (int mb = 0; mb < MB; ++mb) {
          float r[4];
          mma_bf16_16816(r, af[mb], bf, acc[mb][nt]);
          acc[mb][nt][0] = r[0];
          acc[mb][nt][1] = r[1];
          acc[mb][nt][2] = r[2];
          acc[mb][nt][3] = r[3];
        }
      }
    }
  }
}

// The fp32 versions. c = A[rows r0 .. r0+16) · B[rows 0 .. 8·NB)ᵀ over columns [0, dp4), both fp32
// tiles with row stride LD.
template <int LD, int NB>
__device__ __forceinline__ void abt_simt(float (&c)[NB][4], const float* a, int r0, const float* b, int dp4) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const float* a0 = a + (r0 + g) * LD;
  const float* a1 = a0 + 8 * LD;
  DV_ATTN_UNROLL
  for (int n = 0; n < NB; ++n) c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.0f;
  for (int k = 0; k < dp4; k += 4) {
    const float4 x0 = *reinterpret_cast<const float4*>(a0 + k);
    const float4 x1 = *reinterpret_cast<const float4*>(a1 + k);
    DV_ATTN_UNROLL
    for (int n = 0; n < NB; ++n) {
      const float4 y0 = *reinterpret_cast<const float4*>(b + (8 * n + 2 * t) * LD + k);
      const float4 y1 = *reinterpret_cast<const float4*>(b + (8 * n + 2 * t + 1) * LD + k);
      c[n][0] = fmaf(x0.w, y0.w, fmaf(x0.z, y0.z, fmaf(x0.y, y0.y, fmaf(x0.x, y0.x, c[n][0]))));
      c[n][1] = fmaf(x0.w, y1.w, fmaf(x0.z, y1.z, fmaf(x0.y, y1.y, fmaf(x0.x, y1.x, c[n][1]))));
      c[n][2] = fmaf(x1.w, y0.w, fmaf(x1.z, y0.z, fmaf(x1.y, y0.y, fmaf(x1.x, y0.x, c[n][2]))));
      c[n][3] = fmaf(x1.w, y1.w, fmaf(x1.z, y1.z, fmaf(x1.y, y1.y, fmaf(x1.x, y1.x, c[n][3]))));
    }
  }
}

// acc += P · X: P (16 × BN, C-fragment layout) goes through the warp's scratch pw (16 × (BN + 4));
// X (BN × DC) is an fp32 tile with row stride LD whose column 0 is the chunk's first column. The
// accumulator holds rows g (acc[2c]) and g+8 (acc[2c+1]) × columns 16c + 4t .. 16c + 4t + 3; column
// groups at or past dcount and P columns at or past kcount (a multiple of 4) are skipped.
template <int BN, int DC, int LD>
__device__ __forceinline__ void pv_simt(float (&acc)[DC / 8][4], const float (&p)[BN / 8][4], float* pw,
                                        const float* x, int dcount, int kcount) {
  constexpr int LDP = BN + 4;
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  __syncwarp();  // the previous product's reads of pw are done
  DV_ATTN_UNROLL
  for (int n = 0; n < BN / 8; ++n) {
    *reinterpret_cast<float2*>(pw + g * LDP + 8 * n + 2 * t) = make_float2(p[n][0], p[n][1]);
    *reinterpret_cast<float2*>(pw + (g + 8) * LDP + 8 * n + 2 * t) = make_float2(p[n][2], p[n][3]);
  }
  __syncwarp();
  for (int k = 0; k < kcount; k += 4) {
    const float4 pa = *reinterpret_cast<const float4*>(pw + g * LDP + k);
    const float4 pb = *reinterpret_cast<const float4*>(pw + (g + 8) * LDP + k);
    const float pav[4] = {pa.x, pa.y, pa.z, pa.w}, pbv[4] = {pb.x, pb.y, pb.z, pb.w};
    DV_ATTN_UNROLL
    for (int kk = 0; kk < 4; ++kk) {
      const float* row = x + (k + kk) * LD + 4 * t;
      DV_ATTN_UNROLL
      for (int c = 0; c < DC / 16; ++c) {
        if (16 * c + 4 * t < dcount) {
          const float4 v = *reinterpret_cast<const float4*>(row + 16 * c);
          acc[2 * c][0] = fmaf(pav[kk], v.x, acc[2 * c][0]);
          acc[2 * c][1] = fmaf(pav[kk], v.y, acc[2 * c][1]);
          acc[2 * c][2] = fmaf(pav[kk], v.z, acc[2 * c][2]);
          acc[2 * c][3] = fmaf(pav[kk], v.w, acc[2 * c][3]);
          acc[2 * c + 1][0] = fmaf(pbv[kk], v.x, acc[2 * c + 1][0]);
          acc[2 * c + 1][1] = fmaf(pbv[kk], v.y, acc[2 * c + 1][1]);
          acc[2 * c + 1][2] = fmaf(pbv[kk], v.z, acc[2 * c + 1][2]);
          acc[2 * c + 1][3] = fmaf(pbv[kk], v.w, acc[2 * c + 1][3]);
        }
      }
    }
  }
}

// Where accumulator element acc[i][e] sits: row g + 8·acc_row, column acc_col (lane t).
template <bool MMA>
__device__ __forceinline__ int acc_row(int i, int e) {
  return MMA ? (e >> 1) : (i & 1);
}
template <bool MMA>
__device__ __forceinline__ int acc_col(int i, int e, int t) {
  return MMA ? 8 * i + 2 * t + (e & 1) : 16 * (i >> 1) + 4 * t + e;
}

// Writes acc · factor(row) into rows [r0 + g, r0 + g + 8] (those < n) and columns c0 + acc_col (those
// < c0 + dcount) of out.
template <bool MMA, int NT>
__device__ __forceinline__ void store_acc(const float (&acc)[NT][4], float* out, int64_t sn, int64_t r0, int64_t n,
                                          int dcount, float f0, float f1) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  DV_ATTN_UNROLL
  for (int i = 0; i < NT; ++i) {
    DV_ATTN_UNROLL
    for (int e = 0; e < 4; ++e) {
      const int r = acc_row<MMA>(i, e), col = acc_col<MMA>(i, e, t);
      const int64_t row = r0 + g + 8 * r;
      if (row < n && col < dcount) out[row * sn + col] = acc[i][e] * (r ? f1 : f0);
    }
  }
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// ---- shared memory plans ----------------------------------------------------------------------

// Bytes of an R-row operand tile with DMAX columns: bf16 fragment layout or padded fp32.
template <bool MMA, int R, int DMAX>
constexpr size_t tile_bytes() {
  return MMA ? size_t(R) * DMAX * 2 : size_t(R) * (DMAX + 4) * 4;
}
template <bool MMA, int W, int BN>
constexpr size_t scratch_bytes() {  // the fp32 path's per-warp P scratch
  return MMA ? 0 : size_t(W) * 16 * (BN + 4) * 4;
}

// Plans for blocks of W warps with MB 16-row blocks each (16·MB·W rows; MB > 1 only on tensor cores).
template <bool MMA, int DMAX, int W, int MB, int BN>
struct FwdPlan {
  static constexpr size_t q = 0, k = q + tile_bytes<MMA, 16 * MB * W, DMAX>(), v = k + tile_bytes<MMA, BN, DMAX>(),
                          pw = v + tile_bytes<MMA, BN, DMAX>(), bytes = pw + scratch_bytes<MMA, W, BN>();
};
template <bool MMA, int DMAX, int W, int BN, int DC>
struct KvPlan {
  static constexpr size_t k = 0, v = k + tile_bytes<MMA, 16 * W, DMAX>(), q = v + tile_bytes<MMA, 16 * W, DMAX>(),
                          dout = q + tile_bytes<MMA, BN, DMAX>(), qt = dout + tile_bytes<MMA, BN, DMAX>(),
                          doutt = qt + (MMA ? size_t(DC) * BN * 2 : 0), lse = doutt + (MMA ? size_t(DC) * BN * 2 : 0),
                          delta = lse + size_t(BN) * 4, pw = delta + size_t(BN) * 4,
                          bytes = pw + scratch_bytes<MMA, W, BN>();
};
template <bool MMA, int DMAX, int W, int MB, int BN>
struct QPlan {
  static constexpr size_t q = 0, dout = q + tile_bytes<MMA, 16 * MB * W, DMAX>(),
                          k = dout + tile_bytes<MMA, 16 * MB * W, DMAX>(), v = k + tile_bytes<MMA, BN, DMAX>(),
                          kt = v + tile_bytes<MMA, BN, DMAX>(), pw = kt + (MMA ? size_t(DMAX) * BN * 2 : 0),
                          bytes = pw + scratch_bytes<MMA, W, BN>();
};

// ---- kernels ----------------------------------------------------------------------------------

// O = softmax(Q Kᵀ · scale) V and L = log-sum-exp for 16·MB·W query rows of one (batch, head).
template <bool MMA, int DMAX, int W, int MB, int BN>
__global__ void __launch_bounds__(W * 32) attention_forward_kernel(FwdParams p) {
  static_assert(MMA || MB == 1, "the fp32 path has one 16-row block per warp");
  using Plan = FwdPlan<MMA, DMAX, W, MB, BN>;
  constexpr int BM = 16 * MB * W, NB = BN / 8, LD = DMAX + 4;
  DV_DYNAMIC_SHARED(unsigned char, smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int d = p.d, dp = MMA ? (d + 15) & ~15 : (d + 3) & ~3;
  for (int64_t blk = blockIdx.x; blk < p.blocks; blk += gridDim.x) {
    const int64_t bh = blk / p.tiles, q0 = (blk % p.tiles) * BM, b = bh / p.heads, h = bh % p.heads;
    const int64_t q_valid = min64(BM, p.nq - q0);
    const bool active = warp * 16 * MB < q_valid;
    __syncthreads();  // the previous block's readers of the Q tile are done
    if constexpr (MMA)
      stage_rows_bf16<BM, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::q), row0(p.q, b, h, q0), p.q.sn, q_valid,
                                   d, dp, p.q.vec2);
    else
      stage_f32<BM, LD, W>(reinterpret_cast<float*>(smem + Plan::q), row0(p.q, b, h, q0), p.q.sn, q_valid, d, dp,
                           p.q.vec4);

    // Per 16-row block: running max m and (per-lane partial) sum l of rows g, g+8; unnormalised O.
    float m[MB][2], l[MB][2], acc[MB][DMAX / 8][4];
    DV_ATTN_UNROLL
    for (int mb = 0; mb < MB; ++mb) {
      m[mb][0] = m[mb][1] = -INFINITY;
      l[mb][0] = l[mb][1] = 0.0f;
      DV_ATTN_UNROLL
      for (int i = 0; i < DMAX / 8; ++i) acc[mb][i][0] = acc[mb][i][1] = acc[mb][i][2] = acc[mb][i][3] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < p.nk; k0 += BN) {
      const int64_t k_valid = min64(BN, p.nk - k0);
      __syncthreads();  // every warp is done with the previous K, V tiles
      if constexpr (MMA) {
        stage_rows_bf16<BN, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::k), row0(p.k, b, h, k0), p.k.sn,
                                     k_valid, d, dp, p.k.vec2);
        stage_cols_bf16<BN, W>(reinterpret_cast<uint32_t*>(smem + Plan::v), row0(p.v, b, h, k0), p.v.sn, k_valid, d,
                               (d + 7) & ~7);
      } else {
        stage_f32<BN, LD, W>(reinterpret_cast<float*>(smem + Plan::k), row0(p.k, b, h, k0), p.k.sn, k_valid, d, dp,
                             p.k.vec4);
        stage_f32<BN, LD, W>(reinterpret_cast<float*>(smem + Plan::v), row0(p.v, b, h, k0), p.v.sn, k_valid, d, dp,
                             p.v.vec4);
      }
      __syncthreads();
      if (!active) continue;

      float s[MB][NB][4];
      if constexpr (MMA)
        abt_mma<DMAX, NB, MB>(s, reinterpret_cast<const uint32_t*>(smem + Plan::q), warp * MB,
                              reinterpret_cast<const uint32_t*>(smem + Plan::k), dp >> 4);
      else
        abt_simt<LD, NB>(s[0], reinterpret_cast<const float*>(smem + Plan::q), warp * 16,
                         reinterpret_cast<const float*>(smem + Plan::k), dp);

      // Online softmax in the log2 domain; masked keys score -inf.
      DV_ATTN_UNROLL
      for (int mb = 0; mb < MB; ++mb) {
        float mx0 = m[mb][0], mx1 = m[mb][1];
        DV_ATTN_UNROLL
        for (int n = 0; n < NB; ++n) {
          DV_ATTN_UNROLL
          for (int e = 0; e < 4; ++e)
            s[mb][n][e] = 8 * n + 2 * t + (e & 1) < k_valid ? s[mb][n][e] * p.sl2 : -INFINITY;
          mx0 = fmaxf(mx0, fmaxf(s[mb][n][0], s[mb][n][1]));
          mx1 = fmaxf(mx1, fmaxf(s[mb][n][2], s[mb][n][3]));
        }
        mx0 = quad_max(mx0);
        mx1 = quad_max(mx1);
        const float base0 = mx0 == -INFINITY ? 0.0f : mx0, base1 = mx1 == -INFINITY ? 0.0f : mx1;
        const float alpha0 = exp2f(m[mb][0] - base0), alpha1 = exp2f(m[mb][1] - base1);
        m[mb][0] = mx0;
        m[mb][1] = mx1;
        float rs0 = 0.0f, rs1 = 0.0f;
        DV_ATTN_UNROLL
        for (int n = 0; n < NB; ++n) {
          s[mb][n][0] = exp2f(s[mb][n][0] - base0);
          s[mb][n][1] = exp2f(s[mb][n][1] - base0);
          s[mb][n][2] = exp2f(s[mb][n][2] - base1);
          s[mb][n][3] = exp2f(s[mb][n][3] - base1);
          rs0 += s[mb][n][0] + s[mb][n][1];
          rs1 += s[mb][n][2] + s[mb][n][3];
        }
        l[mb][0] = l[mb][0] * alpha0 + rs0;  // per-lane partial sums; the quad's are added at the end
        l[mb][1] = l[mb][1] * alpha1 + rs1;
        DV_ATTN_UNROLL
        for (int i = 0; i < DMAX / 8; ++i) {
          DV_ATTN_UNROLL
          for (int e = 0; e < 4; ++e) acc[mb][i][e] *= acc_row<MMA>(i, e) ? alpha1 : alpha0;
        }
      }

      if constexpr (MMA)
        pv_mma<BN, DMAX / 8, MB>(acc, s, reinterpret_cast<const uint32_t*>(smem + Plan::v), (d + 7) >> 3);
      else
        pv_simt<BN, DMAX, LD>(acc[0], s[0], reinterpret_cast<float*>(smem + Plan::pw) + warp * 16 * (BN + 4),
                              reinterpret_cast<const float*>(smem + Plan::v), d, static_cast<int>((k_valid + 3) & ~3));
    }

    DV_ATTN_UNROLL
    for (int mb = 0; mb < MB; ++mb) {
      const float l0 = quad_sum(l[mb][0]), l1 = quad_sum(l[mb][1]);
      const int64_t r0 = q0 + (warp * MB + mb) * 16;
      if (active) {
        store_acc<MMA>(acc[mb], p.o.p + b * p.o.sb + h * p.o.sh, p.o.sn, r0, p.nq, d, 1.0f / l0, 1.0f / l1);
        if (p.lse && t == 0) {
          if (r0 + g < p.nq) p.lse[bh * p.nq + r0 + g] = (m[mb][0] + log2f(l0)) * kLn2;
          if (r0 + g + 8 < p.nq) p.lse[bh * p.nq + r0 + g + 8] = (m[mb][1] + log2f(l1)) * kLn2;
        }
      }
    }
  }
}

// delta[row] = sum_c dO[row, c] · O[row, c] for every query row (b, h, i), one warp per row.
__global__ void __launch_bounds__(256) attention_delta_kernel(DeltaParams p) {
  const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * wpb;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * wpb + (threadIdx.x >> 5); row < p.rows; row += stride) {
    const int64_t bh = row / p.nq, i = row % p.nq, b = bh / p.heads, h = bh % p.heads;
    const float* o = row0(p.o, b, h, i);
    const float* g = row0(p.dout, b, h, i);
    float s = 0.0f;
    for (int c = lane; c < p.d; c += 32) s = fmaf(o[c], g[c], s);
    DV_ATTN_UNROLL
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) p.delta[row] = s;
  }
}

// dK, dV for 16·W key rows and columns [c0, c0 + DC) of one (batch, head). One 16-row block per warp:
// the two DC-column accumulators already take most of the registers.
template <bool MMA, int DMAX, int W, int BN, int DC>
__global__ void __launch_bounds__(W * 32, 1) attention_backward_kv_kernel(BwdParams p) {
  using Plan = KvPlan<MMA, DMAX, W, BN, DC>;
  constexpr int BM = 16 * W, NB = BN / 8, LD = DMAX + 4;
  DV_DYNAMIC_SHARED(unsigned char, smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3;
  const int d = p.d, dp = MMA ? (d + 15) & ~15 : (d + 3) & ~3;
  float* lse_s = reinterpret_cast<float*>(smem + Plan::lse);
  float* delta_s = reinterpret_cast<float*>(smem + Plan::delta);
  for (int64_t blk = blockIdx.x; blk < p.blocks; blk += gridDim.x) {
    const int64_t bh = blk / (p.tiles * p.chunks), rem = blk % (p.tiles * p.chunks);
    const int64_t k0 = (rem / p.chunks) * BM, b = bh / p.heads, h = bh % p.heads;
    const int c0 = static_cast<int>(rem % p.chunks) * DC;
    const int dcount = d - c0 < DC ? d - c0 : DC;
    const int64_t k_valid = min64(BM, p.nk - k0);
    const bool active = warp * 16 < k_valid;
    __syncthreads();
    if constexpr (MMA) {
      stage_rows_bf16<BM, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::k), row0(p.k, b, h, k0), p.k.sn, k_valid,
                                   d, dp, p.k.vec2);
      stage_rows_bf16<BM, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::v), row0(p.v, b, h, k0), p.v.sn, k_valid,
                                   d, dp, p.v.vec2);
    } else {
      stage_f32<BM, LD, W>(reinterpret_cast<float*>(smem + Plan::k), row0(p.k, b, h, k0), p.k.sn, k_valid, d, dp,
                           p.k.vec4);
      stage_f32<BM, LD, W>(reinterpret_cast<float*>(smem + Plan::v), row0(p.v, b, h, k0), p.v.sn, k_valid, d, dp,
                           p.v.vec4);
    }

    float dk[1][DC / 8][4], dv[1][DC / 8][4];
    DV_ATTN_UNROLL
    for (int i = 0; i < DC / 8; ++i)
      dk[0][i][0] = dk[0][i][1] = dk[0][i][2] = dk[0][i][3] = dv[0][i][0] = dv[0][i][1] = dv[0][i][2] = dv[0][i][3] =
          0.0f;

    for (int64_t q0 = 0; q0 < p.nq; q0 += BN) {
      const int64_t q_valid = min64(BN, p.nq - q0);
      __syncthreads();  // every warp is done with the previous query tile
      if constexpr (MMA) {
        stage_rows_bf16<BN, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::q), row0(p.q, b, h, q0), p.q.sn,
                                     q_valid, d, dp, p.q.vec2);
        stage_rows_bf16<BN, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::dout), row0(p.dout, b, h, q0),
                                     p.dout.sn, q_valid, d, dp, p.dout.vec2);
        stage_cols_bf16<BN, W>(reinterpret_cast<uint32_t*>(smem + Plan::qt), row0(p.q, b, h, q0) + c0, p.q.sn,
                               q_valid, dcount, (dcount + 7) & ~7);
        stage_cols_bf16<BN, W>(reinterpret_cast<uint32_t*>(smem + Plan::doutt), row0(p.dout, b, h, q0) + c0,
                               p.dout.sn, q_valid, dcount, (dcount + 7) & ~7);
      } else {
        stage_f32<BN, LD, W>(reinterpret_cast<float*>(smem + Plan::q), row0(p.q, b, h, q0), p.q.sn, q_valid, d, dp,
                             p.q.vec4);
        stage_f32<BN, LD, W>(reinterpret_cast<float*>(smem + Plan::dout), row0(p.dout, b, h, q0), p.dout.sn, q_valid,
                             d, dp, p.dout.vec4);
      }
      for (int i = threadIdx.x; i < BN; i += W * 32) {
        const bool ok = i < q_valid;
        lse_s[i] = ok ? p.lse[bh * p.nq + q0 + i] * kLog2e : INFINITY;  // +inf: P = 0 for padded queries
        delta_s[i] = ok ? p.delta[bh * p.nq + q0 + i] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;

      // Pᵀ (keys × queries) = exp2(K Qᵀ · scale·log2e - L·log2e)
      float s[1][NB][4];
      if constexpr (MMA)
        abt_mma<DMAX, NB, 1>(s, reinterpret_cast<const uint32_t*>(smem + Plan::k), warp,
                             reinterpret_cast<const uint32_t*>(smem + Plan::q), dp >> 4);
      else
        abt_simt<LD, NB>(s[0], reinterpret_cast<const float*>(smem + Plan::k), warp * 16,
                         reinterpret_cast<const float*>(smem + Plan::q), dp);
      DV_ATTN_UNROLL
      for (int n = 0; n < NB; ++n) {
        DV_ATTN_UNROLL
        for (int e = 0; e < 4; ++e) s[0][n][e] = exp2f(s[0][n][e] * p.sl2 - lse_s[8 * n + 2 * t + (e & 1)]);
      }
      const int kcount = static_cast<int>((q_valid + 3) & ~3);
      float* pw = reinterpret_cast<float*>(smem + Plan::pw) + warp * 16 * (BN + 4);
      // dV += Pᵀ dO
      if constexpr (MMA)
        pv_mma<BN, DC / 8, 1>(dv, s, reinterpret_cast<const uint32_t*>(smem + Plan::doutt), (dcount + 7) >> 3);
      else
        pv_simt<BN, DC, LD>(dv[0], s[0], pw, reinterpret_cast<const float*>(smem + Plan::dout) + c0, dcount, kcount);
      // dPᵀ = V dOᵀ;  dSᵀ = Pᵀ ∘ (dPᵀ - D)
      float dpt[1][NB][4];
      if constexpr (MMA)
        abt_mma<DMAX, NB, 1>(dpt, reinterpret_cast<const uint32_t*>(smem + Plan::v), warp,
                             reinterpret_cast<const uint32_t*>(smem + Plan::dout), dp >> 4);
      else
        abt_simt<LD, NB>(dpt[0], reinterpret_cast<const float*>(smem + Plan::v), warp * 16,
                         reinterpret_cast<const float*>(smem + Plan::dout), dp);
      DV_ATTN_UNROLL
      for (int n = 0; n < NB; ++n) {
        DV_ATTN_UNROLL
        for (int e = 0; e < 4; ++e) s[0][n][e] *= dpt[0][n][e] - delta_s[8 * n + 2 * t + (e & 1)];
      }
      // dK += dSᵀ Q  (scaled at the end)
      if constexpr (MMA)
        pv_mma<BN, DC / 8, 1>(dk, s, reinterpret_cast<const uint32_t*>(smem + Plan::qt), (dcount + 7) >> 3);
      else
        pv_simt<BN, DC, LD>(dk[0], s[0], pw, reinterpret_cast<const float*>(smem + Plan::q) + c0, dcount, kcount);
    }

    if (active) {
      const int64_t r0 = k0 + warp * 16;
      store_acc<MMA>(dk[0], p.dk.p + b * p.dk.sb + h * p.dk.sh + c0, p.dk.sn, r0, p.nk, dcount, p.scale, p.scale);
      store_acc<MMA>(dv[0], p.dv.p + b * p.dv.sb + h * p.dv.sh + c0, p.dv.sn, r0, p.nk, dcount, 1.0f, 1.0f);
    }
  }
}

// dQ for 16·MB·W query rows of one (batch, head).
template <bool MMA, int DMAX, int W, int MB, int BN>
__global__ void __launch_bounds__(W * 32) attention_backward_q_kernel(BwdParams p) {
  static_assert(MMA || MB == 1, "the fp32 path has one 16-row block per warp");
  using Plan = QPlan<MMA, DMAX, W, MB, BN>;
  constexpr int BM = 16 * MB * W, NB = BN / 8, LD = DMAX + 4;
  DV_DYNAMIC_SHARED(unsigned char, smem);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int d = p.d, dp = MMA ? (d + 15) & ~15 : (d + 3) & ~3;
  for (int64_t blk = blockIdx.x; blk < p.blocks; blk += gridDim.x) {
    const int64_t bh = blk / p.tiles, q0 = (blk % p.tiles) * BM, b = bh / p.heads, h = bh % p.heads;
    const int64_t q_valid = min64(BM, p.nq - q0);
    const bool active = warp * 16 * MB < q_valid;
    __syncthreads();
    if constexpr (MMA) {
      stage_rows_bf16<BM, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::q), row0(p.q, b, h, q0), p.q.sn, q_valid,
                                   d, dp, p.q.vec2);
      stage_rows_bf16<BM, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::dout), row0(p.dout, b, h, q0), p.dout.sn,
                                   q_valid, d, dp, p.dout.vec2);
    } else {
      stage_f32<BM, LD, W>(reinterpret_cast<float*>(smem + Plan::q), row0(p.q, b, h, q0), p.q.sn, q_valid, d, dp,
                           p.q.vec4);
      stage_f32<BM, LD, W>(reinterpret_cast<float*>(smem + Plan::dout), row0(p.dout, b, h, q0), p.dout.sn, q_valid, d,
                           dp, p.dout.vec4);
    }
    // This lane's query rows g, g+8 of each 16-row block: L·log2e and D (padded rows: P = 0).
    float lse_r[MB][2], del_r[MB][2], dq[MB][DMAX / 8][4];
    DV_ATTN_UNROLL
    for (int mb = 0; mb < MB; ++mb) {
      DV_ATTN_UNROLL
      for (int r = 0; r < 2; ++r) {
        const int64_t row = q0 + (warp * MB + mb) * 16 + g + 8 * r;
        lse_r[mb][r] = row < p.nq ? p.lse[bh * p.nq + row] * kLog2e : INFINITY;
        del_r[mb][r] = row < p.nq ? p.delta[bh * p.nq + row] : 0.0f;
      }
      DV_ATTN_UNROLL
      for (int i = 0; i < DMAX / 8; ++i) dq[mb][i][0] = dq[mb][i][1] = dq[mb][i][2] = dq[mb][i][3] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < p.nk; k0 += BN) {
      const int64_t k_valid = min64(BN, p.nk - k0);
      __syncthreads();
      if constexpr (MMA) {
        stage_rows_bf16<BN, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::k), row0(p.k, b, h, k0), p.k.sn,
                                     k_valid, d, dp, p.k.vec2);
        stage_rows_bf16<BN, DMAX, W>(reinterpret_cast<uint32_t*>(smem + Plan::v), row0(p.v, b, h, k0), p.v.sn,
                                     k_valid, d, dp, p.v.vec2);
        stage_cols_bf16<BN, W>(reinterpret_cast<uint32_t*>(smem + Plan::kt), row0(p.k, b, h, k0), p.k.sn, k_valid, d,
                               (d + 7) & ~7);
      } else {
        stage_f32<BN, LD, W>(reinterpret_cast<float*>(smem + Plan::k), row0(p.k, b, h, k0), p.k.sn, k_valid, d, dp,
                             p.k.vec4);
        stage_f32<BN, LD, W>(reinterpret_cast<float*>(smem + Plan::v), row0(p.v, b, h, k0), p.v.sn, k_valid, d, dp,
                             p.v.vec4);
      }
      __syncthreads();
      if (!active) continue;

      // S = Q Kᵀ and dP = dO Vᵀ
      float s[MB][NB][4], dps[MB][NB][4];
      if constexpr (MMA) {
        abt_mma<DMAX, NB, MB>(s, reinterpret_cast<const uint32_t*>(smem + Plan::q), warp * MB,
                              reinterpret_cast<const uint32_t*>(smem + Plan::k), dp >> 4);
        abt_mma<DMAX, NB, MB>(dps, reinterpret_cast<const uint32_t*>(smem + Plan::dout), warp * MB,
                              reinterpret_cast<const uint32_t*>(smem + Plan::v), dp >> 4);
      } else {
        abt_simt<LD, NB>(s[0], reinterpret_cast<const float*>(smem + Plan::q), warp * 16,
                         reinterpret_cast<const float*>(smem + Plan::k), dp);
        abt_simt<LD, NB>(dps[0], reinterpret_cast<const float*>(smem + Plan::dout), warp * 16,
                         reinterpret_cast<const float*>(smem + Plan::v), dp);
      }
      // dS = P ∘ (dP - D), P = exp2(S · scale·log2e - L·log2e) and 0 for keys past Nk
      DV_ATTN_UNROLL
      for (int mb = 0; mb < MB; ++mb) {
        DV_ATTN_UNROLL
        for (int n = 0; n < NB; ++n) {
          DV_ATTN_UNROLL
          for (int e = 0; e < 4; ++e) {
            const int r = e >> 1;
            const float pr = 8 * n + 2 * t + (e & 1) < k_valid ? exp2f(s[mb][n][e] * p.sl2 - lse_r[mb][r]) : 0.0f;
            s[mb][n][e] = pr * (dps[mb][n][e] - del_r[mb][r]);
          }
        }
      }
      // dQ += dS K  (scaled at the end)
      if constexpr (MMA)
        pv_mma<BN, DMAX / 8, MB>(dq, s, reinterpret_cast<const uint32_t*>(smem + Plan::kt), (d + 7) >> 3);
      else
        pv_simt<BN, DMAX, LD>(dq[0], s[0], reinterpret_cast<float*>(smem + Plan::pw) + warp * 16 * (BN + 4),
                              reinterpret_cast<const float*>(smem + Plan::k), d, static_cast<int>((k_valid + 3) & ~3));
    }

    if (active) {
      DV_ATTN_UNROLL
      for (int mb = 0; mb < MB; ++mb)
        store_acc<MMA>(dq[mb], p.dq.p + b * p.dq.sb + h * p.dq.sh, p.dq.sn, q0 + (warp * MB + mb) * 16, p.nq, d,
                       p.scale, p.scale);
    }
  }
}

// ---- host side --------------------------------------------------------------------------------

InView in_view(const cpu::AttnIn& v) {
  const auto addr = reinterpret_cast<uintptr_t>(v.data);
  const int64_t strides = v.sb | v.sh | v.sn;
  return InView{v.data, v.sb, v.sh, v.sn, addr % 8 == 0 && strides % 2 == 0, addr % 16 == 0 && strides % 4 == 0};
}
OutView out_view(const cpu::AttnOut& v) { return OutView{v.data, v.sb, v.sh, v.sn}; }

unsigned grid_for(int64_t blocks) { return static_cast<unsigned>(blocks < kMaxGrid ? blocks : kMaxGrid); }

// Kernels using more than the default 48 KiB of dynamic shared memory opt in (once per kernel).
template <typename... Params>
void allow_shared(void (*kernel)(Params...), size_t bytes, const char* op) {
  if (bytes > 48 * 1024)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), op);
}

template <bool MMA, int DMAX, int W, int MB, int BN>
void run_forward(const cpu::AttentionForwardArgs& a) {
  constexpr const char* op = "attention_forward";
  auto kernel = &attention_forward_kernel<MMA, DMAX, W, MB, BN>;
  constexpr size_t bytes = FwdPlan<MMA, DMAX, W, MB, BN>::bytes;
  static_assert(bytes <= 99 * 1024, "attention_forward: shared memory");
  static const bool opted = (allow_shared(kernel, bytes, op), true);
  (void)opted;
  FwdParams p{};
  p.q = in_view(a.q);
  p.k = in_view(a.k);
  p.v = in_view(a.v);
  p.o = out_view(a.o);
  p.lse = a.lse;
  p.heads = a.heads;
  p.nq = a.nq;
  p.nk = a.nk;
  p.tiles = ceil_div(a.nq, 16 * MB * W);
  p.blocks = a.batch * a.heads * p.tiles;
  p.d = static_cast<int>(a.d);
  p.sl2 = a.scale * kLog2e;
  launch(op, kernel, dim3(grid_for(p.blocks)), dim3(W * 32), bytes, p);
}

// backward_kv: WKV warps (16 keys each), BNKV queries per tile, DC columns per block; backward_q: WQ
// warps of MBQ 16-row blocks, BNQ keys per tile.
template <bool MMA, int DMAX, int WKV, int BNKV, int DC, int WQ, int MBQ, int BNQ>
void run_backward(const cpu::AttentionBackwardArgs& a, const float* delta) {
  auto kv = &attention_backward_kv_kernel<MMA, DMAX, WKV, BNKV, DC>;
  auto qk = &attention_backward_q_kernel<MMA, DMAX, WQ, MBQ, BNQ>;
  constexpr size_t kv_bytes = KvPlan<MMA, DMAX, WKV, BNKV, DC>::bytes;
  constexpr size_t q_bytes = QPlan<MMA, DMAX, WQ, MBQ, BNQ>::bytes;
  static_assert(kv_bytes <= 99 * 1024 && q_bytes <= 99 * 1024, "attention_backward: shared memory");
  static const bool opted = (allow_shared(kv, kv_bytes, "attention_backward"),
                             allow_shared(qk, q_bytes, "attention_backward"), true);
  (void)opted;
  BwdParams p{};
  p.q = in_view(a.q);
  p.k = in_view(a.k);
  p.v = in_view(a.v);
  p.dout = in_view(a.dout);
  p.lse = a.lse;
  p.delta = delta;
  p.dq = out_view(a.dq);
  p.dk = out_view(a.dk);
  p.dv = out_view(a.dv);
  p.heads = a.heads;
  p.nq = a.nq;
  p.nk = a.nk;
  p.d = static_cast<int>(a.d);
  p.scale = a.scale;
  p.sl2 = a.scale * kLog2e;
  const int64_t pairs = a.batch * a.heads;
  p.tiles = ceil_div(a.nk, 16 * WKV);
  p.chunks = ceil_div(a.d, DC);
  p.blocks = pairs * p.tiles * p.chunks;
  launch("attention_backward_kv", kv, dim3(grid_for(p.blocks)), dim3(WKV * 32), kv_bytes, p);
  if (a.nq == 0) return;
  p.tiles = ceil_div(a.nq, 16 * MBQ * WQ);
  p.chunks = 1;
  p.blocks = pairs * p.tiles;
  launch("attention_backward_q", qk, dim3(grid_for(p.blocks)), dim3(WQ * 32), q_bytes, p);
}

}  // namespace

// Tile shapes per (precision, head-dim class): W warps of MB 16-row blocks (16·MB·W rows per block),
// BN rows of the inner loop's tiles, DC columns of dK/dV per backward_kv block. Chosen to keep the
// accumulators plus the S tile(s) within the register file without spills and shared memory under
// 99 KiB. On tensor cores two 16-row blocks per warp (MB = 2) share every B fragment, halving the
// shared-memory traffic per mma where the registers allow it.
void attention_forward(const cpu::AttentionForwardArgs& a) {
  if (a.batch == 0 || a.heads == 0 || a.nq == 0) return;
  const bool bf16 = a.precision == cpu::MatmulPrecision::bf16;
  if (a.d <= 32) {
    bf16 ? run_forward<true, 32, 4, 2, 64>(a) : run_forward<false, 32, 4, 1, 64>(a);
  } else if (a.d <= 64) {
    bf16 ? run_forward<true, 64, 4, 2, 64>(a) : run_forward<false, 64, 4, 1, 32>(a);
  } else if (a.d <= 128) {
    bf16 ? run_forward<true, 128, 4, 1, 64>(a) : run_forward<false, 128, 4, 1, 32>(a);
  } else {
    bf16 ? run_forward<true, 256, 4, 1, 32>(a) : run_forward<false, 256, 2, 1, 16>(a);
  }
}

void attention_backward(const cpu::AttentionBackwardArgs& a) {
  const int64_t pairs = a.batch * a.heads;
  if (pairs == 0) return;
  const int64_t rows = pairs * a.nq;
  DeviceScratch delta(static_cast<size_t>(rows > 0 ? rows : 1) * sizeof(float));
  if (rows > 0) {
    DeltaParams p{in_view(a.o), in_view(a.dout), delta.as<float>(), a.heads, a.nq, rows, static_cast<int>(a.d)};
    launch("attention_backward_delta", &attention_delta_kernel,
           dim3(grid_for(std::min<int64_t>(ceil_div(rows, 8), 1 << 20))), dim3(256), 0, p);
  }
  const bool bf16 = a.precision == cpu::MatmulPrecision::bf16;
  const float* dl = delta.as<float>();
  if (a.d <= 32) {
    bf16 ? run_backward<true, 32, 4, 64, 32, 4, 2, 32>(a, dl) : run_backward<false, 32, 4, 32, 32, 4, 1, 32>(a, dl);
  } else if (a.d <= 64) {
    bf16 ? run_backward<true, 64, 4, 64, 64, 4, 2, 32>(a, dl) : run_backward<false, 64, 4, 32, 64, 4, 1, 32>(a, dl);
  } else if (a.d <= 128) {
    bf16 ? run_backward<true, 128, 4, 32, 128, 4, 1, 32>(a, dl)
         : run_backward<false, 128, 4, 16, 128, 4, 1, 16>(a, dl);
  } else {
    bf16 ? run_backward<true, 256, 4, 16, 128, 4, 1, 16>(a, dl) : run_backward<false, 256, 2, 8, 128, 2, 1, 8>(a, dl);
  }
}

}  // namespace dv::cuda
