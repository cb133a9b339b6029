// The `precision` argument of the GEMM kernels ('float32' | 'bf16'): chosen per call by the caller
// (lib/tensor/autocast.ts), never process-wide state.
#pragma once
#include "addon/args.h"
#include "cpu/gemm.h"

namespace dv::addon {
inline cpu::MatmulPrecision read_precision(Args& a, int i) {
  return a.choice(i, {"float32", "bf16"}) == 1 ? cpu::MatmulPrecision::bf16 : cpu::MatmulPrecision::float32;
}
}  // namespace dv::addon
