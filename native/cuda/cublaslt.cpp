// cuBLASLt behind dv::cuda::gemm (cublaslt.h): loaded once per process with dlopen/dlsym, one
// handle, and per GEMM shape the heuristic's first algorithm, cached.
//
// What runs here and what falls back to the own kernel (gemm.cu), so that both give GemmArgs'
// semantics:
//   - precision float32: fp32 operands, CUBLAS_COMPUTE_32F (true fp32 FMA, never TF32).
//   - precision bf16: gemm.cu rounds alpha * A and B to bfloat16 copies first, exactly as the CPU
//     does (nearest even, subnormals to signed zero), and they run as CUDA_R_16BF operands with
//     fp32 C/D and CUBLAS_COMPUTE_32F. (CUBLAS_COMPUTE_32F_FAST_16BF on the fp32 operands would
//     save that pass, but it leaves the conversion to the library, "bfloat16 or TF32" as
//     cublas_api.h puts it, with its own handling of subnormals, and applies alpha after it: not
//     cpu/gemm.h's numerics, which the tests pin down value by value.)
//   - epilogues: bias -> BIAS, GELU -> GELU(_BIAS), GELU with `pre` -> GELU_AUX(_BIAS), which
//     writes the GELU's input to `pre`. The rest falls back (usable() in cublaslt.h lists it).
//   - batches: strided (BATCH_COUNT, STRIDED_BATCH_OFFSET); gemm.cu folds the common broadcast of
//     B over items stored back to back into one taller GEMM first.
//   - alignment: the heuristic is told each operand's alignment (its address, leading dimension
//     and batch stride in bytes, capped at 256) and returns only algorithms that work with it;
//     no algorithm, or a failing cublasLtMatmul, falls back.
// Never in the emulator build (no GPU): usable() is false there and path() says so.
#include "cuda/cublaslt.h"

#include <dlfcn.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "cpu/gemm.h"
#include "cuda/runtime.h"

namespace dv::cuda::cublaslt {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // NVIDIA's recommendation for Hopper
constexpr size_t kMaxCachedPlans = 4096;

// The process's cuBLASLt: loaded on first use and never unloaded (a handle destroyed during exit,
// after the CUDA runtime tore its context down, can crash; the OS reclaims both).
struct Library {
  lt::Api api{};
  bool loaded = false;
  std::string path;  // path()'s text while the handle is fine

  std::mutex mutex;  // guards everything below
  lt::Handle handle = nullptr;
  std::atomic<bool> handle_failed{false};
  std::string handle_error;  // path()'s text once cublasLtCreate failed (written once, before handle_failed)
  // Per GEMM (shape, layouts, epilogue, operand type, alignments): the heuristic's algorithm and
  // its workspace size, or that it found none.
  struct Plan {
    bool found;
    lt::MatmulAlgo algo;
    size_t workspace;
  };
  std::map<std::array<int64_t, 20>, Plan> plans;
};

#if !defined(DV_CUDA_EMULATOR)
template <typename Fn>
bool bind(void* so, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(so, name));
  if (!fn && missing.empty()) missing = name;
  return fn != nullptr;
}
#endif

