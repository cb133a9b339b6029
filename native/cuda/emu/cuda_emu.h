// CPU emulator of the CUDA runtime and device built-ins: what native/cuda/common.cuh includes instead
// of <cuda_runtime.h> when DV_CUDA_EMULATOR is defined, so that the backend's .cu sources compile with
// g++ (-x c++) and run on the host.
//
// Execution model (the invariants the rest relies on):
//   - A launch runs to completion before dv_emu::launch returns (every stream is therefore ordered),
//     unless its stream is capturing, in which case it is recorded into the graph.
//   - Blocks are spread over a small pool of OS worker threads (the launching thread is one of them).
//     A worker runs ONE block at a time, and every CUDA thread of that block runs as a fiber (its own
//     stack, cooperatively scheduled) on that same OS thread. Fibers never migrate between OS threads.
//   - Hence `__shared__` is `static thread_local`: while a block runs, the worker's thread_local
//     statics belong to that block alone, exactly like per-block shared memory. (Like CUDA shared
//     memory, they are not cleared between blocks.)
//   - A fiber runs until its CUDA thread finishes or reaches a barrier / warp collective (or
//     __nanosleep, which yields). Threads of a block therefore never run in parallel, but any
//     interleaving a kernel may observe between barriers is a legal CUDA interleaving.
//   - A barrier or collective that can never complete, or a collective naming an exited lane, makes the
//     launch throw dv::Error("diffvit.<op>: emulated kernel deadlocked: ..."); an exception thrown by
//     kernel code propagates out of the launch as dv::Error.
//   - __syncthreads completes once every thread of the block that has not exited has reached it
//     (Volta+ bar.sync): an early `return` before a barrier is fine, a barrier some live threads
//     never reach deadlocks.
//
// Limits: each CUDA thread has a 256 KiB stack (1 MiB under sanitizers; DIFFVIT_EMU_STACK_KB), ending
// in a guard page: overflowing it (deep recursion, huge local arrays) crashes with SIGSEGV. Only the
// dynamic shared memory size is checked against the limit, not static __shared__ arrays. A thread
// spinning on a condition nothing will satisfy hangs, as on the GPU; spin-waits on other threads of the
// block must call __nanosleep (it yields). At most worker_count() blocks run at once. No barrier or
// collective inside a catch handler (the C++ runtime's exception state is per OS thread).
// Environment: DIFFVIT_EMU_THREADS (workers), DIFFVIT_EMU_DEVICE_MEMORY (bytes of emulated device
// memory), DIFFVIT_EMU_STACK_KB, DIFFVIT_EMU_FIBER_PER_THREAD=1 (each CUDA thread on its own fiber,
// as under TSan; default: a block's threads share fibers until one blocks).
// The emulator and the kernels must live in the same shared object (the index built-ins are
// thread_local variables defined inline in these headers).
#pragma once

// Standard headers come first: libstdc++ spells __attribute__((__noinline__)) in a few places, which
// the qualifier macros below would break if those headers were parsed after them. Their include
// guards keep later #includes of them harmless.
#include <math.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- CUDA qualifiers ----
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
// Per-block shared memory: see the invariants above. (`extern __shared__` arrays are not supported;
// use DV_DYNAMIC_SHARED from common.cuh.)
#define __shared__ static thread_local
// __restrict__ is native to g++.

#include "cuda/emu/vector_types.h"
#include "cuda/emu/runtime_api.h"
#include "cuda/emu/device_functions.h"
#include "cuda/emu/warp_functions.h"
#include "cuda/emu/launch.h"
