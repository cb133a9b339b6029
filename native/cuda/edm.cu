// The fused EDM noise-prediction step on the GPU (as cpu/edm.h), bit for bit the CPU's results
// except for the loss's float64 sum order.
//
//   edm_training_sigmas  one thread per image: z = element (counter + b) of Philox(seed)'s normal
//                        stream (core/philox.h, the same source as the CPU's), σ = exp(P_mean +
//                        P_std·z) in float64 with the product and the sum rounded apart, as the CPU.
//   edm_noise_levels     c_noise = ln(σ)/4 in float64.
//   edm_noise            one thread per Philox normal pair (stream elements 2p, 2p+1), so every
//                        Box-Muller draw is computed once: x_noisy = y + σ·n and x_in = c_in·x_noisy
//                        written in the same pass (float2 stores when the pairs are 8-byte aligned).
//   edm_loss             D = c_skip·x_noisy + c_out·F, r = D − y, loss += λ·r² in float64 and dF in
//                        one pass; one float64 partial per block (the grid is fixed by the size, so
//                        each thread's elements are too), then one block adds the partials in a
//                        fixed order and writes float32(mean) to the device `loss`: no host sync.
//   edm_sampler_step     the guided Euler/Heun update, elementwise (float4 when aligned); outputs may
//                        alias x, base or d_prev (every element is read before it is written, by
//                        the same thread).
//
// Per-image coefficients (c_skip, c_out, c_in, λ) are computed once per image by a small kernel, in
// float64 exactly as cpu::edm_coefficients (each product, sum, square root and quotient rounded on
// its own) and rounded to float32. The CPU's edm.cpp is compiled without FMA contraction, so the
// float arithmetic here uses the _rn intrinsics (never fused) to round every step as it does.
// Transcendentals (log, exp, sin, cos in float64) come from CUDA's libdevice on the GPU and from
// glibc on the CPU (and in the emulator): both within an ulp or two of float64, so after rounding to
// float32 they agree except when a value lies within that distance of a float32 rounding boundary
// (about 1 in 2^28 draws); in the emulator they are bit-identical.
//
// Non-positive sigmas on CUDA are not rejected up front (that would need a host read): the kernels
// then compute what the math gives (NaN or infinity) and never fault.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/philox.h"
#include "cuda/common.cuh"
#include "cuda/edm.h"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

// float64 product and sum rounded on their own (never contracted into an FMA).
__device__ __forceinline__ double dmul(double a, double b) {
#if defined(DV_CUDA_EMULATOR)
  volatile double r = a * b;
  return r;
#else
  return __dmul_rn(a, b);
#endif
}
__device__ __forceinline__ double dadd(double a, double b) {
#if defined(DV_CUDA_EMULATOR)
  volatile double r = a + b;
  return r;
#else
  return __dadd_rn(a, b);
#endif
}

struct Coefficients {
  float c_skip, c_out, c_in, weight;
};

// cpu::edm_coefficients(sigma, sigma_data) rounded to float32, step for step.
__device__ __forceinline__ Coefficients coefficients(float sigma, float sigma_data) {
  const double s = sigma, sd = sigma_data;
  const double s2 = dmul(s, s), sd2 = dmul(sd, sd), sum = dadd(s2, sd2);
  const double norm = 1.0 / sqrt(sum);
  return {static_cast<float>(sd2 / sum), static_cast<float>(dmul(dmul(s, sd), norm)), static_cast<float>(norm),
          static_cast<float>(sum / dmul(s2, sd2))};
}

__global__ void __launch_bounds__(kThreads)
    coefficients_kernel(const float* sigma, int64_t batch, float sigma_data, Coefficients* out) {
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += int64_t(gridDim.x) * blockDim.x)
    out[b] = coefficients(sigma[b], sigma_data);
}

unsigned blocks_for(int64_t work) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, kThreads), kMaxBlocks)));
}

// Per-image coefficients into device scratch.
void compute_coefficients(const float* sigma, int64_t batch, float sigma_data, Coefficients* out) {
  launch("edmCoefficients", coefficients_kernel, dim3(blocks_for(batch)), dim3(kThreads), 0, sigma, batch, sigma_data,
         out);
}

// Element `index` of the standard normal stream of Philox(key).
__device__ __forceinline__ float normal_element(uint64_t key, uint64_t index) {
  float even, odd;
  philox_normal_pair(key, index >> 1, &even, &odd);
  return (index & 1) ? odd : even;
}

