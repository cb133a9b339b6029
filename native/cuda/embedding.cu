// Embedding gather / scatter-add on the GPU (the entry points of cuda/embedding.h, mirroring
// cpu/embedding.h).
//
//  - first_invalid_index: a grid-stride scan; each block takes the smallest bad position it saw
//    (shuffles, then shared memory) and atomicMin's it into one 8-byte device word, which is the
//    only value copied back to the host (min is order-independent, so the answer is exact).
//  - embedding_gather: a 2-D block, lanes along the row (float4 when dim % 4 == 0 and the pointers
//    are 16-byte aligned) and several output rows per block for short rows.
//  - embedding_scatter_add must add each element's contributions in index order, as the CPU does,
//    so that the result is deterministic and bitwise the CPU's. Instead of one thread per column
//    walking all n indices (a serial chain of n read-modify-writes per column), the positions are
//    grouped by table row: the 64-bit keys (index << 32 | position) are unique, so sorting them
//    (bitonic sort: 1024-key segments in shared memory, then global merge steps, O(n log^2 n) and
//    deterministic) lists every row's positions in increasing order. Then each table row is
//    written once: its lanes find the row's run of keys by binary search and add dy[position] in
//    that order into a register that starts at 0 — the CPU's sum, bit for bit — and store it
//    (rows no index names get 0, so no separate zero fill is needed). Work is parallel over rows
//    and columns; only repeats of one row are serial, and they read dy, not a chain of stores.
//    n >= 2^32 (positions no longer fit the key) falls back to the column-serial walk.
#include <algorithm>
#include <climits>

#include "cuda/common.cuh"
#include "cuda/elementwise.h"
#include "cuda/embedding.h"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;
constexpr int kSortSegment = 1024;  // keys sorted per block in shared memory

int grid_for(int64_t blocks) { return static_cast<int>(std::max<int64_t>(1, std::min(blocks, kMaxBlocks))); }

// A (lanes x rows) block of 256 threads: lanes a power of two covering `units` per row (32..256).
dim3 row_block(int64_t units) {
  int lanes = 32;
  while (lanes < kThreads && lanes < units) lanes *= 2;
  return dim3(lanes, kThreads / lanes);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// ------------------------------------------------------------------------------------------------
// first_invalid_index

__global__ void init_u64_kernel(unsigned long long* p, unsigned long long v) { *p = v; }

__global__ void first_invalid_kernel(const int32_t* indices, int64_t n, int64_t rows, unsigned long long* result) {
  __shared__ unsigned long long warp_min[kThreads / 32];
  unsigned long long first = ULLONG_MAX;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int32_t v = indices[k];
    if (v < 0 || v >= rows) {
      first = static_cast<unsigned long long>(k);  // this thread's positions only increase
      break;
    }
  }
DV_UNROLL
  for (int off = 16; off > 0; off >>= 1) {
    unsigned long long other = __shfl_xor_sync(0xffffffffu, first, off);
    first = other < first ? other : first;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_min[warp] = first;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x >> 5); ++w) first = warp_min[w] < first ? warp_min[w] : first;
    if (first != ULLONG_MAX) atomicMin(result, first);
  }
}

// ------------------------------------------------------------------------------------------------
// embedding_gather

__global__ void gather_kernel(const float* table, int64_t dim, const int32_t* indices, int64_t n, float* out,
                              int64_t rows, bool vec) {
  const int64_t units = vec ? dim / 4 : dim;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; k < n; k += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = indices[k];
    if (row < 0 || row >= rows) {  // only in graph replays, where the binding cannot check: zeros, never a stray read
      for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) out[k * dim + j] = 0.0f;
      continue;
    }
    if (vec) {
      const float4* src = reinterpret_cast<const float4*>(table + row * dim);
      float4* dst = reinterpret_cast<float4*>(out + k * dim);
      for (int64_t j = threadIdx.x; j < units; j += blockDim.x) dst[j] = src[j];
    } else {
      const float* src = table + row * dim;
      float* dst = out + k * dim;
      for (int64_t j = threadIdx.x; j < units; j += blockDim.x) dst[j] = src[j];
    }
  }
}

// ------------------------------------------------------------------------------------------------
// embedding_scatter_add: keys, bitonic sort, one pass over the table rows

