// Device built-ins for the emulator: thread/block indices, block barriers, atomics and the math
// intrinsics g++ lacks. All are plain inline functions, so __host__ __device__ code can use them.
// (Part of cuda_emu.h, which includes it; include that.)
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dv_emu::detail {

// What the index built-ins read. The scheduler points t_thread / t_block at the running CUDA thread
// and block of this OS thread (both null outside kernels).
struct ThreadView {
  uint3 thread_idx;
  unsigned linear;  // x fastest; lane = linear % 32, warp = linear / 32
};
struct BlockView {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  void* dynamic_shared;
  size_t dynamic_shared_bytes;
};
inline thread_local ThreadView* t_thread = nullptr;
inline thread_local BlockView* t_block = nullptr;

// scheduler.cpp: the block barrier (mode 0 plain, 1 count, 2 and, 3 or; returns the reduction).
int block_barrier(int predicate, int mode);
void yield_thread();
}  // namespace dv_emu::detail

#define threadIdx (::dv_emu::detail::t_thread->thread_idx)
#define blockIdx (::dv_emu::detail::t_block->block_idx)
#define blockDim (::dv_emu::detail::t_block->block_dim)
#define gridDim (::dv_emu::detail::t_block->grid_dim)
inline constexpr int warpSize = 32;

// ---- block barriers ----
// A barrier completes when every thread of the block that has not exited has reached it.
inline void __syncthreads() { ::dv_emu::detail::block_barrier(1, 0); }
inline int __syncthreads_count(int predicate) { return ::dv_emu::detail::block_barrier(predicate, 1); }
inline int __syncthreads_and(int predicate) { return ::dv_emu::detail::block_barrier(predicate, 2); }
inline int __syncthreads_or(int predicate) { return ::dv_emu::detail::block_barrier(predicate, 3); }

// Memory fences: blocks of one launch run concurrently on different OS threads.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
// Yields to the other threads of the block (so spin-waits on them make progress); no delay.
inline void __nanosleep(unsigned int) { ::dv_emu::detail::yield_thread(); }
// Nanoseconds of the host's steady clock (monotonic, like the SM clock; not cycles).
long long int clock64();

// ---- bit reinterpretation ----
inline float __int_as_float(int v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline int __float_as_int(float f) {
  int v;
  std::memcpy(&v, &f, 4);
  return v;
}
inline float __uint_as_float(unsigned int v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline unsigned int __float_as_uint(float f) {
  unsigned int v;
  std::memcpy(&v, &f, 4);
  return v;
}
inline double __longlong_as_double(long long v) {
  double d;
  std::memcpy(&d, &v, 8);
  return d;
}
inline long long __double_as_longlong(double d) {
  long long v;
  std::memcpy(&v, &d, 8);
  return v;
}

// ---- float intrinsics: computed at full precision (the GPU's fast versions are less accurate) ----
inline float __expf(float x) { return ::expf(x); }
inline float __exp10f(float x) { return ::exp10f(x); }
inline float __logf(float x) { return ::logf(x); }
inline float __log2f(float x) { return ::log2f(x); }
inline float __log10f(float x) { return ::log10f(x); }
inline float __sinf(float x) { return ::sinf(x); }
inline float __cosf(float x) { return ::cosf(x); }
inline float __tanf(float x) { return ::tanf(x); }
inline void __sincosf(float x, float* s, float* c) {
  *s = ::sinf(x);
  *c = ::cosf(x);
}
inline float __powf(float x, float y) { return ::powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / ::sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / ::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return ::sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / ::sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return ::fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return ::fma(a, b, c); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
inline int __float2int_rn(float x) { return static_cast<int>(::nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(::floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(::ceilf(x)); }
inline unsigned int __float2uint_rn(float x) { return static_cast<unsigned int>(::nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned int x) { return static_cast<float>(x); }

// ---- integer intrinsics ----
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned int>(x))) << 32) |
         __brev(static_cast<unsigned int>(x >> 32));
}
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}

// min / max over any two arithmetic types, with the usual arithmetic conversions (as CUDA's
// overloads give); floating-point ones behave like fmin / fmax (a NaN operand is ignored).
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  using T = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point<T>::value) return std::fmin(static_cast<T>(a), static_cast<T>(b));
  else return static_cast<T>(a) < static_cast<T>(b) ? static_cast<T>(a) : static_cast<T>(b);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  using T = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point<T>::value) return std::fmax(static_cast<T>(a), static_cast<T>(b));
  else return static_cast<T>(a) < static_cast<T>(b) ? static_cast<T>(b) : static_cast<T>(a);
}

