// The process-wide matmul precision and which bf16 kernel runs (cpu/gemm.h).
#include <atomic>
#include <cstdlib>

#include "core/cpu_features.h"
#include "core/errors.h"
#include "cpu/gemm.h"

namespace dv::cpu {
namespace {
// -1 until the environment is read (or a value is set). Atomic: worker threads that load the
// addon share it with the main thread.
std::atomic<int> g_precision{-1};
}  // namespace

MatmulPrecision matmul_precision() {
  int p = g_precision.load(std::memory_order_relaxed);
  if (p >= 0) return static_cast<MatmulPrecision>(p);
  MatmulPrecision parsed = MatmulPrecision::float32;
  const char* env = std::getenv("DIFFVIT_MATMUL_PRECISION");
  // A typo must not silently run the other precision: refuse until it is fixed or overridden.
  if (env && *env && !parse_matmul_precision(env, &parsed))
    fail("matmulPrecision", std::string("DIFFVIT_MATMUL_PRECISION expected 'float32' or 'bf16', received '") + env + "'");
  int expected = -1;
  g_precision.compare_exchange_strong(expected, static_cast<int>(parsed));
  return static_cast<MatmulPrecision>(g_precision.load(std::memory_order_relaxed));
}

void set_matmul_precision(MatmulPrecision precision) { g_precision.store(static_cast<int>(precision)); }

const char* matmul_precision_name(MatmulPrecision precision) {
  return precision == MatmulPrecision::bf16 ? "bf16" : "float32";
}

bool parse_matmul_precision(const std::string& name, MatmulPrecision* out) {
  if (name == "float32") *out = MatmulPrecision::float32;
  else if (name == "bf16") *out = MatmulPrecision::bf16;
  else return false;
  return true;
}

Bf16Path bf16_path() {
  return isa_level() == IsaLevel::avx512 && cpu_features().avx512bf16 ? Bf16Path::avx512bf16 : Bf16Path::emulated;
}

const char* bf16_path_name(Bf16Path path) {
  return path == Bf16Path::avx512bf16 ? "avx512bf16 (vdpbf16ps micro-kernel)"
                                      : "emulated (operands rounded to bf16 while packing, fp32 FMA micro-kernel)";
}

}  // namespace dv::cpu
