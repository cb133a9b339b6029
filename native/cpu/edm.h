// The fused noise-prediction step of EDM (Karras et al. 2022, Table 1 preconditioning):
//   training  (a) optionally σ = exp(P_mean + P_std·z) and c_noise = ln(σ)/4 per image (z from Philox),
//             then x_noisy = y + σ·n, x_in = c_in·x_noisy, n drawn from Philox, in one pass;
//             (b) D = c_skip·x_noisy + c_out·F, loss = Σ λ(σ)(D − y)² / N and dL/dF in one pass;
//   sampling  (c) D = c_skip·x + c_out·F for the conditional and unconditional halves, the guidance
//             mix D_w = D_u + w(D_c − D_u), d = (x − D_w)/σ and x' = base + h(a·d_prev + b·d) in one pass.
// Images are (B, per) with one σ per image.
#pragma once
#include <cstdint>

namespace dv::cpu {

struct EdmCoefficients {
  double c_skip, c_out, c_in, weight;
};
inline EdmCoefficients edm_coefficients(double sigma, double sigma_data) {
  double s2 = sigma * sigma, sd2 = sigma_data * sigma_data, norm = 1.0 / __builtin_sqrt(s2 + sd2);
  return {sd2 / (s2 + sd2), sigma * sigma_data * norm, norm, (s2 + sd2) / (s2 * sd2)};
}

// (a) The training noise levels: σ_b = exp(P_mean + P_std·z_b), z_b = N(0,1) element (counter + b) of
// Philox(seed), computed in float64 and rounded to float32 (what the host computed before: bit for
// bit the same values).
void edm_training_sigmas(int64_t batch, uint64_t seed, uint64_t counter, double p_mean, double p_std, float* sigma);
// c_noise_b = ln(σ_b)/4 in float64, rounded to float32.
void edm_noise_levels(const float* sigma, int64_t batch, float* c_noise);

// (a) x_noisy[b, i] = y + σ_b n, x_in = c_in(σ_b) x_noisy; n = N(0,1) element (counter + b*per + i) of Philox(seed).
void edm_noise(const float* y, const float* sigma, int64_t batch, int64_t per, uint64_t seed, uint64_t counter,
               float sigma_data, float* x_noisy, float* x_in);

// (b) Returns the mean weighted loss; writes dF = d(loss)/dF.
double edm_loss(const float* F, const float* x_noisy, const float* y, const float* sigma, int64_t batch, int64_t per,
                float sigma_data, float* dF);

struct EdmStepArgs {
  const float* F;       // (G·B, per): G = 2 with guidance (conditional half first), else 1
  const float* x;       // (B, per): where D was evaluated
  const float* base;    // (B, per): the point the update starts from (x for Euler, x_hat for Heun's correction)
  const float* d_prev;  // (B, per) or null: the first Heun slope
  float* d_out;         // (B, per): d = (x − D_w)/σ
  float* x_next;        // (B, per)
  int64_t batch, per;
  bool guided;
  float guidance, sigma, sigma_data;
  float h, a, b;  // x_next = base + h (a·d_prev + b·d)
};
// (c)
void edm_sampler_step(const EdmStepArgs& args);

}  // namespace dv::cpu
