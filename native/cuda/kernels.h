// The CUDA backend's host entry points, one header per kernel family. Each mirrors the function of
// the same name in native/cpu/<family>.h (same parameters, device pointers instead of host ones) so
// that the bindings dispatch with DV_RUN (addon/device_dispatch.h). Plain C++: no CUDA header is
// needed to include them.
#pragma once
#include "cuda/attention.h"
#include "cuda/conv.h"
#include "cuda/edm.h"
#include "cuda/elementwise.h"
#include "cuda/embedding.h"
#include "cuda/fused.h"
#include "cuda/gemm.h"
#include "cuda/norm.h"
#include "cuda/optim.h"
#include "cuda/pool.h"
#include "cuda/reduce.h"
#include "cuda/rope.h"
