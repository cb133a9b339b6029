#include "cpu/edm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "cpu/elementwise.h"

namespace dv::cpu {

void edm_noise_levels(const float* sigma, int64_t batch, float* c_noise) {
  for (int64_t b = 0; b < batch; ++b) c_noise[b] = static_cast<float>(std::log(static_cast<double>(sigma[b])) / 4.0);
}

void edm_training_sigmas(int64_t batch, uint64_t seed, uint64_t counter, double p_mean, double p_std, float* sigma) {
  // The normals go into sigma first (the values randn() draws from the same stream elements).
  standard_normals(seed, counter, batch, sigma);
  for (int64_t b = 0; b < batch; ++b) {
    // Two roundings as in float64 JS (z·P_std, then + P_mean): kept apart so no FMA contracts them.
    volatile double scaled = static_cast<double>(sigma[b]) * p_std;
    sigma[b] = static_cast<float>(std::exp(scaled + p_mean));
  }
}

void edm_noise(const float* y, const float* sigma, int64_t batch, int64_t per, uint64_t seed, uint64_t counter,
               float sigma_data, float* x_noisy, float* x_in) {
  parallel_for(batch * per, 8192, [&](int64_t lo, int64_t hi) {
    // The noise goes into x_in first; each image's coefficients are computed once.
    standard_normals(seed, counter + lo, hi - lo, x_in + lo);
    for (int64_t i = lo; i < hi;) {
      const int64_t b = i / per, end = std::min(hi, (b + 1) * per);
      const float s = sigma[b], c_in = static_cast<float>(edm_coefficients(s, sigma_data).c_in);
      for (; i < end; ++i) {
        float xn = y[i] + s * x_in[i];
        x_noisy[i] = xn;
        x_in[i] = c_in * xn;
      }
    }
  });
}

double edm_loss(const float* F, const float* x_noisy, const float* y, const float* sigma, int64_t batch, int64_t per,
                float sigma_data, float* dF) {
  const int64_t n = batch * per;
  const int64_t grain = 16384;
  std::vector<double> partial(num_chunks(n, grain), 0.0);
  const float inv_n = 1.0f / static_cast<float>(n);
  parallel_for_chunks(n, grain, [&](int64_t chunk, int64_t lo, int64_t hi) {
    double acc = 0;
    int64_t b = -1;
    float c_skip = 0, c_out = 0, w = 0;
    for (int64_t i = lo; i < hi; ++i) {
      if (i / per != b) {
        b = i / per;
        EdmCoefficients c = edm_coefficients(sigma[b], sigma_data);
        c_skip = static_cast<float>(c.c_skip);
        c_out = static_cast<float>(c.c_out);
        w = static_cast<float>(c.weight);
      }
      float r = c_skip * x_noisy[i] + c_out * F[i] - y[i];
      acc += static_cast<double>(w) * r * r;
      dF[i] = 2.0f * w * c_out * r * inv_n;
    }
    partial[chunk] = acc;
  });
  double total = 0;
  for (double p : partial) total += p;
  return total / static_cast<double>(n);
}

void edm_sampler_step(const EdmStepArgs& s) {
  EdmCoefficients c = edm_coefficients(s.sigma, s.sigma_data);
  const float c_skip = static_cast<float>(c.c_skip), c_out = static_cast<float>(c.c_out);
  const float inv_sigma = 1.0f / s.sigma;
  const int64_t n = s.batch * s.per;
  parallel_for(n, 16384, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float x = s.x[i];
      float D = c_skip * x + c_out * s.F[i];
      if (s.guided) {
        float Du = c_skip * x + c_out * s.F[n + i];
        D = Du + s.guidance * (D - Du);
      }
      float d = (x - D) * inv_sigma;
      // Read every input of element i before writing: outputs may alias x, base or d_prev.
      float slope = s.b * d + (s.d_prev ? s.a * s.d_prev[i] : 0.0f);
      float next = s.base[i] + s.h * slope;
      s.d_out[i] = d;
      s.x_next[i] = next;
    }
  });
}

}  // namespace dv::cpu