__global__ void __launch_bounds__(kThreads) training_sigmas_kernel(int64_t batch, uint64_t seed, uint64_t counter,
                                                                   double p_mean, double p_std, float* sigma) {
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += int64_t(gridDim.x) * blockDim.x) {
    const float z = normal_element(seed, counter + uint64_t(b));
    sigma[b] = static_cast<float>(exp(dadd(dmul(static_cast<double>(z), p_std), p_mean)));
  }
}

__global__ void __launch_bounds__(kThreads) noise_levels_kernel(const float* sigma, int64_t batch, float* c_noise) {
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < batch; b += int64_t(gridDim.x) * blockDim.x)
    c_noise[b] = static_cast<float>(log(static_cast<double>(sigma[b])) / 4.0);
}

struct NoiseArgs {
  const float* y;
  const float* sigma;
  const Coefficients* coef;
  float* x_noisy;
  float* x_in;
  int64_t n, per;
  uint64_t seed, first;  // the stream element of index 0
  int64_t pairs;         // Philox normal pairs covering elements first .. first + n - 1
};

// Element i (0 <= i < n) from its normal z.
__device__ __forceinline__ void noise_element(const NoiseArgs& a, int64_t i, float z, float& xn, float& xi) {
  const int64_t b = i / a.per;
  xn = __fadd_rn(a.y[i], __fmul_rn(a.sigma[b], z));
  xi = __fmul_rn(a.coef[b].c_in, xn);
}

// Thread t: pair p = first / 2 + t, stream elements 2p and 2p + 1 = local indices i0 and i0 + 1.
// Pairs2: `first` is even and the arrays are 8-byte aligned, so whole pairs go as float2.
template <bool Pairs2>
__global__ void __launch_bounds__(kThreads) noise_kernel(NoiseArgs a) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < a.pairs; t += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t pair = (a.first >> 1) + uint64_t(t);
    const int64_t i0 = int64_t(2 * pair - a.first);  // -1 for the first pair when `first` is odd
    float z[2];
    philox_normal_pair(a.seed, pair, &z[0], &z[1]);
    if (Pairs2 && i0 + 1 < a.n) {
      float xn0, xi0, xn1, xi1;
      noise_element(a, i0, z[0], xn0, xi0);
      noise_element(a, i0 + 1, z[1], xn1, xi1);
      *reinterpret_cast<float2*>(a.x_noisy + i0) = make_float2(xn0, xn1);
      *reinterpret_cast<float2*>(a.x_in + i0) = make_float2(xi0, xi1);
      continue;
    }
    for (int k = 0; k < 2; ++k) {
      const int64_t i = i0 + k;
      if (i < 0 || i >= a.n) continue;
      float xn, xi;
      noise_element(a, i, z[k], xn, xi);
      a.x_noisy[i] = xn;
      a.x_in[i] = xi;
    }
  }
}

// ================================ loss ================================

constexpr int kLossMaxBlocks = 1024;

struct LossArgs {
  const float* F;
  const float* x_noisy;
  const float* y;
  const Coefficients* coef;
  float* dF;
  int64_t n, per;
  float inv_n;
  double* partial;  // one per block
};

// Element i: writes dF and returns λ·r² in float64, as the CPU rounds it.
__device__ __forceinline__ double loss_element(const LossArgs& a, int64_t i, float F, float xn, float y, float& dF) {
  const Coefficients c = a.coef[i / a.per];
  const float r = __fsub_rn(__fadd_rn(__fmul_rn(c.c_skip, xn), __fmul_rn(c.c_out, F)), y);
  dF = __fmul_rn(__fmul_rn(__fmul_rn(__fmul_rn(2.0f, c.weight), c.c_out), r), a.inv_n);
  return dmul(dmul(static_cast<double>(c.weight), static_cast<double>(r)), static_cast<double>(r));
}

// Block sum of one double per thread in a fixed tree order; the result in thread 0.
__device__ __forceinline__ double block_sum_double(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) sh[threadIdx.x] = sh[threadIdx.x] + sh[threadIdx.x + s];
    __syncthreads();
  }
  return sh[0];
}

