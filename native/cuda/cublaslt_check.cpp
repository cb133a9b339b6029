// Compile-time proof that cublaslt.h's own declarations of the cuBLASLt API are NVIDIA's: every
// enum value equals the real one, every struct has the real size, alignment and field offsets, and
// every function-pointer type is the real function's type (decltype(&cublasLtX)) once each of our
// types is replaced by the real type it stands for (Real<> below; the real header's enums and
// anonymous structs are distinct types that ours cannot be). Compiled only where the real
// cublasLt.h is found (CMake's DV_CUBLASLT_INCLUDE, e.g. the nvidia-cublas wheel's include
// folder); it defines nothing, so a build that does not compile it loses nothing but the check.
#include <cublasLt.h>

#include <cstddef>
#include <type_traits>

#include "cuda/cublaslt.h"

namespace dv::cuda::lt::check {

// ---- our type -> the real type it declares ----
template <typename T>
struct Real {
  using type = T;  // void, integers, size_t, CUstream_st, cublasLtContext: the very same types
};
template <typename T>
using real_t = typename Real<T>::type;
template <typename T>
struct Real<T*> {
  using type = real_t<T>*;
};
template <typename T>
struct Real<const T> {
  using type = const real_t<T>;
};
template <typename R, typename... Args>
struct Real<R (*)(Args...)> {
  using type = real_t<R> (*)(real_t<Args>...);
};
#define DV_REAL(ours, theirs) \
  template <>                 \
  struct Real<ours> {         \
    using type = theirs;      \
  }
DV_REAL(Status, cublasStatus_t);
DV_REAL(Operation, cublasOperation_t);
DV_REAL(ComputeType, cublasComputeType_t);
DV_REAL(DataType, cudaDataType);
DV_REAL(MatmulDescAttribute, cublasLtMatmulDescAttributes_t);
DV_REAL(MatrixLayoutAttribute, cublasLtMatrixLayoutAttribute_t);
DV_REAL(Order, cublasLtOrder_t);
DV_REAL(Epilogue, cublasLtEpilogue_t);
DV_REAL(MatmulPreferenceAttribute, cublasLtMatmulPreferenceAttributes_t);
DV_REAL(MatmulDescOpaque, cublasLtMatmulDescOpaque_t);
DV_REAL(MatrixLayoutOpaque, cublasLtMatrixLayoutOpaque_t);
DV_REAL(MatmulPreferenceOpaque, cublasLtMatmulPreferenceOpaque_t);
DV_REAL(MatmulAlgo, cublasLtMatmulAlgo_t);
DV_REAL(MatmulHeuristicResult, cublasLtMatmulHeuristicResult_t);
#undef DV_REAL

// ---- enums: same size, same values ----
#define DV_SAME_SIZE(ours) \
  static_assert(sizeof(ours) == sizeof(real_t<ours>) && alignof(ours) == alignof(real_t<ours>), #ours " size")
DV_SAME_SIZE(Status);
DV_SAME_SIZE(Operation);
DV_SAME_SIZE(ComputeType);
DV_SAME_SIZE(DataType);
DV_SAME_SIZE(MatmulDescAttribute);
DV_SAME_SIZE(MatrixLayoutAttribute);
DV_SAME_SIZE(Order);
DV_SAME_SIZE(Epilogue);
DV_SAME_SIZE(MatmulPreferenceAttribute);
#define DV_SAME_VALUE(ours, theirs) \
  static_assert(static_cast<long long>(ours) == static_cast<long long>(theirs), #ours " == " #theirs)
DV_SAME_VALUE(STATUS_SUCCESS, CUBLAS_STATUS_SUCCESS);
DV_SAME_VALUE(STATUS_NOT_INITIALIZED, CUBLAS_STATUS_NOT_INITIALIZED);
DV_SAME_VALUE(STATUS_ALLOC_FAILED, CUBLAS_STATUS_ALLOC_FAILED);
DV_SAME_VALUE(STATUS_INVALID_VALUE, CUBLAS_STATUS_INVALID_VALUE);
DV_SAME_VALUE(STATUS_ARCH_MISMATCH, CUBLAS_STATUS_ARCH_MISMATCH);
DV_SAME_VALUE(STATUS_MAPPING_ERROR, CUBLAS_STATUS_MAPPING_ERROR);
DV_SAME_VALUE(STATUS_EXECUTION_FAILED, CUBLAS_STATUS_EXECUTION_FAILED);
DV_SAME_VALUE(STATUS_INTERNAL_ERROR, CUBLAS_STATUS_INTERNAL_ERROR);
DV_SAME_VALUE(STATUS_NOT_SUPPORTED, CUBLAS_STATUS_NOT_SUPPORTED);
DV_SAME_VALUE(STATUS_LICENSE_ERROR, CUBLAS_STATUS_LICENSE_ERROR);
DV_SAME_VALUE(OP_N, CUBLAS_OP_N);
DV_SAME_VALUE(OP_T, CUBLAS_OP_T);
DV_SAME_VALUE(COMPUTE_32F, CUBLAS_COMPUTE_32F);
DV_SAME_VALUE(COMPUTE_32F_FAST_16BF, CUBLAS_COMPUTE_32F_FAST_16BF);
DV_SAME_VALUE(COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_32F_FAST_TF32);
DV_SAME_VALUE(R_32F, CUDA_R_32F);
DV_SAME_VALUE(R_16BF, CUDA_R_16BF);
DV_SAME_VALUE(MATMUL_DESC_COMPUTE_TYPE, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE);
DV_SAME_VALUE(MATMUL_DESC_SCALE_TYPE, CUBLASLT_MATMUL_DESC_SCALE_TYPE);
DV_SAME_VALUE(MATMUL_DESC_POINTER_MODE, CUBLASLT_MATMUL_DESC_POINTER_MODE);
DV_SAME_VALUE(MATMUL_DESC_TRANSA, CUBLASLT_MATMUL_DESC_TRANSA);
DV_SAME_VALUE(MATMUL_DESC_TRANSB, CUBLASLT_MATMUL_DESC_TRANSB);
DV_SAME_VALUE(MATMUL_DESC_EPILOGUE, CUBLASLT_MATMUL_DESC_EPILOGUE);
DV_SAME_VALUE(MATMUL_DESC_BIAS_POINTER, CUBLASLT_MATMUL_DESC_BIAS_POINTER);
DV_SAME_VALUE(MATMUL_DESC_BIAS_BATCH_STRIDE, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE);
DV_SAME_VALUE(MATMUL_DESC_EPILOGUE_AUX_POINTER, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER);
DV_SAME_VALUE(MATMUL_DESC_EPILOGUE_AUX_LD, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD);
DV_SAME_VALUE(MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE);
DV_SAME_VALUE(MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE);
DV_SAME_VALUE(MATMUL_DESC_BIAS_DATA_TYPE, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE);
DV_SAME_VALUE(MATRIX_LAYOUT_TYPE, CUBLASLT_MATRIX_LAYOUT_TYPE);
DV_SAME_VALUE(MATRIX_LAYOUT_ORDER, CUBLASLT_MATRIX_LAYOUT_ORDER);
DV_SAME_VALUE(MATRIX_LAYOUT_ROWS, CUBLASLT_MATRIX_LAYOUT_ROWS);
DV_SAME_VALUE(MATRIX_LAYOUT_COLS, CUBLASLT_MATRIX_LAYOUT_COLS);
DV_SAME_VALUE(MATRIX_LAYOUT_LD, CUBLASLT_MATRIX_LAYOUT_LD);
DV_SAME_VALUE(MATRIX_LAYOUT_BATCH_COUNT, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT);
DV_SAME_VALUE(MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET);
DV_SAME_VALUE(ORDER_COL, CUBLASLT_ORDER_COL);
DV_SAME_VALUE(ORDER_ROW, CUBLASLT_ORDER_ROW);
DV_SAME_VALUE(EPILOGUE_DEFAULT, CUBLASLT_EPILOGUE_DEFAULT);
DV_SAME_VALUE(EPILOGUE_BIAS, CUBLASLT_EPILOGUE_BIAS);
DV_SAME_VALUE(EPILOGUE_GELU, CUBLASLT_EPILOGUE_GELU);
DV_SAME_VALUE(EPILOGUE_GELU_AUX, CUBLASLT_EPILOGUE_GELU_AUX);
DV_SAME_VALUE(EPILOGUE_GELU_BIAS, CUBLASLT_EPILOGUE_GELU_BIAS);
DV_SAME_VALUE(EPILOGUE_GELU_AUX_BIAS, CUBLASLT_EPILOGUE_GELU_AUX_BIAS);
DV_SAME_VALUE(MATMUL_PREF_SEARCH_MODE, CUBLASLT_MATMUL_PREF_SEARCH_MODE);
DV_SAME_VALUE(MATMUL_PREF_MAX_WORKSPACE_BYTES, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES);
DV_SAME_VALUE(MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES);
DV_SAME_VALUE(MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES);
DV_SAME_VALUE(MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES);
DV_SAME_VALUE(MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES);
#undef DV_SAME_VALUE
#undef DV_SAME_SIZE

// ---- structs: size, alignment, field offsets ----
#define DV_SAME_LAYOUT(ours) \
  static_assert(sizeof(ours) == sizeof(real_t<ours>) && alignof(ours) == alignof(real_t<ours>), #ours " layout")
DV_SAME_LAYOUT(MatmulDescOpaque);
DV_SAME_LAYOUT(MatrixLayoutOpaque);
DV_SAME_LAYOUT(MatmulPreferenceOpaque);
DV_SAME_LAYOUT(MatmulAlgo);
DV_SAME_LAYOUT(MatmulHeuristicResult);
#undef DV_SAME_LAYOUT
static_assert(offsetof(MatmulHeuristicResult, algo) == offsetof(cublasLtMatmulHeuristicResult_t, algo), "algo");
static_assert(offsetof(MatmulHeuristicResult, workspaceSize) ==
                  offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize),
              "workspaceSize");
static_assert(offsetof(MatmulHeuristicResult, state) == offsetof(cublasLtMatmulHeuristicResult_t, state), "state");
static_assert(offsetof(MatmulHeuristicResult, wavesCount) == offsetof(cublasLtMatmulHeuristicResult_t, wavesCount),
              "wavesCount");
static_assert(offsetof(MatmulHeuristicResult, reserved) == offsetof(cublasLtMatmulHeuristicResult_t, reserved),
              "reserved");

// ---- handle and stream types: the very same ----
static_assert(std::is_same_v<Handle, cublasLtHandle_t>, "cublasLtHandle_t");
static_assert(std::is_same_v<Stream, cudaStream_t>, "cudaStream_t");
static_assert(std::is_same_v<real_t<MatmulDesc>, cublasLtMatmulDesc_t>, "cublasLtMatmulDesc_t");
static_assert(std::is_same_v<real_t<MatrixLayout>, cublasLtMatrixLayout_t>, "cublasLtMatrixLayout_t");
static_assert(std::is_same_v<real_t<MatmulPreference>, cublasLtMatmulPreference_t>, "cublasLtMatmulPreference_t");

// ---- functions ----
#define DV_SAME_FN(ours, theirs) static_assert(std::is_same_v<real_t<ours>, decltype(&theirs)>, #ours " is " #theirs)
DV_SAME_FN(CreateFn, cublasLtCreate);
DV_SAME_FN(DestroyFn, cublasLtDestroy);
DV_SAME_FN(GetVersionFn, cublasLtGetVersion);
DV_SAME_FN(GetStatusStringFn, cublasLtGetStatusString);
DV_SAME_FN(MatmulDescCreateFn, cublasLtMatmulDescCreate);
DV_SAME_FN(MatmulDescDestroyFn, cublasLtMatmulDescDestroy);
DV_SAME_FN(MatmulDescSetAttributeFn, cublasLtMatmulDescSetAttribute);
DV_SAME_FN(MatrixLayoutCreateFn, cublasLtMatrixLayoutCreate);
DV_SAME_FN(MatrixLayoutDestroyFn, cublasLtMatrixLayoutDestroy);
DV_SAME_FN(MatrixLayoutSetAttributeFn, cublasLtMatrixLayoutSetAttribute);
DV_SAME_FN(MatmulPreferenceCreateFn, cublasLtMatmulPreferenceCreate);
DV_SAME_FN(MatmulPreferenceDestroyFn, cublasLtMatmulPreferenceDestroy);
DV_SAME_FN(MatmulPreferenceSetAttributeFn, cublasLtMatmulPreferenceSetAttribute);
DV_SAME_FN(MatmulAlgoGetHeuristicFn, cublasLtMatmulAlgoGetHeuristic);
DV_SAME_FN(MatmulFn, cublasLtMatmul);
#undef DV_SAME_FN

// The Api struct's members have exactly these types.
static_assert(std::is_same_v<decltype(Api::matmul), MatmulFn> &&
                  std::is_same_v<decltype(Api::matmul_algo_get_heuristic), MatmulAlgoGetHeuristicFn> &&
                  std::is_same_v<decltype(Api::matrix_layout_create), MatrixLayoutCreateFn>,
              "Api members");

}  // namespace dv::cuda::lt::check
