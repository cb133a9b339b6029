// DV_HOST_DEVICE marks code that the CUDA kernels compile too (__host__ __device__ under nvcc and
// the CPU emulator of CUDA; nothing in the CPU build, whose code is unchanged).
#pragma once

#if defined(__CUDACC__) || (defined(DV_CUDA_EMULATOR) && defined(__device__))
#define DV_HOST_DEVICE __host__ __device__
#else
#define DV_HOST_DEVICE
#endif
