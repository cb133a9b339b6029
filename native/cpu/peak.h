// The measured arithmetic roof that GEMM throughput is judged against (bench/gemm.ts): long loops
// of independent multiply-add chains, enough of them to cover the FMA latency on every pipe.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

// fma_loop: iters steps of fma_loop_flops() flops each (fp32 FMAs at the level's vector width;
// at the scalar level, separate multiplies and adds). Returns a value that depends on every step.
DV_ISA_DECLARE(float fma_loop(int64_t iters, float x); int64_t fma_loop_flops();)

#if DV_X86
namespace dv::cpu::avx512 {
// As fma_loop with vdpbf16ps (2 multiply-adds per fp32 lane per instruction); needs AVX512_BF16.
float dpbf16_loop(int64_t iters, float x);
int64_t dpbf16_loop_flops();
}  // namespace dv::cpu::avx512
#endif

namespace dv::cpu {
inline float fma_loop(int64_t iters, float x) { DV_DISPATCH(fma_loop, iters, x); }
inline int64_t fma_loop_flops() { DV_DISPATCH(fma_loop_flops); }
}  // namespace dv::cpu
