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
}  // namespace

// out (...indicesShape, dim) = table (rows, dim) [indices]
DV_KERNEL_IMPL(embedding) {
  Buffer& table = a.buffer(0);
  Buffer& indices = a.buffer(4);
  Buffer& out = a.buffer(7);
  int64_t to = a.integer(1), io = a.integer(5), oo = a.integer(8);
  int64_t rows = a.integer(2, 0, kMaxSize), dim = a.integer(3, 0, kMaxSize);
  std::vector<int64_t> shape = a.integers(6, cpu::kMaxRank, 0, kMaxSize);
  int64_t n = checked_numel(shape);
  if (n > kMaxSize) a.fail(6, "at most 2^40 elements", std::to_string(n));
  a.require_extent(0, table, to, checked_numel({rows, dim}));
  a.require_extent(4, indices, io, n);
  a.require_extent(7, out, oo, checked_numel({n, dim}));
  const int32_t* idx = indices.as<int32_t>() + io;
  require_valid_indices(a, 4, idx, shape, n, rows);
  if (dim == 0 || n == 0) return info.Env().Undefined();
#if DV_CUDA
  if (DV_ON_CUDA(a)) {
    cuda::embedding_gather(table.as<float>() + to, dim, idx, n, out.as<float>() + oo, rows);
    return info.Env().Undefined();
  }
#endif
  cpu::embedding_gather(table.as<float>() + to, dim, idx, n, out.as<float>() + oo);
  return info.Env().Undefined();
}

// dtable (rows, dim) = 0, then dtable[indices[k]] += dy[k] in index order (dy is (...indicesShape, dim))
DV_KERNEL_IMPL(embeddingBackward) {
  Buffer& dy = a.buffer(0);
  Buffer& indices = a.buffer(2);
  Buffer& dtable = a.buffer(5);
  int64_t dyo = a.integer(1), io = a.integer(3), dto = a.integer(6);
  int64_t rows = a.integer(7, 0, kMaxSize), dim = a.integer(8, 0, kMaxSize);
  std::vector<int64_t> shape = a.integers(4, cpu::kMaxRank, 0, kMaxSize);
  int64_t n = checked_numel(shape);
  if (n > kMaxSize) a.fail(4, "at most 2^40 elements", std::to_string(n));
  a.require_extent(0, dy, dyo, checked_numel({n, dim}));
  a.require_extent(2, indices, io, n);
  a.require_extent(5, dtable, dto, checked_numel({rows, dim}));
  const int32_t* idx = indices.as<int32_t>() + io;
  require_valid_indices(a, 2, idx, shape, n, rows);
  if (rows == 0 || dim == 0) return info.Env().Undefined();
  DV_RUN(a, embedding_scatter_add, dy.as<float>() + dyo, dim, idx, n, dtable.as<float>() + dto, rows);
  return info.Env().Undefined();
}

}  // namespace dv::addon