void load(Library& lib) {
#if defined(DV_CUDA_EMULATOR)
  lib.path = "own tensor-core kernel (emulator build: cuBLASLt needs a GPU and is never loaded)";
#else
  const char* env = std::getenv("DIFFVIT_CUBLASLT");
  if (env && std::strcmp(env, "0") == 0) {
    lib.path = "own tensor-core kernel (DIFFVIT_CUBLASLT=0)";
    return;
  }
  void* so = dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    const char* why = dlerror();
    lib.path = std::string("own tensor-core kernel (libcublasLt.so.13 not loaded: ") + (why ? why : "unknown error") +
               ")";
    return;
  }
  lt::Api& a = lib.api;
  std::string missing;
  bind(so, "cublasLtCreate", a.create, missing);
  bind(so, "cublasLtDestroy", a.destroy, missing);
  bind(so, "cublasLtGetVersion", a.get_version, missing);
  bind(so, "cublasLtGetStatusString", a.get_status_string, missing);
  bind(so, "cublasLtMatmulDescCreate", a.matmul_desc_create, missing);
  bind(so, "cublasLtMatmulDescDestroy", a.matmul_desc_destroy, missing);
  bind(so, "cublasLtMatmulDescSetAttribute", a.matmul_desc_set_attribute, missing);
  bind(so, "cublasLtMatrixLayoutCreate", a.matrix_layout_create, missing);
  bind(so, "cublasLtMatrixLayoutDestroy", a.matrix_layout_destroy, missing);
  bind(so, "cublasLtMatrixLayoutSetAttribute", a.matrix_layout_set_attribute, missing);
  bind(so, "cublasLtMatmulPreferenceCreate", a.matmul_preference_create, missing);
  bind(so, "cublasLtMatmulPreferenceDestroy", a.matmul_preference_destroy, missing);
  bind(so, "cublasLtMatmulPreferenceSetAttribute", a.matmul_preference_set_attribute, missing);
  bind(so, "cublasLtMatmulAlgoGetHeuristic", a.matmul_algo_get_heuristic, missing);
  bind(so, "cublasLtMatmul", a.matmul, missing);
  if (!missing.empty()) {
    lib.path = "own tensor-core kernel (libcublasLt.so.13 has no " + missing + ")";
    return;
  }
  const size_t v = a.get_version();
  lib.path = "cuBLASLt " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
             std::to_string(v % 100);
  lib.loaded = true;
#endif
}

Library& library() {
  static Library* lib = [] {
    auto* l = new Library();
    load(*l);
    return l;
  }();
  return *lib;
}

#if !defined(DV_CUDA_EMULATOR)
std::string status_text(const lt::Api& api, lt::Status s) {
  const char* text = api.get_status_string ? api.get_status_string(s) : nullptr;
  return text ? std::string(text) : "status " + std::to_string(static_cast<int>(s));
}

// The handle, created on first use (the device is up by then); null once creating it failed.
lt::Handle handle(Library& lib) {
  if (lib.handle || lib.handle_failed.load()) return lib.handle;
  lt::Handle h = nullptr;
  const lt::Status s = lib.api.create(&h);
  if (s != lt::STATUS_SUCCESS) {
    lib.handle_error = "own tensor-core kernel (cublasLtCreate failed: " + status_text(lib.api, s) + ")";
    lib.handle_failed.store(true);
    return nullptr;
  }
  lib.handle = h;
  return h;
}

// The largest power of two (<= 256) dividing the address and, in bytes, the leading dimension and
// (for batches) the batch stride: what every row start of every item is aligned to.
int64_t alignment(const void* p, int64_t ld, int64_t stride, int64_t batch, int elem_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | (static_cast<uint64_t>(ld) * elem_bytes) | 256;
  if (batch > 1) bits |= static_cast<uint64_t>(stride) * elem_bytes;
  return static_cast<int64_t>(bits & (~bits + 1));
}

