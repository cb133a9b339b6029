// Reductions on the GPU (the entry points of cuda/reduce.h, mirroring cpu/reduce.h).
//
// reduce_sum over the middle axis of (outer, r, inner), in a fixed order so results are the same
// run to run (no atomics; the order depends only on the shape, never on the GPU):
//  - inner == 1 (row sums): a group of G lanes per row, G = r/4 rounded down to a power of two
//    between 1 and 32 (a warp), so short rows do not leave 31 lanes idle. Lanes accumulate a strided share of the row
//    (float4 loads when the rows are 16-byte aligned), then combine with xor-shuffles. Long rows
//    over few rows (r > 4096 with fewer than 2048 rows) are split into 8192-element chunks, one
//    256-thread block each; the chunk sums are then summed by the same code, as an (outer, chunks)
//    row sum.
//  - inner > 1 (column sums): 32x8-thread blocks; the 32 lanes of a warp read 32 consecutive
//    columns (coalesced), the 8 warps interleave the rows and their 8 partial sums are added in warp
//    order through shared memory. When outer x (inner / 32) gives too few blocks to fill the GPU,
//    r is split into chunks whose partial sums form an (outer, chunks, inner) tensor that is
//    reduced again.
// sum_squares: the gradient norm's multi-tensor reduction, one launch for all tensors. The host
// uploads a table of (pointer, count, first chunk) for the non-empty tensors; each block squares
// and sums one 16384-element chunk of one tensor in float64 (found by binary search in the table)
// and writes its partial; one final block adds the partials in a fixed order and writes the
// float32 result to *out on the device. float64 makes the result independent of the split (up to
// float64 rounding), and NaN/Inf anywhere make it non-finite, as on the CPU.
#include <algorithm>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/elementwise.h"
#include "cuda/reduce.h"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;
constexpr int64_t kRowChunk = 8192;      // elements per block when long rows are split
constexpr int64_t kLongRow = 4096;       // rows longer than this may be split...
constexpr int64_t kManyRows = 2048;      // ...unless there are this many rows to spread instead
constexpr int64_t kTargetBlocks = 1024;  // column sums: split r until about this many blocks run
constexpr int64_t kMinColChunk = 64;     // ...but give each block at least this many rows
constexpr int64_t kSqChunk = 16384;      // sum_squares: elements per block

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int grid_for(int64_t blocks) { return static_cast<int>(std::max<int64_t>(1, std::min(blocks, kMaxBlocks))); }

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
DV_UNROLL
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), valid in thread 0. Fixed order.
template <typename T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ T warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  T total = 0;
  if (warp == 0) {
    total = lane < warps ? warp_sums[lane] : T(0);
    total = warp_sum(total);
  }
  __syncthreads();  // warp_sums may be reused by the caller's next iteration
  return total;
}

// ------------------------------------------------------------------------------------------------
// Row sums (inner == 1)

// G lanes per row, 256 / G rows per block, grid-stride over blocks of rows.
template <int G>
__global__ void row_sum_kernel(const float* x, float* out, int64_t outer, int64_t r, bool vec) {
  constexpr int kRowsPerBlock = kThreads / G;
  const int lane = threadIdx.x % G;
  for (int64_t base = int64_t(blockIdx.x) * kRowsPerBlock; base < outer; base += int64_t(gridDim.x) * kRowsPerBlock) {
    const int64_t row = base + threadIdx.x / G;
    float acc = 0.0f;
    if (row < outer) {
      const float* p = x + row * r;
      int64_t j = 0;
      if (vec) {
        const int64_t nv = r / 4;
        for (int64_t v = lane; v < nv; v += G) {
          float4 a = reinterpret_cast<const float4*>(p)[v];
          acc += a.x;
          acc += a.y;
          acc += a.z;
          acc += a.w;
        }
        j = 4 * nv;
      }
      for (j += lane; j < r; j += G) acc += p[j];
    }
DV_UNROLL
    for (int off = G / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (row < outer && lane == 0) out[row] = acc;
  }
}

// One block per (row, chunk of kRowChunk elements): dst[row * chunks + chunk].
__global__ void row_chunk_kernel(const float* x, float* dst, int64_t outer, int64_t r, int64_t chunks, bool vec) {
  for (int64_t bid = blockIdx.x; bid < outer * chunks; bid += gridDim.x) {
    const int64_t o = bid / chunks, c = bid - o * chunks, r0 = c * kRowChunk;
    const int64_t len = min64(kRowChunk, r - r0);
    const float* p = x + o * r + r0;
    float acc = 0.0f;
    int64_t j = 0;
    if (vec) {
      const int64_t nv = len / 4;
      for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
        float4 a = reinterpret_cast<const float4*>(p)[v];
        acc += a.x;
        acc += a.y;
        acc += a.z;
        acc += a.w;
      }
      j = 4 * nv;
    }
    for (j += threadIdx.x; j < len; j += blockDim.x) acc += p[j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) dst[bid] = acc;
  }
}

