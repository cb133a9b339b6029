// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
// Counter-based: element i of a draw depends only on (seed, offset + i), so every backend and
// every thread count produces the same numbers.
//
// The generator is also compiled into the CUDA kernels (cuda/elementwise.cu): DV_HOST_DEVICE marks
// it __host__ __device__ there (nothing on the CPU, whose code is unchanged). Its integer part gives
// the same bits on both sides; the kernels' Box-Muller repeats philox_normal_pair's float64 steps
// with core/sincos_series.h's sin/cos (CUDA's need local memory), as the CPU's vector levels do.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace dv {

struct Philox4 {
  uint32_t v[4];
};

DV_HOST_DEVICE inline Philox4 philox4x32(uint64_t counter, uint64_t key) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// uint32 -> float in (0, 1]: never 0, so log() in Box-Muller stays finite.
DV_HOST_DEVICE inline float philox_unit(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// Element `index` of the stream: uniform in (0, 1].
DV_HOST_DEVICE inline float philox_uniform(uint64_t key, uint64_t index) {
  return philox_unit(philox4x32(index >> 2, key).v[index & 3]);
}

// Elements (2k, 2k+1) of the normal stream: one Box-Muller draw from Philox block k.
DV_HOST_DEVICE inline void philox_normal_pair(uint64_t key, uint64_t pair, float* even, float* odd) {
  Philox4 r = philox4x32(pair, key);
  double u1 = philox_unit(r.v[0]), u2 = philox_unit(r.v[1]);
  double radius = std::sqrt(-2.0 * std::log(u1));
  double angle = 6.283185307179586 * u2;
  *even = static_cast<float>(radius * std::cos(angle));
  *odd = static_cast<float>(radius * std::sin(angle));
}

// Elements first .. first+n-1 of the standard normal stream into out: element i is the even or
// odd member of pair i >> 1, so any span of the stream has the same values however it is cut.
inline void philox_normals(uint64_t key, uint64_t first, int64_t n, float* out) {
  int64_t i = 0;
  float even, odd;
  if (n > 0 && (first & 1)) {
    philox_normal_pair(key, first >> 1, &even, &odd);
    out[i++] = odd;
  }
  for (; i + 1 < n; i += 2) philox_normal_pair(key, (first + i) >> 1, &out[i], &out[i + 1]);
  if (i < n) {
    philox_normal_pair(key, (first + i) >> 1, &even, &odd);
    out[i] = even;
  }
}

}  // namespace dv
