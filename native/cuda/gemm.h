// Batched GEMM with the bias/GELU epilogue on the GPU, as cpu/gemm.h: cuBLASLt when
// libcublasLt.so.13 loads (cublaslt.h), else the project's own tensor-core kernel (gemm.cu).
#pragma once
#include "cpu/gemm.h"

namespace dv::cuda {
void gemm(const cpu::GemmArgs& args);
// Which implementation gemm() uses in this process, for `diffvit info`: "cuBLASLt 13.x" or the
// reason it is not loaded and the own kernel serves.
const char* gemm_path();
}  // namespace dv::cuda