template <int G>
void launch_row_sum(const float* x, float* out, int64_t outer, int64_t r, bool vec) {
  launch("reduceSum", row_sum_kernel<G>, grid_for(ceil_div(outer, kThreads / G)), kThreads, 0, x, out, outer, r, vec);
}

void row_sums(const float* x, float* out, int64_t outer, int64_t r) {
  const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 && r % 4 == 0;
  if (r > kLongRow && outer < kManyRows) {
    const int64_t chunks = ceil_div(r, kRowChunk);
    if (chunks == 1) {
      launch("reduceSum", row_chunk_kernel, grid_for(outer), kThreads, 0, x, out, outer, r, chunks, vec);
      return;
    }
    DeviceScratch partial(sizeof(float) * outer * chunks);
    launch("reduceSum", row_chunk_kernel, grid_for(outer * chunks), kThreads, 0, x, partial.as<float>(), outer, r,
           chunks, vec);
    row_sums(partial.as<float>(), out, outer, chunks);
    return;
  }
  // Lanes per row: r / 4 rounded down to a power of two, between 1 and 32.
  int g = 1;
  while (g < 32 && int64_t(g) * 2 * 4 <= r) g *= 2;
  switch (g) {
    case 1: return launch_row_sum<1>(x, out, outer, r, vec);
    case 2: return launch_row_sum<2>(x, out, outer, r, vec);
    case 4: return launch_row_sum<4>(x, out, outer, r, vec);
    case 8: return launch_row_sum<8>(x, out, outer, r, vec);
    case 16: return launch_row_sum<16>(x, out, outer, r, vec);
    default: return launch_row_sum<32>(x, out, outer, r, vec);
  }
}

// ------------------------------------------------------------------------------------------------
// Column sums (inner > 1)

constexpr int kColTile = 32, kColRows = 8;

// Block (32, 8) per (o, chunk c, tile of 32 columns): dst[(o * chunks + c) * inner + i] is the sum
// of rows [c * chunk, (c + 1) * chunk) of column i.
__global__ void col_sum_kernel(const float* x, float* dst, int64_t outer, int64_t r, int64_t inner, int64_t chunk,
                               int64_t chunks, int64_t tiles) {
  __shared__ float partial[kColRows][kColTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t bid = blockIdx.x; bid < outer * chunks * tiles; bid += gridDim.x) {
    const int64_t tile = bid % tiles, rest = bid / tiles, c = rest % chunks, o = rest / chunks;
    const int64_t i = tile * kColTile + tx, r0 = c * chunk, r1 = min64(r, r0 + chunk);
    float acc = 0.0f;
    if (i < inner) {
      const float* p = x + o * r * inner + i;
      for (int64_t rr = r0 + ty; rr < r1; rr += kColRows) acc += p[rr * inner];
    }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && i < inner) {
      float s = partial[0][tx];
DV_UNROLL
      for (int k = 1; k < kColRows; ++k) s += partial[k][tx];
      dst[(o * chunks + c) * inner + i] = s;
    }
    __syncthreads();
  }
}

