// The fused EDM noise-prediction step on the GPU (edm.cu), as cpu/edm.h. Differences: edm_loss
// writes the mean loss into device memory instead of returning it (no host sync).
#pragma once
#include "cpu/edm.h"

namespace dv::cuda {
void edm_training_sigmas(int64_t batch, uint64_t seed, uint64_t counter, double p_mean, double p_std, float* sigma);
void edm_noise_levels(const float* sigma, int64_t batch, float* c_noise);
void edm_noise(const float* y, const float* sigma, int64_t batch, int64_t per, uint64_t seed, uint64_t counter,
               float sigma_data, float* x_noisy, float* x_in);
// *loss (device) = the mean weighted loss, accumulated in float64.
void edm_loss(const float* F, const float* x_noisy, const float* y, const float* sigma, int64_t batch, int64_t per,
              float sigma_data, float* dF, float* loss);
void edm_sampler_step(const cpu::EdmStepArgs& args);
}  // namespace dv::cuda
