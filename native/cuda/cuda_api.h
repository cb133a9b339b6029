// The CUDA runtime API: the toolkit's <cuda_runtime.h>, or the project's CPU emulator of it
// (native/cuda/emu/) in the test build of the addon.
#pragma once
#if defined(DV_CUDA_EMULATOR)
#include "cuda/emu/cuda_emu.h"
#else
#include <cuda_runtime.h>
#endif
