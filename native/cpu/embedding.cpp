// Embedding gather / scatter-add. Plain loops: both are memory moves the compiler vectorises, and
// the rows are usually short (one model dim), so the work split matters more than the ISA.
#include "cpu/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"

namespace dv::cpu {
namespace {
constexpr int64_t kGrainElems = 16384;  // floats moved per parallel_for chunk, at least
constexpr int64_t kMinColumns = 16;     // narrower column slices would share cache lines
}  // namespace

int64_t first_invalid_index(const int32_t* indices, int64_t n, int64_t rows) {
  for (int64_t k = 0; k < n; ++k)
    if (indices[k] < 0 || indices[k] >= rows) return k;
  return -1;
}

void embedding_gather(const float* table, int64_t dim, const int32_t* indices, int64_t n, float* out) {
  parallel_for(n, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, dim)), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) std::memcpy(out + k * dim, table + indices[k] * dim, sizeof(float) * dim);
  });
}

void embedding_scatter_add(const float* dy, int64_t dim, const int32_t* indices, int64_t n, float* dtable,
                           int64_t rows) {
  const int64_t total = rows * dim;
  parallel_for(total, kGrainElems, [&](int64_t a, int64_t b) { std::fill(dtable + a, dtable + b, 0.0f); });
  const int64_t grain = std::max(kMinColumns, kGrainElems / std::max<int64_t>(1, n));
  parallel_for(dim, grain, [&](int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    for (int64_t k = 0; k < n; ++k) {
      float* dst = dtable + indices[k] * dim + c0;
      const float* src = dy + k * dim + c0;
      for (int64_t c = 0; c < w; ++c) dst[c] += src[c];
    }
  });
}

}  // namespace dv::cpu
