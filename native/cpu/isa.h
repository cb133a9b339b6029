// Declaring and dispatching kernels that are compiled once per ISA level (files in cpu/simd/).
//
//   DV_ISA_DECLARE(void softmax(const float* x, float* y, int64_t rows, int64_t cols);)
//   inline void softmax(...) { DV_DISPATCH(softmax, x, y, rows, cols); }
#pragma once
#include "core/cpu_features.h"

#if DV_X86
#define DV_ISA_DECLARE(...)           \
  namespace dv::cpu::avx512 {         \
  __VA_ARGS__                         \
  }                                   \
  namespace dv::cpu::avx2 {           \
  __VA_ARGS__                         \
  }                                   \
  namespace dv::cpu::scalar {         \
  __VA_ARGS__                         \
  }
#define DV_DISPATCH(fn, ...)                                                   \
  switch (::dv::isa_level()) {                                                 \
    case ::dv::IsaLevel::avx512: return ::dv::cpu::avx512::fn(__VA_ARGS__);    \
    case ::dv::IsaLevel::avx2: return ::dv::cpu::avx2::fn(__VA_ARGS__);        \
    default: return ::dv::cpu::scalar::fn(__VA_ARGS__);                        \
  }
#else
#define DV_ISA_DECLARE(...) \
  namespace dv::cpu::scalar { \
  __VA_ARGS__               \
  }
#define DV_DISPATCH(fn, ...) return ::dv::cpu::scalar::fn(__VA_ARGS__);
#endif
