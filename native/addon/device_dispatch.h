// Runs a kernel on the device its arguments live on: DV_RUN(a, gemm, args) calls dv::cuda::gemm
// for buffers on a CUDA device and dv::cpu::gemm otherwise. Both implement the same function with
// the same parameters (native/cpu/<family>.h, native/cuda/<family>.h), so a binding validates its
// arguments once for every backend. `a` is the call's Args: a.device() is the one device of every
// buffer it read (mixing devices already failed there).
#pragma once
#include "addon/args.h"

#if DV_CUDA
#include "cuda/kernels.h"
#define DV_RUN(a, fn, ...) \
  ((a).device() == ::dv::Device::cuda ? ::dv::cuda::fn(__VA_ARGS__) : ::dv::cpu::fn(__VA_ARGS__))
#define DV_ON_CUDA(a) ((a).device() == ::dv::Device::cuda)
#else
#define DV_RUN(a, fn, ...) ::dv::cpu::fn(__VA_ARGS__)
#define DV_ON_CUDA(a) false
#endif