void col_sums(const float* x, float* out, int64_t outer, int64_t r, int64_t inner) {
  const int64_t tiles = ceil_div(inner, kColTile), base = outer * tiles;
  int64_t chunks = 1;
  if (base < kTargetBlocks && r > kMinColChunk)
    chunks = std::min(ceil_div(r, kMinColChunk), ceil_div(kTargetBlocks, base));
  const int64_t chunk = ceil_div(r, chunks);
  chunks = ceil_div(r, chunk);
  const dim3 block(kColTile, kColRows);
  if (chunks == 1) {
    launch("reduceSum", col_sum_kernel, grid_for(base), block, 0, x, out, outer, r, inner, chunk, chunks, tiles);
    return;
  }
  DeviceScratch partial(sizeof(float) * outer * chunks * inner);
  launch("reduceSum", col_sum_kernel, grid_for(base * chunks), block, 0, x, partial.as<float>(), outer, r, inner,
         chunk, chunks, tiles);
  col_sums(partial.as<float>(), out, outer, chunks, inner);
}

// ------------------------------------------------------------------------------------------------
// sum_squares

struct SqEntry {
  const float* ptr;
  int64_t count;
  int64_t first_chunk;
};

__global__ void sum_squares_partial_kernel(const SqEntry* table, int64_t entries, int64_t chunks, double* partials) {
  for (int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    // The last entry whose first chunk is <= chunk (first_chunk increases strictly).
    int64_t lo = 0, hi = entries - 1;
    while (lo < hi) {
      int64_t mid = (lo + hi + 1) / 2;
      if (table[mid].first_chunk <= chunk) lo = mid;
      else hi = mid - 1;
    }
    const SqEntry e = table[lo];
    const int64_t start = (chunk - e.first_chunk) * kSqChunk, len = min64(kSqChunk, e.count - start);
    const float* p = e.ptr + start;
    double acc = 0.0;
    int64_t j = 0;
    if (reinterpret_cast<uintptr_t>(p) % 16 == 0) {
      const int64_t nv = len / 4;
      for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
        float4 a = reinterpret_cast<const float4*>(p)[v];
        acc += double(a.x) * a.x;
        acc += double(a.y) * a.y;
        acc += double(a.z) * a.z;
        acc += double(a.w) * a.w;
      }
      j = 4 * nv;
    }
    for (j += threadIdx.x; j < len; j += blockDim.x) acc += double(p[j]) * p[j];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[chunk] = acc;
  }
}

// One block: the partials in a fixed order, then *out = float(total).
__global__ void sum_squares_final_kernel(const double* partials, int64_t n, float* out) {
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) acc += partials[j];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = static_cast<float>(acc);
}

}  // namespace

void reduce_sum(const float* x, float* out, int64_t outer, int64_t r_len, int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  if (r_len <= 0) return fill(out, outer * inner, 0.0f);
  if (inner == 1) return row_sums(x, out, outer, r_len);
  col_sums(x, out, outer, r_len, inner);
}

void sum_squares(const std::vector<const float*>& xs, const std::vector<int64_t>& counts, float* out) {
  std::vector<SqEntry> table;
  int64_t chunks = 0;
  for (size_t t = 0; t < xs.size() && t < counts.size(); ++t) {
    if (counts[t] <= 0) continue;
    table.push_back({xs[t], counts[t], chunks});
    chunks += ceil_div(counts[t], kSqChunk);
  }
  if (chunks == 0) {
    launch("sumSquares", sum_squares_final_kernel, 1, 32, 0, static_cast<const double*>(nullptr), int64_t(0), out);
    return;
  }
  DeviceScratch table_d(sizeof(SqEntry) * table.size());
  DeviceScratch partials(sizeof(double) * chunks);
  copy_to_device_async(table_d.data(), table.data(), sizeof(SqEntry) * table.size());
  launch("sumSquares", sum_squares_partial_kernel, grid_for(chunks), kThreads,
         0, table_d.as<const SqEntry>(), static_cast<int64_t>(table.size()), chunks, partials.as<double>());
  launch("sumSquares", sum_squares_final_kernel, 1, 1024, 0, partials.as<const double>(), chunks, out);
}

}  // namespace dv::cuda
