#include <algorithm>
#include <cstring>

#include "core/philox.h"
#include "core/thread_pool.h"
#include "cpu/elementwise.h"

namespace dv::cpu {

void copy_strided(const void* src_v, void* dst_v, int rank, const int64_t* shape, const int64_t* src_strides,
                  const int64_t* dst_strides) {
  const uint32_t* src = static_cast<const uint32_t*>(src_v);
  uint32_t* dst = static_cast<uint32_t*>(dst_v);
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  if (n == 0) return;
  if (rank == 0) {
    dst[0] = src[0];
    return;
  }
  int64_t inner = shape[rank - 1], s_in = src_strides[rank - 1], d_in = dst_strides[rank - 1];
  int64_t rows = n / inner;
  parallel_for(rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t so = 0, doff = 0, rem = r;
      for (int d = rank - 2; d >= 0; --d) {
        int64_t i = rem % shape[d];
        rem /= shape[d];
        so += i * src_strides[d];
        doff += i * dst_strides[d];
      }
      const uint32_t* s = src + so;
      uint32_t* t = dst + doff;
      if (s_in == 1 && d_in == 1) {
        std::memcpy(t, s, inner * 4);
      } else {
        for (int64_t k = 0; k < inner; ++k) t[k * d_in] = s[k * s_in];
      }
    }
  });
}

void fill(float* dst, int64_t n, float value) {
  parallel_for(n, 65536, [&](int64_t a, int64_t b) { std::fill(dst + a, dst + b, value); });
}
void fill_i32(int32_t* dst, int64_t n, int32_t value) {
  parallel_for(n, 65536, [&](int64_t a, int64_t b) { std::fill(dst + a, dst + b, value); });
}

void random_normal(float* dst, int64_t n, uint64_t seed, uint64_t counter, float mean, float std) {
  parallel_for(n, 8192, [&](int64_t a, int64_t b) {
    standard_normals(seed, counter + a, b - a, dst + a);
    for (int64_t i = a; i < b; ++i) dst[i] = mean + std * dst[i];
  });
}

void random_uniform(float* dst, int64_t n, uint64_t seed, uint64_t counter, float lo, float hi) {
  parallel_for(n, 8192, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) dst[i] = lo + (hi - lo) * philox_uniform(seed, counter + i);
  });
}

}  // namespace dv::cpu