__global__ void make_keys_kernel(const int32_t* indices, int64_t n, int64_t padded, unsigned long long* keys) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < padded; p += int64_t(gridDim.x) * blockDim.x)
    keys[p] = p < n ? (static_cast<unsigned long long>(static_cast<uint32_t>(indices[p])) << 32) |
                          static_cast<unsigned long long>(p)
                    : ULLONG_MAX;
}

// Compare-exchange of keys i < l = i + j, ascending where (global index of i) & k == 0.
__device__ __forceinline__ void bitonic_pair(unsigned long long& a, unsigned long long& b, bool ascending) {
  if ((a > b) == ascending) {
    unsigned long long t = a;
    a = b;
    b = t;
  }
}

// Sorting-network steps inside one segment of 2 * blockDim.x keys held in shared memory: for every
// stage k in [k_first, k_last] (powers of two), the steps j = min(k, segment) / 2 ... 1.
__global__ void bitonic_local_kernel(unsigned long long* keys, int64_t k_first, int64_t k_last) {
  __shared__ unsigned long long s[kSortSegment];
  const int64_t seg = 2 * int64_t(blockDim.x), base = int64_t(blockIdx.x) * seg;
  const int t = threadIdx.x;
  s[t] = keys[base + t];
  s[t + blockDim.x] = keys[base + t + blockDim.x];
  __syncthreads();
  for (int64_t k = k_first; k <= k_last; k <<= 1) {
    for (int j = static_cast<int>((k < seg ? k : seg) / 2); j > 0; j >>= 1) {
      const int i = ((t & ~(j - 1)) << 1) | (t & (j - 1));  // j is a power of two
      bitonic_pair(s[i], s[i + j], ((base + i) & k) == 0);
      __syncthreads();
    }
  }
  keys[base + t] = s[t];
  keys[base + t + blockDim.x] = s[t + blockDim.x];
}

// One step (k, j) of the network over all `padded` keys, j >= the shared-memory segment.
__global__ void bitonic_global_kernel(unsigned long long* keys, int64_t padded, int64_t k, int64_t j) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < padded / 2; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = ((t & ~(j - 1)) << 1) | (t & (j - 1));  // j is a power of two
    unsigned long long a = keys[i], b = keys[i + j];
    const bool ascending = (i & k) == 0;
    if ((a > b) == ascending) {
      keys[i] = b;
      keys[i + j] = a;
    }
  }
}

void bitonic_sort(unsigned long long* keys, int64_t padded) {
  const int64_t seg = std::min<int64_t>(padded, kSortSegment);
  const int threads = static_cast<int>(seg / 2);
  const int64_t segments = padded / seg;
  // Segments fully sorted (alternating directions, as the network wants).
  launch("embeddingBackward", bitonic_local_kernel, static_cast<unsigned>(segments), threads, 0, keys, int64_t(2), seg);
  for (int64_t k = 2 * seg; k <= padded; k <<= 1) {
    for (int64_t j = k / 2; j >= seg; j >>= 1)
      launch("embeddingBackward", bitonic_global_kernel, grid_for(ceil_div(padded / 2, kThreads)), kThreads, 0, keys,
             padded, k, j);
    launch("embeddingBackward", bitonic_local_kernel, static_cast<unsigned>(segments), threads, 0, keys, k, k);
  }
}

