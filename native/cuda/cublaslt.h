// cuBLASLt, loaded at run time: dlopen("libcublasLt.so.13") and dlsym, so the addon neither links
// nor ships NVIDIA's library and runs (on the own GEMM kernel of gemm.cu) where it is absent.
//
// The declarations below are the project's own, written from the documented API of CUDA 13's
// cublasLt.h: the opaque handle types, the enum values this backend uses and the signatures of the
// functions it calls. No NVIDIA header is needed to build against them; cublaslt_check.cpp, built
// only where the real header is at hand (DV_CUBLASLT_INCLUDE), static_asserts that every value,
// every struct layout and every function type here equals the real one.
//
// Row-major to column-major: cuBLASLt's matrices are column-major, and a row-major r x c matrix with
// leading dimension ld is the column-major c x r one with the same ld. So the row-major
// C = op(A) op(B) runs as the column-major Cᵀ = op(B)ᵀ op(A)ᵀ: cuBLASLt's "A" is our B, its "B" our
// A, its D (n x m, ld = ldc) our C, and its bias (one value per row of D) is our per-column bias.
#pragma once
#include <cstddef>
#include <cstdint>

// The stream type of the CUDA runtime API (cudaStream_t is `struct CUstream_st*` in
// driver_types.h); declared at global scope so that it is the very same type.
struct CUstream_st;
// The handle's struct (cublasLtHandle_t is `struct cublasLtContext*`), at global scope likewise.
struct cublasLtContext;

namespace dv::cpu {
struct GemmArgs;
}

