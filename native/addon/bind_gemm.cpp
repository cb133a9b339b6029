// Binding for cpu/gemm.h (and cuda/gemm.h for buffers on a CUDA device).
#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "addon/precision.h"
#include "addon/registry.h"
#include "cpu/gemm.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

// Elements spanned by `batch` matrices of rows x cols with leading dimension ld.
int64_t matrix_extent(int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld) {
  if (batch == 0 || rows == 0 || cols == 0) return 0;
  return strided_extent({batch, rows, cols}, {stride, ld, 1});
}
}  // namespace

DV_KERNEL_IMPL(gemm) {
  cpu::GemmArgs g{};
  Buffer& A = a.buffer(0);
  Buffer& B = a.buffer(2);
  Buffer& C = a.buffer(4);
  int64_t ao = a.integer(1), bo = a.integer(3), co = a.integer(5);
  g.batch = a.integer(6, 0, kMaxSize);
  g.m = a.integer(7, 0, kMaxSize);
  g.n = a.integer(8, 0, kMaxSize);
  g.k = a.integer(9, 0, kMaxSize);
  g.trans_a = a.boolean(10);
  g.trans_b = a.boolean(11);
  g.alpha = static_cast<float>(a.number(12));
  g.beta = static_cast<float>(a.number(13));
  g.stride_a = a.integer(14, 0, kMaxSize);
  g.stride_b = a.integer(15, 0, kMaxSize);
  g.stride_c = a.integer(16, 0, kMaxSize);
  g.lda = a.integer(17, 0, kMaxSize);
  g.ldb = a.integer(18, 0, kMaxSize);
  g.ldc = a.integer(19, 0, kMaxSize);
  int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  if (g.lda < a_cols) a.fail(17, "lda >= " + std::to_string(a_cols), std::to_string(g.lda));
  if (g.ldb < b_cols) a.fail(18, "ldb >= " + std::to_string(b_cols), std::to_string(g.ldb));
  if (g.ldc < g.n) a.fail(19, "ldc >= " + std::to_string(g.n), std::to_string(g.ldc));
  if (g.stride_c == 0 && g.batch > 1) a.fail(16, "a non-zero stride when batch > 1 (C cannot be broadcast)", "0");
  a.require_extent(0, A, ao, matrix_extent(g.batch, g.stride_a, a_rows, a_cols, g.lda));
  a.require_extent(2, B, bo, matrix_extent(g.batch, g.stride_b, b_rows, b_cols, g.ldb));
  a.require_extent(4, C, co, matrix_extent(g.batch, g.stride_c, g.m, g.n, g.ldc));
  // Batch items of C are written in parallel, so they must not share elements. (After the extent
  // check, which bounds (m - 1) * ldc by the buffer size, so this cannot overflow.)
  if (g.batch > 1 && g.m > 0 && g.n > 0 && g.stride_c < (g.m - 1) * g.ldc + g.n)
    a.fail(16, "at least " + std::to_string((g.m - 1) * g.ldc + g.n) + " when batch > 1 (items of C must not overlap)",
           std::to_string(g.stride_c));
  g.precision = read_precision(a, 20);  // checked even when there is nothing to compute
  if (g.batch == 0 || g.m == 0 || g.n == 0) return info.Env().Undefined();
  g.a = A.as<float>() + ao;
  g.b = B.as<float>() + bo;
  g.c = C.as<float>() + co;
  DV_RUN(a, gemm, g);
  return info.Env().Undefined();
}

// bf16GemmPath(): { path: 'avx512bf16' | 'emulated', description } at the active kernel level.
DV_BINDING(bf16GemmPath) {
  Args a(info, "bf16GemmPath", {});
  const cpu::Bf16Path path = cpu::bf16_path();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("path", path == cpu::Bf16Path::avx512bf16 ? "avx512bf16" : "emulated");
  out.Set("description", cpu::bf16_path_name(path));
  return out;
}

}  // namespace dv::addon