// Descriptors of one call, destroyed with it.
struct Descriptors {
  const lt::Api& api;
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::MatmulPreference pref = nullptr;
  bool ok = true;  // every call so far succeeded
  explicit Descriptors(const lt::Api& api_) : api(api_) {}
  ~Descriptors() {
    if (pref) api.matmul_preference_destroy(pref);
    if (c) api.matrix_layout_destroy(c);
    if (b) api.matrix_layout_destroy(b);
    if (a) api.matrix_layout_destroy(a);
    if (desc) api.matmul_desc_destroy(desc);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  void check(lt::Status s) { ok = ok && s == lt::STATUS_SUCCESS; }
  template <typename T>
  void set(lt::MatmulDescAttribute attr, const T& value) {
    if (ok) check(api.matmul_desc_set_attribute(desc, attr, &value, sizeof value));
  }
  template <typename T>
  void set(lt::MatmulPreferenceAttribute attr, const T& value) {
    if (ok) check(api.matmul_preference_set_attribute(pref, attr, &value, sizeof value));
  }
  // A column-major rows x cols layout of `type` with leading dimension ld, `batch` items `stride` apart.
  lt::MatrixLayout layout(lt::DataType type, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    lt::MatrixLayout l = nullptr;
    if (!ok) return nullptr;
    check(api.matrix_layout_create(&l, type, rows, cols, ld));
    if (!ok) return nullptr;
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      check(api.matrix_layout_set_attribute(l, lt::MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
      if (ok) check(api.matrix_layout_set_attribute(l, lt::MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return l;
  }
};
#endif

}  // namespace

bool usable(const cpu::GemmArgs& g) {
#if defined(DV_CUDA_EMULATOR)
  (void)g;
  return false;
#else
  const Library& lib = library();
  if (!lib.loaded || lib.handle_failed.load()) return false;
  const bool gelu = g.act == cpu::GemmAct::gelu_tanh;
  if (g.pre && !gelu) return false;                                       // no "copy without activation" epilogue
  if (g.beta != 0.0f && (g.bias || gelu)) return false;                   // the epilogue after beta * C: ours
  if (g.batch > 1 && (g.stride_a == 0 || g.stride_b == 0)) return false;  // broadcast operands
  if (g.batch > INT32_MAX || g.m <= 0 || g.n <= 0 || g.k <= 0 || g.alpha == 0.0f) return false;
  if (g.pre && (g.ldc % 8 != 0 || (g.batch > 1 && g.stride_c % 8 != 0))) return false;  // GELU_AUX's rule
  return true;
#endif
}

bool gemm(const cpu::GemmArgs& g, const Bf16Operands* bf16) {
#if defined(DV_CUDA_EMULATOR)
  (void)g, (void)bf16;
  return false;
#else
  if (!usable(g)) return false;
  const bool rounded = g.precision == cpu::MatmulPrecision::bf16;
  if (rounded != (bf16 != nullptr)) return false;
  Library& lib = library();
  const bool gelu = g.act == cpu::GemmAct::gelu_tanh;
  const lt::Epilogue epilogue = gelu ? (g.pre ? (g.bias ? lt::EPILOGUE_GELU_AUX_BIAS : lt::EPILOGUE_GELU_AUX)
                                              : (g.bias ? lt::EPILOGUE_GELU_BIAS : lt::EPILOGUE_GELU))
                                     : (g.bias ? lt::EPILOGUE_BIAS : lt::EPILOGUE_DEFAULT);
  // The operands as cuBLASLt reads them: the fp32 ones of GemmArgs, or the packed bf16 copies.
  const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  const void* a = rounded ? static_cast<const void*>(bf16->a) : g.a;
  const void* b = rounded ? static_cast<const void*>(bf16->b) : g.b;
  const int64_t lda = rounded ? a_cols : g.lda, ldb = rounded ? b_cols : g.ldb;
  const int64_t stride_a = rounded ? a_rows * a_cols : g.stride_a, stride_b = rounded ? b_rows * b_cols : g.stride_b;
  const lt::DataType in_type = rounded ? lt::R_16BF : lt::R_32F;
  const int in_bytes = rounded ? 2 : 4;
  const float alpha = rounded ? 1.0f : g.alpha, beta = g.beta;  // bf16: alpha is in the rounded A
  // cuBLASLt's A is our B (n x k as op), its B our A (k x m), its C/D our C (n x m), column-major.
  const lt::Operation op_a = g.trans_b ? lt::OP_T : lt::OP_N, op_b = g.trans_a ? lt::OP_T : lt::OP_N;
  const int64_t align_a = alignment(b, ldb, stride_b, g.batch, in_bytes);
  const int64_t align_b = alignment(a, lda, stride_a, g.batch, in_bytes);
  const int64_t align_c = alignment(g.c, g.ldc, g.stride_c, g.batch, 4);
  const int64_t align_bias = g.bias ? alignment(g.bias, 0, 0, 1, 4) : 0;
  const int64_t align_pre = g.pre ? alignment(g.pre, g.ldc, g.stride_c, g.batch, 4) : 0;

  std::lock_guard<std::mutex> lock(lib.mutex);
  const lt::Api& api = lib.api;
  lt::Handle h = handle(lib);
  if (!h) return false;

  Descriptors d(api);
  d.check(api.matmul_desc_create(&d.desc, lt::COMPUTE_32F, lt::R_32F));
  const int32_t ta = op_a, tb = op_b;
  const uint32_t epi = static_cast<uint32_t>(epilogue);
  d.set(lt::MATMUL_DESC_TRANSA, ta);
  d.set(lt::MATMUL_DESC_TRANSB, tb);
  d.set(lt::MATMUL_DESC_EPILOGUE, epi);
  if (g.bias) {
    const int32_t type = lt::R_32F;
    d.set(lt::MATMUL_DESC_BIAS_DATA_TYPE, type);
    d.set(lt::MATMUL_DESC_BIAS_POINTER, g.bias);
  }
  if (g.pre) {
    const int32_t type = lt::R_32F;
    d.set(lt::MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, type);
    d.set(lt::MATMUL_DESC_EPILOGUE_AUX_POINTER, g.pre);
    d.set(lt::MATMUL_DESC_EPILOGUE_AUX_LD, g.ldc);
    if (g.batch > 1) d.set(lt::MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, g.stride_c);
  }
  d.a = g.trans_b ? d.layout(in_type, g.k, g.n, ldb, g.batch, stride_b)
                  : d.layout(in_type, g.n, g.k, ldb, g.batch, stride_b);
  d.b = g.trans_a ? d.layout(in_type, g.m, g.k, lda, g.batch, stride_a)
                  : d.layout(in_type, g.k, g.m, lda, g.batch, stride_a);
  d.c = d.layout(lt::R_32F, g.n, g.m, g.ldc, g.batch, g.stride_c);
  if (!d.ok) return false;

  const std::array<int64_t, 20> key = {g.batch, g.m, g.n, g.k, lda, ldb, g.ldc,
                                       g.batch > 1 ? stride_a : 0, g.batch > 1 ? stride_b : 0,
                                       g.batch > 1 ? g.stride_c : 0, g.trans_a, g.trans_b, epilogue, in_type,
                                       align_a, align_b, align_c, align_bias, align_pre, 0};
  auto it = lib.plans.find(key);
  if (it == lib.plans.end()) {
    Library::Plan plan{false, {}, 0};
    d.check(api.matmul_preference_create(&d.pref));
    const uint64_t workspace = kWorkspaceBytes;
    const uint32_t aa = static_cast<uint32_t>(align_a), ab = static_cast<uint32_t>(align_b),
                   ac = static_cast<uint32_t>(align_c);
    d.set(lt::MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace);
    d.set(lt::MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, aa);
    d.set(lt::MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, ab);
    d.set(lt::MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, ac);
    d.set(lt::MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, ac);
    if (!d.ok) return false;
    lt::MatmulHeuristicResult result{};
    int returned = 0;
    const lt::Status s = api.matmul_algo_get_heuristic(h, d.desc, d.a, d.b, d.c, d.c, d.pref, 1, &result, &returned);
    if (s == lt::STATUS_SUCCESS && returned > 0 && result.state == lt::STATUS_SUCCESS) {
      plan = {true, result.algo, result.workspaceSize};
    }
    if (lib.plans.size() >= kMaxCachedPlans) lib.plans.clear();
    it = lib.plans.emplace(key, plan).first;
  }
  const Library::Plan& plan = it->second;
  if (!plan.found) return false;

  DeviceScratch workspace(plan.workspace);
  const lt::Stream st = stream();  // cudaStream_t is the same type
  const lt::Status s = api.matmul(h, d.desc, &alpha, b, d.a, a, d.b, &beta, g.c, d.c, g.c, d.c, &plan.algo,
                                  plan.workspace ? workspace.data() : nullptr, plan.workspace, st);
  return s == lt::STATUS_SUCCESS;
#endif
}

const char* path() {
  Library& lib = library();
  if (lib.handle_failed.load()) return lib.handle_error.c_str();
  return lib.path.c_str();
}

}  // namespace dv::cuda::cublaslt
