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
void check_sigmas(Args& a, int i, const Buffer& sigma, int64_t offset, int64_t batch) {
  if (DV_ON_CUDA(a)) return;
  const float* s = sigma.as<float>() + offset;
  for (int64_t b = 0; b < batch; ++b) {
    if (!(s[b] > 0.0f) || s[b] > 3.4e38f) {
      char value[32];
      snprintf(value, sizeof value, "%g", static_cast<double>(s[b]));
      a.fail(i, "positive finite sigmas", std::string(value) + " at index " + std::to_string(b));
    }
  }
}
}  // namespace

// edmNoise: with drawSigma, first writes the training noise levels σ = exp(pMean + pStd·z) into
// sigma (z: elements sigmaCounter.. of Philox(seed)); cNoise (optional) receives ln(σ)/4.
DV_KERNEL_IMPL(edmNoise) {
  Buffer& y = a.buffer(0);
  Buffer& sigma = a.buffer(2);
  Buffer& xn = a.buffer(9);
  Buffer& xi = a.buffer(10);
  int64_t yo = a.integer(1), so = a.integer(3), batch = a.integer(4, 0, kMaxSize), per = a.integer(5, 0, kMaxSize);
  uint64_t seed = a.integer(6, 0, int64_t(1) << 53), counter = a.integer(7, 0, int64_t(1) << 53);
  float sd = static_cast<float>(a.number(8));
  if (!(sd > 0)) a.fail(8, "a positive sigma_data", std::to_string(sd));
  bool draw = a.boolean(11);
  uint64_t sigma_counter = a.integer(12, 0, int64_t(1) << 53);
  double p_mean = a.number(13), p_std = a.number(14);
  Buffer* cn = a.optional_buffer(15);
  int64_t co = a.integer(16);
  int64_t n = checked_numel({batch, per});
  a.require_extent(0, y, yo, n);
  a.require_extent(2, sigma, so, batch);
  a.require_extent(9, xn, 0, n);
  a.require_extent(10, xi, 0, n);
  if (cn) a.require_extent(15, *cn, co, batch);
  float* c_noise = cn ? cn->as<float>() + co : nullptr;
  if (draw) DV_RUN(a, edm_training_sigmas, batch, seed, sigma_counter, p_mean, p_std, sigma.as<float>() + so);
  check_sigmas(a, 2, sigma, so, batch);
  if (c_noise) DV_RUN(a, edm_noise_levels, sigma.as<float>() + so, batch, c_noise);
  DV_RUN(a, edm_noise, y.as<float>() + yo, sigma.as<float>() + so, batch, per, seed, counter, sd, xn.as<float>(),
         xi.as<float>());
  return info.Env().Undefined();
}

// edmLoss: the mean loss (accumulated in float64) is stored as float32 at loss[lossOffset], on the
// device: no value comes back to the caller.
DV_KERNEL_IMPL(edmLoss) {
  Buffer& F = a.buffer(0);
  Buffer& xn = a.buffer(2);
  Buffer& y = a.buffer(3);
  Buffer& sigma = a.buffer(5);
  Buffer& dF = a.buffer(10);
  Buffer& loss = a.buffer(11);
  int64_t fo = a.integer(1), yo = a.integer(4), so = a.integer(6), batch = a.integer(7, 1, kMaxSize), per = a.integer(8, 1, kMaxSize);
  int64_t lo = a.integer(12);
  float sd = static_cast<float>(a.number(9));
  if (!(sd > 0)) a.fail(9, "a positive sigma_data", std::to_string(sd));
  int64_t n = checked_numel({batch, per});
  a.require_extent(0, F, fo, n);
  a.require_extent(2, xn, 0, n);
  a.require_extent(3, y, yo, n);
  a.require_extent(5, sigma, so, batch);
  a.require_extent(10, dF, 0, n);
  a.require_extent(11, loss, lo, 1);
  check_sigmas(a, 5, sigma, so, batch);
  if (DV_ON_CUDA(a)) {
#if DV_CUDA
    // The mean is written into the device buffer by the kernels: nothing is read back.
    cuda::edm_loss(F.as<float>() + fo, xn.as<float>(), y.as<float>() + yo, sigma.as<float>() + so, batch, per, sd,
                   dF.as<float>(), loss.as<float>() + lo);
#endif
  } else {
    double mean = cpu::edm_loss(F.as<float>() + fo, xn.as<float>(), y.as<float>() + yo, sigma.as<float>() + so, batch,
                                per, sd, dF.as<float>());
    loss.as<float>()[lo] = static_cast<float>(mean);
  }
  return info.Env().Undefined();
}

DV_KERNEL_IMPL(edmSamplerStep) {
  cpu::EdmStepArgs s{};
  Buffer& F = a.buffer(0);
  Buffer& x = a.buffer(1);
  Buffer& base = a.buffer(2);
  Buffer* dPrev = a.optional_buffer(3);
  Buffer& dOut = a.buffer(4);
  Buffer& xNext = a.buffer(5);
  s.batch = a.integer(6, 0, kMaxSize);
  s.per = a.integer(7, 0, kMaxSize);
  s.guided = a.boolean(8);
  s.guidance = static_cast<float>(a.number(9));
  s.sigma = static_cast<float>(a.number(10));
  s.sigma_data = static_cast<float>(a.number(11));
  s.h = static_cast<float>(a.number(12));
  s.a = static_cast<float>(a.number(13));
  s.b = static_cast<float>(a.number(14));
  if (!(s.sigma > 0)) a.fail(10, "a positive sigma", std::to_string(s.sigma));
  if (!(s.sigma_data > 0)) a.fail(11, "a positive sigma_data", std::to_string(s.sigma_data));
  int64_t n = checked_numel({s.batch, s.per});
  a.require_extent(0, F, 0, s.guided ? checked_numel({2, n}) : n);
  a.require_extent(1, x, 0, n);
  a.require_extent(2, base, 0, n);
  if (dPrev) a.require_extent(3, *dPrev, 0, n);
  a.require_extent(4, dOut, 0, n);
  a.require_extent(5, xNext, 0, n);
  s.F = F.as<float>();
  s.x = x.as<float>();
  s.base = base.as<float>();
  s.d_prev = dPrev ? dPrev->as<float>() : nullptr;
  s.d_out = dOut.as<float>();
  s.x_next = xNext.as<float>();
  DV_RUN(a, edm_sampler_step, s);
  return info.Env().Undefined();
}

}  // namespace dv::addon
