// Which bf16 kernel runs (cpu/gemm.h).
#include "core/cpu_features.h"
#include "core/errors.h"
#include "cpu/gemm.h"

namespace dv::cpu {
Bf16Path bf16_path() {
  return isa_level() == IsaLevel::avx512 && cpu_features().avx512bf16 ? Bf16Path::avx512bf16 : Bf16Path::emulated;
}

const char* bf16_path_name(Bf16Path path) {
  return path == Bf16Path::avx512bf16 ? "avx512bf16 (vdpbf16ps micro-kernel)"
                                      : "emulated (operands rounded to bf16 while packing, fp32 FMA micro-kernel)";
}

}  // namespace dv::cpu
