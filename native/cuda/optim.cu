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
  g = __fmul_rn(g, h.grad_scale);  // exact for the eager step's scale 1
  m = fmaf(h.beta1, m, __fmul_rn(h.one_minus_beta1, g));
  v = fmaf(h.beta2, v, __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
  const float denom = fmaf(__fsqrt_rn(v), h.inv_sqrt_bc2, h.eps);
  return __fsub_rn(__fmul_rn(p, h.decay), __fdiv_rn(__fmul_rn(h.step_size, m), denom));
}

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                             int64_t head, int64_t nvec, cpu::AdamWParams h, const float* control) {
  // A captured step: the step's scalars from the control block (the graph froze h's).
  if (control) {
    if (control[cpu::step_control::apply] == 0.f) return;
    h.grad_scale = control[cpu::step_control::grad_scale];
    h.decay = control[cpu::step_control::decay];
    h.step_size = control[cpu::step_control::step_size];
    h.inv_sqrt_bc2 = control[cpu::step_control::inv_sqrt_bc2];
  }
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

// x - x is 0 for finite x and NaN for infinities and NaN (IEEE; no fast-math here): isfinite
// without relying on where the device compiler and the emulator's g++ declare it.
__device__ __forceinline__ bool finite(double x) { return x - x == 0.0; }

// One thread: cpu::train_step_control_value on the device (float64, IEEE sqrt and division).
__global__ void train_step_control_kernel(const float* stats, float* control, double grad_clip) {
  const double norm = sqrt(static_cast<double>(stats[1]));
  const bool finite_step = finite(stats[0]) && finite(norm);
  control[cpu::step_control::apply] = finite_step && control[cpu::step_control::enabled] != 0.f ? 1.f : 0.f;
  control[cpu::step_control::grad_scale] = grad_clip > 0 && norm > grad_clip ? static_cast<float>(grad_clip / (norm + 1e-6)) : 1.f;
}

void launch_adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const cpu::AdamWParams& h,
                  const float* control) {
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
  launch("adamw", adamw_kernel, blocks, kThreads, 0, param, grad, exp_avg, exp_avg_sq, n, head, nvec, h, control);
}

}  // namespace

void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const cpu::AdamWParams& h) {
  launch_adamw(param, grad, exp_avg, exp_avg_sq, n, h, nullptr);
}

void adamw_many(const cpu::AdamWTensor* tensors, int64_t count, const cpu::AdamWParams& h) {
  for (int64_t t = 0; t < count; ++t)
    if (tensors[t].n > 0) cuda::adamw(tensors[t].param, tensors[t].grad, tensors[t].exp_avg, tensors[t].exp_avg_sq, tensors[t].n, h);
}

void adamw_controlled(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                      const cpu::AdamWParams& h, const float* control) {
  launch_adamw(param, grad, exp_avg, exp_avg_sq, n, h, control);
}

void train_step_control(const float* stats, float* control, double grad_clip) {
  launch("train_step_control", train_step_control_kernel, 1, 1, 0, stats, control, grad_clip);
}

}  // namespace dv::cuda