// Vec4: every array 16-byte aligned and n % 4 == 0; thread v handles elements 4v .. 4v + 3.
template <bool Vec4>
__global__ void __launch_bounds__(kThreads) loss_kernel(LossArgs a) {
  __shared__ double sh[kThreads];
  double acc = 0.0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (Vec4) {
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < a.n / 4; v += stride) {
      const float4 F = reinterpret_cast<const float4*>(a.F)[v];
      const float4 xn = reinterpret_cast<const float4*>(a.x_noisy)[v];
      const float4 y = reinterpret_cast<const float4*>(a.y)[v];
      float4 d;
      acc = dadd(acc, loss_element(a, 4 * v, F.x, xn.x, y.x, d.x));
      acc = dadd(acc, loss_element(a, 4 * v + 1, F.y, xn.y, y.y, d.y));
      acc = dadd(acc, loss_element(a, 4 * v + 2, F.z, xn.z, y.z, d.z));
      acc = dadd(acc, loss_element(a, 4 * v + 3, F.w, xn.w, y.w, d.w));
      reinterpret_cast<float4*>(a.dF)[v] = d;
    }
  } else {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
      float d;
      acc = dadd(acc, loss_element(a, i, a.F[i], a.x_noisy[i], a.y[i], d));
      a.dF[i] = d;
    }
  }
  const double total = block_sum_double(acc, sh);
  if (threadIdx.x == 0) a.partial[blockIdx.x] = total;
}

// One block: loss[0] = float32(sum of the partials / n), the partials added in a fixed order.
__global__ void __launch_bounds__(kThreads) loss_final_kernel(const double* partial, int blocks, int64_t n, float* loss) {
  __shared__ double sh[kThreads];
  double acc = 0.0;
  for (int k = threadIdx.x; k < blocks; k += blockDim.x) acc = dadd(acc, partial[k]);
  const double total = block_sum_double(acc, sh);
  if (threadIdx.x == 0) *loss = static_cast<float>(total / static_cast<double>(n));
}

// ================================ sampler step ================================

struct StepArgs {
  const float* F;
  const float* x;
  const float* base;
  const float* d_prev;
  float* d_out;
  float* x_next;
  int64_t n;
  bool guided;
  float guidance, c_skip, c_out, inv_sigma, h, a, b;
};

// Element i of the step from its inputs: d and x_next, as the CPU rounds them.
__device__ __forceinline__ void step_element(const StepArgs& s, float x, float Fc, float Fu, float base, float dp,
                                             float& d, float& next) {
  float D = __fadd_rn(__fmul_rn(s.c_skip, x), __fmul_rn(s.c_out, Fc));
  if (s.guided) {
    const float Du = __fadd_rn(__fmul_rn(s.c_skip, x), __fmul_rn(s.c_out, Fu));
    D = __fadd_rn(Du, __fmul_rn(s.guidance, __fsub_rn(D, Du)));
  }
  d = __fmul_rn(__fsub_rn(x, D), s.inv_sigma);
  const float slope = __fadd_rn(__fmul_rn(s.b, d), s.d_prev ? __fmul_rn(s.a, dp) : 0.0f);
  next = __fadd_rn(base, __fmul_rn(s.h, slope));
}

template <bool Vec4>
__global__ void __launch_bounds__(kThreads) step_kernel(StepArgs s) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (Vec4) {
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < s.n / 4; v += stride) {
      // Every input is loaded before any output is stored (outputs may alias inputs).
      const float4 x = reinterpret_cast<const float4*>(s.x)[v];
      const float4 Fc = reinterpret_cast<const float4*>(s.F)[v];
      const float4 Fu = s.guided ? reinterpret_cast<const float4*>(s.F + s.n)[v] : Fc;
      const float4 base = reinterpret_cast<const float4*>(s.base)[v];
      const float4 dp = s.d_prev ? reinterpret_cast<const float4*>(s.d_prev)[v] : make_float4(0, 0, 0, 0);
      float4 d, next;
      step_element(s, x.x, Fc.x, Fu.x, base.x, dp.x, d.x, next.x);
      step_element(s, x.y, Fc.y, Fu.y, base.y, dp.y, d.y, next.y);
      step_element(s, x.z, Fc.z, Fu.z, base.z, dp.z, d.z, next.z);
      step_element(s, x.w, Fc.w, Fu.w, base.w, dp.w, d.w, next.w);
      reinterpret_cast<float4*>(s.d_out)[v] = d;
      reinterpret_cast<float4*>(s.x_next)[v] = next;
    }
  } else {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < s.n; i += stride) {
      const float x = s.x[i], Fc = s.F[i], Fu = s.guided ? s.F[s.n + i] : Fc, base = s.base[i];
      const float dp = s.d_prev ? s.d_prev[i] : 0.0f;
      float d, next;
      step_element(s, x, Fc, Fu, base, dp, d, next);
      s.d_out[i] = d;
      s.x_next[i] = next;
    }
  }
}

