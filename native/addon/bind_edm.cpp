// Bindings for cpu/edm.h (the fused EDM noise-prediction step).
#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/edm.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// Sigmas must be positive and finite: every coefficient divides by or takes the log of them.
// On CUDA the sigmas are not read back to check them (that would wait for the device on every
// training step): non-positive or infinite sigmas are not rejected up front there, and the device
// kernels, which never fault on them, produce the NaN or infinity the formulas give.
void check_sigmas(Args& a, int i, const float* s, int64_t batch) {
  if (DV_ON_CUDA(a)) return;
  for (int64_t b = 0; b < batch; ++b) {
    if (!(s[b] > 0.0f) || s[b] > 3.4e38f) {
      char value[32];
      snprintf(value, sizeof value, "%g", static_cast<double>(s[b]));
      a.fail(i, "positive finite sigmas", std::string(value) + " at index " + std::to_string(b));
    }
  }
}

float sigma_data(Args& a, int i) {
  const float sd = static_cast<float>(a.number(i));
  if (!(sd > 0)) a.fail(i, "a positive sigma_data", std::to_string(sd));
  return sd;
}
}  // namespace

// edmNoise: with drawSigma, first writes the training noise levels σ = exp(pMean + pStd·z) into
// sigma (z: elements sigmaCounter.. of Philox(seed)); cNoise (optional) receives ln(σ)/4.
DV_KERNEL_IMPL(edmNoise) {
  const int64_t batch = a.integer(4), per = a.integer(5);
  const uint64_t seed = a.integer(6, 0, int64_t(1) << 53), counter = a.integer(7, 0, int64_t(1) << 53);
  const float sd = sigma_data(a, 8);
  const bool draw = a.boolean(11);
  const uint64_t sigma_counter = a.integer(12, 0, int64_t(1) << 53);
  const double p_mean = a.number(13), p_std = a.number(14);
  float* sigma = a.f32(2);
  float* c_noise = a.f32(15);
  if (draw) DV_RUN(a, edm_training_sigmas, batch, seed, sigma_counter, p_mean, p_std, sigma);
  check_sigmas(a, 2, sigma, batch);
  if (c_noise) DV_RUN(a, edm_noise_levels, sigma, batch, c_noise);
  DV_RUN(a, edm_noise, a.f32(0), sigma, batch, per, seed, counter, sd, a.f32(9), a.f32(10));
  return info.Env().Undefined();
}

// edmLoss: the mean loss (accumulated in float64) is stored as float32 at loss[lossOffset], on the
// device: no value comes back to the caller.
DV_KERNEL_IMPL(edmLoss) {
  const int64_t batch = a.integer(7, 1, kMaxSize), per = a.integer(8, 1, kMaxSize);
  const float sd = sigma_data(a, 9);
  const float *F = a.f32(0), *x_noisy = a.f32(2), *y = a.f32(3), *sigma = a.f32(5);
  float *dF = a.f32(10), *loss = a.f32(11);
  check_sigmas(a, 5, sigma, batch);
  if (DV_ON_CUDA(a)) {
#if DV_CUDA
    // The mean is written into the device buffer by the kernels: nothing is read back.
    cuda::edm_loss(F, x_noisy, y, sigma, batch, per, sd, dF, loss);
#endif
  } else {
    *loss = static_cast<float>(cpu::edm_loss(F, x_noisy, y, sigma, batch, per, sd, dF));
  }
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(edmSamplerStep) {
  cpu::EdmStepArgs s{};
  s.batch = a.integer(6);
  s.per = a.integer(7);
  s.guided = a.boolean(8);
  s.guidance = static_cast<float>(a.number(9));
  s.sigma = static_cast<float>(a.number(10));
  s.sigma_data = static_cast<float>(a.number(11));
  s.h = static_cast<float>(a.number(12));
  s.a = static_cast<float>(a.number(13));
  s.b = static_cast<float>(a.number(14));
  if (!(s.sigma > 0)) a.fail(10, "a positive sigma", std::to_string(s.sigma));
  if (!(s.sigma_data > 0)) a.fail(11, "a positive sigma_data", std::to_string(s.sigma_data));
  s.F = a.f32(0);
  s.x = a.f32(1);
  s.base = a.f32(2);
  s.d_prev = a.f32(3);
  s.d_out = a.f32(4);
  s.x_next = a.f32(5);
  DV_RUN(a, edm_sampler_step, s);
  return info.Env().Undefined();
}

}  // namespace dv::addon