namespace dv::cuda::lt {

// cublasStatus_t (cublas_api.h).
enum Status : int {
  STATUS_SUCCESS = 0,
  STATUS_NOT_INITIALIZED = 1,
  STATUS_ALLOC_FAILED = 3,
  STATUS_INVALID_VALUE = 7,
  STATUS_ARCH_MISMATCH = 8,
  STATUS_MAPPING_ERROR = 11,
  STATUS_EXECUTION_FAILED = 13,
  STATUS_INTERNAL_ERROR = 14,
  STATUS_NOT_SUPPORTED = 15,
  STATUS_LICENSE_ERROR = 16,
};

// cublasOperation_t.
enum Operation : int { OP_N = 0, OP_T = 1 };

// cublasComputeType_t: fp32 accumulation with fp32 inputs (32F), or with inputs the library may
// round to bfloat16 (32F_FAST_16BF) or to TF32 (32F_FAST_TF32). The backend runs 32F only, on
// fp32 operands or on bf16 ones it rounded itself (cublaslt.cpp says why).
enum ComputeType : int { COMPUTE_32F = 68, COMPUTE_32F_FAST_16BF = 75, COMPUTE_32F_FAST_TF32 = 77 };

// cudaDataType_t (library_types.h).
enum DataType : int { R_32F = 0, R_16BF = 14 };

// cublasLtMatmulDescAttributes_t.
enum MatmulDescAttribute : int {
  MATMUL_DESC_COMPUTE_TYPE = 0,
  MATMUL_DESC_SCALE_TYPE = 1,
  MATMUL_DESC_POINTER_MODE = 2,
  MATMUL_DESC_TRANSA = 3,
  MATMUL_DESC_TRANSB = 4,
  MATMUL_DESC_EPILOGUE = 7,
  MATMUL_DESC_BIAS_POINTER = 8,
  MATMUL_DESC_BIAS_BATCH_STRIDE = 10,
  MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,
  MATMUL_DESC_EPILOGUE_AUX_LD = 12,
  MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE = 13,
  MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22,
  MATMUL_DESC_BIAS_DATA_TYPE = 26,
};

// cublasLtMatrixLayoutAttribute_t.
enum MatrixLayoutAttribute : int {
  MATRIX_LAYOUT_TYPE = 0,
  MATRIX_LAYOUT_ORDER = 1,
  MATRIX_LAYOUT_ROWS = 2,
  MATRIX_LAYOUT_COLS = 3,
  MATRIX_LAYOUT_LD = 4,
  MATRIX_LAYOUT_BATCH_COUNT = 5,
  MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,
};

// cublasLtOrder_t.
enum Order : int { ORDER_COL = 0, ORDER_ROW = 1 };

// cublasLtEpilogue_t. GELU is the tanh approximation; the _AUX forms also write the GELU's input
// (here: alpha op(A) op(B) + bias, GemmArgs::pre) to the EPILOGUE_AUX_POINTER matrix.
enum Epilogue : int {
  EPILOGUE_DEFAULT = 1,
  EPILOGUE_BIAS = 4,
  EPILOGUE_GELU = 32,
  EPILOGUE_GELU_AUX = 32 | 128,
  EPILOGUE_GELU_BIAS = 32 | 4,
  EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4,
};

// cublasLtMatmulPreferenceAttributes_t.
enum MatmulPreferenceAttribute : int {
  MATMUL_PREF_SEARCH_MODE = 0,
  MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
  MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
  MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
  MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
  MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
};

// Handles. cublasLtHandle_t is a pointer to an incomplete struct; the descriptors are pointers to
// semi-opaque structs of 64-bit words, whose sizes cublaslt_check.cpp checks.
using Handle = ::cublasLtContext*;
struct MatmulDescOpaque {
  uint64_t data[32];
};
struct MatrixLayoutOpaque {
  uint64_t data[8];
};
struct MatmulPreferenceOpaque {
  uint64_t data[8];
};
using MatmulDesc = MatmulDescOpaque*;
using MatrixLayout = MatrixLayoutOpaque*;
using MatmulPreference = MatmulPreferenceOpaque*;

// cublasLtMatmulAlgo_t: an algorithm found by the heuristic, passed back to cublasLtMatmul.
struct MatmulAlgo {
  uint64_t data[8];
};

// cublasLtMatmulHeuristicResult_t.
struct MatmulHeuristicResult {
  MatmulAlgo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};

using Stream = ::CUstream_st*;

// The functions, as pointer types (their C names in the comments).
using CreateFn = Status (*)(Handle* handle);  // cublasLtCreate
using DestroyFn = Status (*)(Handle handle);  // cublasLtDestroy
using GetVersionFn = size_t (*)();            // cublasLtGetVersion
using GetStatusStringFn = const char* (*)(Status status);  // cublasLtGetStatusString
using MatmulDescCreateFn = Status (*)(MatmulDesc* desc, ComputeType compute,
                                      DataType scale);  // cublasLtMatmulDescCreate
using MatmulDescDestroyFn = Status (*)(MatmulDesc desc);  // cublasLtMatmulDescDestroy
using MatmulDescSetAttributeFn = Status (*)(MatmulDesc desc, MatmulDescAttribute attr, const void* buf,
                                            size_t bytes);  // cublasLtMatmulDescSetAttribute
using MatrixLayoutCreateFn = Status (*)(MatrixLayout* layout, DataType type, uint64_t rows, uint64_t cols,
                                        int64_t ld);  // cublasLtMatrixLayoutCreate
using MatrixLayoutDestroyFn = Status (*)(MatrixLayout layout);  // cublasLtMatrixLayoutDestroy
using MatrixLayoutSetAttributeFn = Status (*)(MatrixLayout layout, MatrixLayoutAttribute attr, const void* buf,
                                              size_t bytes);  // cublasLtMatrixLayoutSetAttribute
using MatmulPreferenceCreateFn = Status (*)(MatmulPreference* pref);  // cublasLtMatmulPreferenceCreate
using MatmulPreferenceDestroyFn = Status (*)(MatmulPreference pref);  // cublasLtMatmulPreferenceDestroy
// cublasLtMatmulPreferenceSetAttribute
using MatmulPreferenceSetAttributeFn = Status (*)(MatmulPreference pref, MatmulPreferenceAttribute attr,
                                                  const void* buf, size_t bytes);
using MatmulAlgoGetHeuristicFn = Status (*)(Handle handle, MatmulDesc desc, MatrixLayout a, MatrixLayout b,
                                            MatrixLayout c, MatrixLayout d, MatmulPreference pref, int requested,
                                            MatmulHeuristicResult results[],
                                            int* returned);  // cublasLtMatmulAlgoGetHeuristic
using MatmulFn = Status (*)(Handle handle, MatmulDesc desc, const void* alpha, const void* a, MatrixLayout a_layout,
                            const void* b, MatrixLayout b_layout, const void* beta, const void* c,
                            MatrixLayout c_layout, void* d, MatrixLayout d_layout, const MatmulAlgo* algo,
                            void* workspace, size_t workspace_bytes, Stream stream);  // cublasLtMatmul

// The library's entry points once loaded.
struct Api {
  CreateFn create;
  DestroyFn destroy;
  GetVersionFn get_version;
  GetStatusStringFn get_status_string;
  MatmulDescCreateFn matmul_desc_create;
  MatmulDescDestroyFn matmul_desc_destroy;
  MatmulDescSetAttributeFn matmul_desc_set_attribute;
  MatrixLayoutCreateFn matrix_layout_create;
  MatrixLayoutDestroyFn matrix_layout_destroy;
  MatrixLayoutSetAttributeFn matrix_layout_set_attribute;
  MatmulPreferenceCreateFn matmul_preference_create;
  MatmulPreferenceDestroyFn matmul_preference_destroy;
  MatmulPreferenceSetAttributeFn matmul_preference_set_attribute;
  MatmulAlgoGetHeuristicFn matmul_algo_get_heuristic;
  MatmulFn matmul;
};

}  // namespace dv::cuda::lt

namespace dv::cuda::cublaslt {
// Whether cuBLASLt is loaded and can do this GEMM (validated, m, n, batch > 0, k > 0, alpha != 0)
// as GemmArgs defines it. Not: `pre` without the GELU (no such epilogue), beta != 0 together with an
// epilogue, a batch stride of 0 (a broadcast operand), more than INT32_MAX batch items, `pre` whose
// leading dimension or batch stride is not a multiple of 8 (GELU_AUX's rule). Never in the emulator
// build, and not after DIFFVIT_CUBLASLT=0.
bool usable(const cpu::GemmArgs& args);

// The operands of a bf16-precision GEMM, already rounded (gemm.cu): bfloat16 bits of alpha * A and
// of B, each in its GemmArgs layout (transposed or not) but packed: leading dimension = its stored
// column count, items one after another.
struct Bf16Operands {
  const uint16_t* a;
  const uint16_t* b;
};

// Runs a GEMM that usable() accepted on cuBLASLt and returns true, or returns false without
// writing anything when no algorithm suits it (e.g. the pointers' alignment) or cuBLASLt refuses
// it; the caller then runs the own kernel. `bf16`: the rounded operands of a bf16-precision GEMM
// (required for one; alpha is already in them).
bool gemm(const cpu::GemmArgs& args, const Bf16Operands* bf16);

// "cuBLASLt 13.1.1", or "own tensor-core kernel (<why cuBLASLt is not used>)".
const char* path();
}  // namespace dv::cuda::cublaslt
