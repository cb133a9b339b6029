// The fused AdamW update on the GPU (the entry point of cuda/optim.h, mirroring cpu/optim.h).
//
// One pass: every element's p, g, m, v are read once and p, m, v written once (the update is
// memory-bound), with float4 loads and stores when the four pointers share their alignment modulo
// 16 bytes (the elements before the first aligned address and after the last full vector are done
// one by one), in a grid-stride loop. The arithmetic is the CPU's operation for operation
// (cpu/simd/optim.cpp): fmaf where the CPU has fmadd, and the products/differences it rounds
// separately written with __fmul_rn/__fsub_rn so that nvcc cannot fuse them; sqrt and division
// are IEEE. The result is bitwise the CPU's AVX2/AVX-512 result.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/optim.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

// p *= decay; m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2;
// p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
__device__ __forceinline__ float adamw_step(float p, float g, float& m, float& v, const cpu::AdamWParams& h) {
  m = fmaf(h.beta1, m, __fmul_rn(h.one_minus_beta1, g));
  v = fmaf(h.beta2, v, __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
  const float denom = fmaf(__fsqrt_rn(v), h.inv_sqrt_bc2, h.eps);
  return __fsub_rn(__fmul_rn(p, h.decay), __fdiv_rn(__fmul_rn(h.step_size, m), denom));
}

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             int64_t head, int64_t nvec, cpu::AdamWParams h) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t q = t; q < nvec; q += stride) {
    const int64_t i = head + 4 * q;
    float4 p = *reinterpret_cast<const float4*>(param + i), g = *reinterpret_cast<const float4*>(grad + i);
    float4 m = *reinterpret_cast<const float4*>(exp_avg + i), v = *reinterpret_cast<const float4*>(exp_avg_sq + i);
    p.x = adamw_step(p.x, g.x, m.x, v.x, h);
    p.y = adamw_step(p.y, g.y, m.y, v.y, h);
    p.z = adamw_step(p.z, g.z, m.z, v.z, h);
    p.w = adamw_step(p.w, g.w, m.w, v.w, h);
    *reinterpret_cast<float4*>(param + i) = p;
    *reinterpret_cast<float4*>(exp_avg + i) = m;
    *reinterpret_cast<float4*>(exp_avg_sq + i) = v;
  }
  // The scalar head [0, head) and tail [head + 4 nvec, n).
  const int64_t tail = head + 4 * nvec;
  for (int64_t k = t; k < head + (n - tail); k += stride) {
    const int64_t i = k < head ? k : tail + (k - head);
    float m = exp_avg[i], v = exp_avg_sq[i];
    param[i] = adamw_step(param[i], grad[i], m, v, h);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

}  // namespace

void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const cpu::AdamWParams& h) {
  if (n <= 0) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(param) % 16;
  const bool same = reinterpret_cast<uintptr_t>(grad) % 16 == a && reinterpret_cast<uintptr_t>(exp_avg) % 16 == a &&
                    reinterpret_cast<uintptr_t>(exp_avg_sq) % 16 == a && a % 4 == 0;
  int64_t head = n, nvec = 0;
  if (same) {
    head = std::min<int64_t>(n, a == 0 ? 0 : int64_t(16 - a) / 4);
    nvec = (n - head) / 4;
  }
  const int64_t work = std::max<int64_t>(nvec, n - 4 * nvec);
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min(ceil_div(work, kThreads), kMaxBlocks)));
  launch("adamw", adamw_kernel, blocks, kThreads, 0, param, grad, exp_avg, exp_avg_sq, n, head, nvec, h);
}

}  // namespace dv::cuda
