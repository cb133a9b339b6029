// What every CUDA source of the backend includes. The same .cu files compile two ways:
//   - with nvcc for the GPU (sm_80, sm_90a), against the CUDA toolkit's headers;
//   - with g++ against native/cuda/emu/ (DV_CUDA_EMULATOR), the project's CPU emulator of the CUDA
//     runtime and device built-ins, into the test build of the addon.
// So kernels use only what both provide: threadIdx/blockIdx/blockDim/gridDim, __syncthreads,
// __syncwarp, __shfl*_sync, __ballot/__any/__all_sync, atomics, static __shared__ arrays,
// DV_DYNAMIC_SHARED, the float math of <cmath> plus rsqrtf/__expf/__logf/__fdividef, and the
// helpers below. Kernels are launched with dv::cuda::launch (no <<<>>>, which g++ cannot parse).
#pragma once
#include <cstdint>

#include "core/errors.h"
#include "cuda/cuda_api.h"
#include "cuda/runtime.h"

// Dynamic shared memory as a T array (the size is launch()'s `shared_bytes`).
#if defined(DV_CUDA_EMULATOR)
#define DV_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::dv_emu::dynamic_shared())
#else
#define DV_DYNAMIC_SHARED(T, name)            \
  extern __shared__ __align__(16) char dv_dynamic_shared_[]; \
  T* name = reinterpret_cast<T*>(dv_dynamic_shared_)
#endif

// `#pragma unroll` for nvcc (g++ would warn about an unknown pragma in the emulated build).
#if defined(__CUDACC__)
#define DV_UNROLL _Pragma("unroll")
#else
#define DV_UNROLL
#endif

// Tensor-core code paths (mma.sync): compiled into the sm_80/sm_90a device code and always in the
// emulator; never in nvcc's host pass.
#if defined(DV_CUDA_EMULATOR) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
#define DV_HAS_MMA 1
#else
#define DV_HAS_MMA 0
#endif

// Round-to-nearest-even float -> bfloat16 bits (NaN stays a quiet NaN), in the low 16 bits.
__host__ __device__ __forceinline__ uint32_t dv_cuda_bf16_round(float f) {
  union {
    float f;
    uint32_t u;
  } bits{f};  // (not __float_as_uint: this runs on the host too)
  const uint32_t u = bits.u;
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

namespace dv::cuda {

// Launches kernel<<<grid, block, shared_bytes, stream()>>>(args...) on the GPU or in the emulator;
// `op` names the kernel in errors.
template <typename... Params, typename... Args>
void launch(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, Args... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
#if defined(DV_CUDA_EMULATOR)
  ::dv_emu::launch(op, kernel, grid, block, shared_bytes, stream(), static_cast<Params>(args)...);
#else
  kernel<<<grid, block, shared_bytes, stream()>>>(static_cast<Params>(args)...);
#endif
  check_launch(op);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Two floats rounded to bfloat16 (round to nearest even, NaN kept) packed into one 32-bit register:
// `lo` in bits 0-15, as mma.sync's fragments hold them.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
#if !defined(DV_CUDA_EMULATOR) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#else
  return ::dv_cuda_bf16_round(lo) | (::dv_cuda_bf16_round(hi) << 16);
#endif
}
__device__ __forceinline__ float bf16_lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

// D = A·B + C on tensor cores, one m16n8k16 tile per warp, bf16 inputs and fp32 accumulation; the
// fragments are laid out as the PTX ISA's mma.m16n8k16 (.row.col) describes: with g = lane / 4 and
// t = lane % 4,
//   a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]   a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]
//   c/d[0..1] = C[g][2t..2t+1]   c/d[2..3] = C[g+8][2t..2t+1]
// Every lane of the warp must call it together (it is warp-collective).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                               const float (&c)[4]) {
#if defined(DV_CUDA_EMULATOR)
  ::dv_emu::mma_bf16_16816(d, a, b, c);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}

}  // namespace dv::cuda