// First position in sorted keys[0, n) whose key is >= target.
__device__ __forceinline__ int64_t lower_bound(const unsigned long long* keys, int64_t n, unsigned long long target) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (keys[mid] < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// dtable[row] = sum of dy[p] over the sorted run of row's keys, in position order; 0 for no run.
// blockDim.y rows per block, blockDim.x lanes along each row.
__global__ void scatter_rows_kernel(const float* dy, int64_t dim, const unsigned long long* keys, int64_t n,
                                    float* dtable, int64_t rows, bool vec) {
  __shared__ int64_t run[kThreads / 32][2];
  const int64_t units = vec ? dim / 4 : dim;
  for (int64_t base = int64_t(blockIdx.x) * blockDim.y; base < rows; base += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = base + threadIdx.y;
    if (row < rows && threadIdx.x < 2) {
      const unsigned long long target = static_cast<unsigned long long>(row + threadIdx.x) << 32;
      run[threadIdx.y][threadIdx.x] = row + threadIdx.x >= (int64_t(1) << 31) ? n : lower_bound(keys, n, target);
    }
    __syncthreads();
    if (row < rows) {
      const int64_t lo = run[threadIdx.y][0], hi = run[threadIdx.y][1];
      if (vec) {
        const float4* src = reinterpret_cast<const float4*>(dy);
        float4* dst = reinterpret_cast<float4*>(dtable + row * dim);
        for (int64_t j = threadIdx.x; j < units; j += blockDim.x) {
          float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          for (int64_t p = lo; p < hi; ++p) {
            const float4 v = src[int64_t(keys[p] & 0xffffffffull) * units + j];
            acc.x += v.x;
            acc.y += v.y;
            acc.z += v.z;
            acc.w += v.w;
          }
          dst[j] = acc;
        }
      } else {
        for (int64_t j = threadIdx.x; j < units; j += blockDim.x) {
          float acc = 0.0f;
          for (int64_t p = lo; p < hi; ++p) acc += dy[int64_t(keys[p] & 0xffffffffull) * dim + j];
          dtable[row * dim + j] = acc;
        }
      }
    }
    __syncthreads();  // run[] is rewritten by the next iteration
  }
}

// Fallback for n >= 2^32: one thread per column walks every index in order (dtable zeroed first).
__global__ void scatter_columns_kernel(const float* dy, int64_t dim, const int32_t* indices, int64_t n,
                                       float* dtable) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < dim; j += int64_t(gridDim.x) * blockDim.x)
    for (int64_t k = 0; k < n; ++k) dtable[int64_t(indices[k]) * dim + j] += dy[k * dim + j];
}

}  // namespace

int64_t first_invalid_index(const int32_t* indices, int64_t n, int64_t rows) {
  if (n <= 0) return -1;
  DeviceScratch result(sizeof(unsigned long long));
  unsigned long long* r = result.as<unsigned long long>();
  launch("embedding", init_u64_kernel, 1, 1, 0, r, ULLONG_MAX);
  launch("embedding", first_invalid_kernel, grid_for(ceil_div(n, kThreads)), kThreads, 0, indices, n, rows, r);
  unsigned long long host = 0;
  copy_to_host(&host, r, sizeof host, "embedding");
  return host == ULLONG_MAX ? -1 : static_cast<int64_t>(host);
}

void embedding_gather(const float* table, int64_t dim, const int32_t* indices, int64_t n, float* out, int64_t rows) {
  if (n <= 0 || dim <= 0) return;
  const bool vec = dim % 4 == 0 && aligned16(table) && aligned16(out);
  const dim3 block = row_block(vec ? dim / 4 : dim);
  launch("embedding", gather_kernel, grid_for(ceil_div(n, block.y)), block, 0, table, dim, indices, n, out, rows, vec);
}

void embedding_scatter_add(const float* dy, int64_t dim, const int32_t* indices, int64_t n, float* dtable,
                           int64_t rows) {
  if (rows <= 0 || dim <= 0) return;
  if (n <= 0) return fill(dtable, rows * dim, 0.0f);
  if (n >= (int64_t(1) << 32)) {
    fill(dtable, rows * dim, 0.0f);
    launch("embeddingBackward", scatter_columns_kernel, grid_for(ceil_div(dim, kThreads)), kThreads, 0, dy, dim,
           indices, n, dtable);
    return;
  }
  int64_t padded = 2;  // a power of two >= n, at least one pair
  while (padded < n) padded *= 2;
  DeviceScratch keys(sizeof(unsigned long long) * padded);
  unsigned long long* k = keys.as<unsigned long long>();
  launch("embeddingBackward", make_keys_kernel, grid_for(ceil_div(padded, kThreads)), kThreads, 0, indices, n, padded,
         k);
  bitonic_sort(k, padded);
  const bool vec = dim % 4 == 0 && aligned16(dy) && aligned16(dtable);
  const dim3 block = row_block(vec ? dim / 4 : dim);
  launch("embeddingBackward", scatter_rows_kernel, grid_for(ceil_div(rows, block.y)), block, 0, dy, dim,
         static_cast<const unsigned long long*>(k), n, dtable, rows, vec);
}

}  // namespace dv::cuda