// Read-only cache load: a plain load.
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// Cache-hinted loads and stores (ld.cg / ld.cv / st.cg ...): for data other blocks write concurrently.
// Relaxed atomic accesses for 1/2/4/8-byte types, so that TSan does not count them as racing with
// atomics; plain accesses otherwise.
namespace dv_emu::detail {
template <class T>
inline T relaxed_load(const T* p) {
  if constexpr (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8) {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t,
                                 std::conditional_t<sizeof(T) == 2, uint16_t,
                                                    std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
    U bits = __atomic_load_n(reinterpret_cast<const U*>(p), __ATOMIC_RELAXED);
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
  } else {
    return *p;
  }
}
template <class T>
inline void relaxed_store(T* p, T v) {
  if constexpr (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8) {
    using U = std::conditional_t<sizeof(T) == 1, uint8_t,
                                 std::conditional_t<sizeof(T) == 2, uint16_t,
                                                    std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
    U bits;
    std::memcpy(&bits, &v, sizeof(T));
    __atomic_store_n(reinterpret_cast<U*>(p), bits, __ATOMIC_RELAXED);
  } else {
    *p = v;
  }
}
}  // namespace dv_emu::detail
template <class T>
inline T __ldcg(const T* p) {
  return ::dv_emu::detail::relaxed_load(p);
}
template <class T>
inline T __ldcv(const T* p) {
  return ::dv_emu::detail::relaxed_load(p);
}
template <class T>
inline T __ldca(const T* p) {
  return ::dv_emu::detail::relaxed_load(p);
}
template <class T>
inline T __ldcs(const T* p) {
  return ::dv_emu::detail::relaxed_load(p);
}
template <class T>
inline T __ldlu(const T* p) {
  return ::dv_emu::detail::relaxed_load(p);
}
template <class T>
inline void __stcg(T* p, T v) {
  ::dv_emu::detail::relaxed_store(p, v);
}
template <class T>
inline void __stcs(T* p, T v) {
  ::dv_emu::detail::relaxed_store(p, v);
}
template <class T>
inline void __stwb(T* p, T v) {
  ::dv_emu::detail::relaxed_store(p, v);
}
template <class T>
inline void __stwt(T* p, T v) {
  ::dv_emu::detail::relaxed_store(p, v);
}

// ---- atomics (global and shared memory alike): __atomic builtins, seq_cst, understood by TSan ----
namespace dv_emu::detail {
template <class T, class F>
inline T atomic_update(T* address, F f) {  // CAS loop for what the builtins lack (float math, wrap)
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomic on a 4- or 8-byte type");
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U* p = reinterpret_cast<U*>(address);
  U old_bits = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    T old_value;
    std::memcpy(&old_value, &old_bits, sizeof(T));
    T new_value = f(old_value);
    U new_bits;
    std::memcpy(&new_bits, &new_value, sizeof(T));
    if (__atomic_compare_exchange_n(p, &old_bits, new_bits, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
      return old_value;
  }
}
}  // namespace dv_emu::detail

#define DV_EMU_INT_ATOMICS(T)                                                                       \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }              \
  inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }              \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }            \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }              \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }              \
  inline T atomicMax(T* a, T v) {                                                                   \
    return ::dv_emu::detail::atomic_update(a, [v](T o) { return o < v ? v : o; });                  \
  }                                                                                                 \
  inline T atomicMin(T* a, T v) {                                                                   \
    return ::dv_emu::detail::atomic_update(a, [v](T o) { return v < o ? v : o; });                  \
  }                                                                                                 \
  inline T atomicCAS(T* a, T compare, T v) {                                                        \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);         \
    return compare;                                                                                 \
  }
DV_EMU_INT_ATOMICS(int)
DV_EMU_INT_ATOMICS(unsigned int)
DV_EMU_INT_ATOMICS(long long)
DV_EMU_INT_ATOMICS(unsigned long long)
#undef DV_EMU_INT_ATOMICS

inline float atomicAdd(float* a, float v) {
  return ::dv_emu::detail::atomic_update(a, [v](float o) { return o + v; });
}
inline double atomicAdd(double* a, double v) {
  return ::dv_emu::detail::atomic_update(a, [v](double o) { return o + v; });
}
inline float atomicExch(float* a, float v) {
  return __int_as_float(__atomic_exchange_n(reinterpret_cast<int*>(a), __float_as_int(v), __ATOMIC_SEQ_CST));
}
// ((old >= limit) ? 0 : old + 1) and (((old == 0) || (old > limit)) ? limit : old - 1), as CUDA.
inline unsigned int atomicInc(unsigned int* a, unsigned int limit) {
  return ::dv_emu::detail::atomic_update(a, [limit](unsigned int o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned int atomicDec(unsigned int* a, unsigned int limit) {
  return ::dv_emu::detail::atomic_update(a, [limit](unsigned int o) { return (o == 0 || o > limit) ? limit : o - 1; });
}
