// Bindings for cpu/embedding.h. Every index is checked against the table before anything is
// written; a bad one is reported with its value and its position in the indices tensor.
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/elementwise.h"
#include "cpu/embedding.h"
#if DV_CUDA
#include "cuda/runtime.h"
#endif

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// "[1, 2]": the multi-index of flat position `pos` in a row-major tensor of `shape`.
std::string position(const std::vector<int64_t>& shape, int64_t pos) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = pos % shape[d];
    pos /= shape[d];
  }
  std::string s = "[";
  for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + "]";
}

// Throws the standard argument error when an index falls outside [0, rows). On a CUDA device the
// check runs there and only the bad position (then the bad value) is copied back.
void require_valid_indices(Args& a, int arg, const int32_t* indices, const std::vector<int64_t>& shape, int64_t n,
                           int64_t rows) {
#if DV_CUDA
  // While a CUDA graph is captured nothing may be read back, and the indices a replay will see are
  // not known yet: they go unchecked (the scatter-add drops rows outside the table, the gather
  // writes zeros for them).
  if (DV_ON_CUDA(a) && cuda::capturing()) return;
#endif
  int64_t bad = DV_RUN(a, first_invalid_index, indices, n, rows);
  if (bad < 0) return;
  int32_t value = 0;
  if (DV_ON_CUDA(a)) {
#if DV_CUDA
    cuda::copy_to_host(&value, indices + bad, sizeof value, "embedding");
#endif
  } else {
    value = indices[bad];
  }
  a.fail(arg, "values in [0, " + std::to_string(rows) + ") (rows of the table)",
         std::to_string(value) + " at position " + position(shape, bad));
}

// The indices' shape (their extent, declared in kernels.def, is its product): at most 2^40 of them.
const std::vector<int64_t>& indices_shape(Args& a, int i, int64_t* n) {
  const std::vector<int64_t>& shape = a.dims(i);
  *n = checked_numel(shape);
  if (*n > kMaxSize) a.fail(i, "at most 2^40 elements", std::to_string(*n));
  return shape;
}
}  // namespace

// out (...indicesShape, dim) = table (rows, dim) [indices]
DV_KERNEL_IMPL(embedding) {
  const int64_t rows = a.integer(2), dim = a.integer(3);
  int64_t n;
  const std::vector<int64_t>& shape = indices_shape(a, 6, &n);
  const int32_t* idx = a.data<const int32_t>(4);
  require_valid_indices(a, 4, idx, shape, n, rows);
  if (dim == 0 || n == 0) return info.Env().Undefined();
#if DV_CUDA
  if (DV_ON_CUDA(a)) {
    cuda::embedding_gather(a.f32(0), dim, idx, n, a.f32(7), rows);
    return info.Env().Undefined();
  }
#endif
  cpu::embedding_gather(a.f32(0), dim, idx, n, a.f32(7));
  return info.Env().Undefined();
}

// dtable (rows, dim) = 0, then dtable[indices[k]] += dy[k] in index order (dy is (...indicesShape, dim))
DV_KERNEL_IMPL(embeddingBackward) {
  const int64_t rows = a.integer(7), dim = a.integer(8);
  int64_t n;
  const std::vector<int64_t>& shape = indices_shape(a, 4, &n);
  const int32_t* idx = a.data<const int32_t>(2);
  require_valid_indices(a, 2, idx, shape, n, rows);
  if (rows == 0 || dim == 0) return info.Env().Undefined();
  DV_RUN(a, embedding_scatter_add, a.f32(0), dim, idx, n, a.f32(5), rows);
  return info.Env().Undefined();
}

}  // namespace dv::addon
