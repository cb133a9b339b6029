// Binding for cpu/gemm.h (and cuda/gemm.h for buffers on a CUDA device).
#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "addon/precision.h"
#include "addon/registry.h"
#include "cpu/gemm.h"

namespace dv::addon {

DV_KERNEL_IMPL(gemm) {
  cpu::GemmArgs g{};
  g.batch = a.integer(6);
  g.m = a.integer(7);
  g.n = a.integer(8);
  g.k = a.integer(9);
  g.trans_a = a.boolean(10);
  g.trans_b = a.boolean(11);
  g.alpha = static_cast<float>(a.number(12));
  g.beta = static_cast<float>(a.number(13));
  g.stride_a = a.integer(14);
  g.stride_b = a.integer(15);
  g.stride_c = a.integer(16);
  g.lda = a.integer(17);
  g.ldb = a.integer(18);
  g.ldc = a.integer(19);
  const int64_t a_cols = g.trans_a ? g.m : g.k, b_cols = g.trans_b ? g.k : g.n;
  if (g.lda < a_cols) a.fail(17, "lda >= " + std::to_string(a_cols), std::to_string(g.lda));
  if (g.ldb < b_cols) a.fail(18, "ldb >= " + std::to_string(b_cols), std::to_string(g.ldb));
  if (g.ldc < g.n) a.fail(19, "ldc >= " + std::to_string(g.n), std::to_string(g.ldc));
  if (g.stride_c == 0 && g.batch > 1) a.fail(16, "a non-zero stride when batch > 1 (C cannot be broadcast)", "0");
  // Batch items of C are written in parallel, so they must not share elements. (After the extent
  // check, which bounds (m - 1) * ldc by the buffer size, so this cannot overflow.)
  a.check_extents();
  if (g.batch > 1 && g.m > 0 && g.n > 0 && g.stride_c < (g.m - 1) * g.ldc + g.n)
    a.fail(16, "at least " + std::to_string((g.m - 1) * g.ldc + g.n) + " when batch > 1 (items of C must not overlap)",
           std::to_string(g.stride_c));
  g.precision = read_precision(a, 20);  // checked even when there is nothing to compute
  if (g.batch == 0 || g.m == 0 || g.n == 0) return info.Env().Undefined();
  g.a = a.f32(0);
  g.b = a.f32(2);
  g.c = a.f32(4);
  DV_RUN(a, gemm, g);
  return info.Env().Undefined();
}

// bf16GemmPath(): { path: 'amx' | 'avx512bf16' | 'emulated', description } at the active kernel level.
DV_BINDING(bf16GemmPath) {
  Args a(info, "bf16GemmPath", {});
  const cpu::Bf16Path path = cpu::bf16_path();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("path", cpu::bf16_path_name(path));
  out.Set("description", cpu::bf16_path_description(path));
  return out;
}

// setBf16PathLimit(first): bf16 GEMMs run on the first of amx, avx512bf16, emulated from `first`
// on that this CPU allows (process-wide; for tests and benchmarks comparing the kernels).
DV_BINDING(setBf16PathLimit) {
  Args a(info, "setBf16PathLimit", {"first"});
  static const cpu::Bf16Path paths[] = {cpu::Bf16Path::amx, cpu::Bf16Path::avx512bf16, cpu::Bf16Path::emulated};
  cpu::set_bf16_path_limit(paths[a.choice(0, {"amx", "avx512bf16", "emulated"})]);
  return info.Env().Undefined();
}

}  // namespace dv::addon