bool aligned(const void* p, uintptr_t bytes) { return p == nullptr || (reinterpret_cast<uintptr_t>(p) % bytes) == 0; }

}  // namespace

void edm_training_sigmas(int64_t batch, uint64_t seed, uint64_t counter, double p_mean, double p_std, float* sigma) {
  if (batch <= 0) return;
  launch("edmTrainingSigmas", training_sigmas_kernel, dim3(blocks_for(batch)), dim3(kThreads), 0, batch, seed, counter,
         p_mean, p_std, sigma);
}

void edm_noise_levels(const float* sigma, int64_t batch, float* c_noise) {
  if (batch <= 0) return;
  launch("edmNoiseLevels", noise_levels_kernel, dim3(blocks_for(batch)), dim3(kThreads), 0, sigma, batch, c_noise);
}

void edm_noise(const float* y, const float* sigma, int64_t batch, int64_t per, uint64_t seed, uint64_t counter,
               float sigma_data, float* x_noisy, float* x_in) {
  const int64_t n = batch * per;
  if (n <= 0) return;
  DeviceScratch coef(size_t(batch) * sizeof(Coefficients));
  compute_coefficients(sigma, batch, sigma_data, coef.as<Coefficients>());
  NoiseArgs a{y, sigma, coef.as<Coefficients>(), x_noisy, x_in, n, per, seed, counter, 0};
  a.pairs = int64_t(((counter + uint64_t(n) - 1) >> 1) - (counter >> 1) + 1);
  const bool pairs2 = (counter & 1) == 0 && aligned(y, 8) && aligned(x_noisy, 8) && aligned(x_in, 8);
  if (pairs2) launch("edmNoise", noise_kernel<true>, dim3(blocks_for(a.pairs)), dim3(kThreads), 0, a);
  else launch("edmNoise", noise_kernel<false>, dim3(blocks_for(a.pairs)), dim3(kThreads), 0, a);
}

void edm_loss(const float* F, const float* x_noisy, const float* y, const float* sigma, int64_t batch, int64_t per,
              float sigma_data, float* dF, float* loss) {
  const int64_t n = batch * per;
  if (n <= 0) return;
  const bool vec4 = n % 4 == 0 && aligned(F, 16) && aligned(x_noisy, 16) && aligned(y, 16) && aligned(dF, 16);
  // The grid depends on n alone, so each thread's elements (and every partial) do too.
  const int blocks = int(std::min<int64_t>(ceil_div(vec4 ? n / 4 : n, kThreads), kLossMaxBlocks));
  DeviceScratch coef(size_t(batch) * sizeof(Coefficients)), partial(size_t(blocks) * sizeof(double));
  compute_coefficients(sigma, batch, sigma_data, coef.as<Coefficients>());
  LossArgs a{F, x_noisy, y, coef.as<Coefficients>(), dF, n, per, 1.0f / static_cast<float>(n), partial.as<double>()};
  if (vec4) launch("edmLoss", loss_kernel<true>, dim3(blocks), dim3(kThreads), 0, a);
  else launch("edmLoss", loss_kernel<false>, dim3(blocks), dim3(kThreads), 0, a);
  launch("edmLoss", loss_final_kernel, dim3(1), dim3(kThreads), 0, static_cast<const double*>(partial.as<double>()),
         blocks, n, loss);
}

void edm_sampler_step(const cpu::EdmStepArgs& args) {
  const int64_t n = args.batch * args.per;
  if (n <= 0) return;
  // σ is a host value here: the coefficients are the CPU's own.
  const cpu::EdmCoefficients c = cpu::edm_coefficients(args.sigma, args.sigma_data);
  StepArgs s{args.F,
             args.x,
             args.base,
             args.d_prev,
             args.d_out,
             args.x_next,
             n,
             args.guided,
             args.guidance,
             static_cast<float>(c.c_skip),
             static_cast<float>(c.c_out),
             1.0f / args.sigma,
             args.h,
             args.a,
             args.b};
  const bool vec4 = n % 4 == 0 && aligned(s.F, 16) && aligned(s.x, 16) && aligned(s.base, 16) &&
                    aligned(s.d_prev, 16) && aligned(s.d_out, 16) && aligned(s.x_next, 16);
  if (vec4) launch("edmSamplerStep", step_kernel<true>, dim3(blocks_for(n / 4)), dim3(kThreads), 0, s);
  else launch("edmSamplerStep", step_kernel<false>, dim3(blocks_for(n)), dim3(kThreads), 0, s);
}

}  // namespace dv::cuda
