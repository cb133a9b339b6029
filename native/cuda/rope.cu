// RoPE on the GPU (as cpu/rope.h). Memory-bound: a grid-stride loop with one thread per pair
// (i, i + dim/2) of one (batch, token, group), adjacent threads on adjacent pairs, so the x, y
// and table reads are coalesced. The products round as on the CPU's FMA levels (one fmaf onto a
// rounded product), so results match the avx2/avx512 kernels bit for bit.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/rope.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

__global__ void __launch_bounds__(kThreads)
    rope_kernel(const float* x, float* y, const float* cos, const float* sin, int64_t rows, int64_t tokens,
                int64_t groups, int64_t rotated_groups, int64_t half, float sign) {
  const int64_t pairs_per_row = groups * half, n = rows * pairs_per_row;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = k / pairs_per_row, in_row = k - r * pairs_per_row, g = in_row / half, i = in_row - g * half;
    const int64_t base = (r * groups + g) * 2 * half + i;
    const float a = x[base], b = x[base + half];
    if (g < rotated_groups) {
      const int64_t t = (r % tokens) * half + i;
      const float c = cos[t], s = sin[t] * sign;
      y[base] = fmaf(-b, s, __fmul_rn(a, c));
      y[base + half] = fmaf(a, s, __fmul_rn(b, c));
    } else {
      y[base] = a;
      y[base + half] = b;
    }
  }
}

}  // namespace

void rope(const float* x, float* y, const float* cos, const float* sin, int64_t batch, int64_t tokens, int64_t groups,
          int64_t rotated_groups, int64_t dim, bool inverse) {
  const int64_t rows = batch * tokens, half = dim / 2, work = rows * groups * half;
  if (work == 0) return;
  const unsigned blocks = unsigned(std::min(ceil_div(work, kThreads), kMaxBlocks));
  launch("rope", rope_kernel, dim3(blocks), dim3(kThreads), 0, x, y, cos, sin, rows, tokens, groups, rotated_groups,
         half, inverse ? -1.0f : 1.0f);
}

}  // namespace dv::cuda
