// Kernel launch and the other dv_emu entry points common.cuh and tests call.
// (Part of cuda_emu.h, which includes it; include that.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace dv_emu {

namespace detail {
template <class T>
struct identity {
  using type = T;
};

// One launch as the scheduler sees it: `invoke(closure)` runs the kernel body for the current thread.
struct LaunchDesc {
  const char* op;
  const void* kernel;  // identity for cudaFuncSetAttribute
  dim3 grid, block;
  size_t shared_bytes;
  void (*invoke)(const void* closure);
  const void* closure;
};
// Copies a closure, for capture (the graph keeps the copy alive).
using CloneFn = std::shared_ptr<const void> (*)(const void* closure);

template <class... P>
struct Closure {
  void (*kernel)(P...);
  std::tuple<std::decay_t<P>...> args;
};
template <class... P>
void invoke_closure(const void* closure) {
  const auto& c = *static_cast<const Closure<P...>*>(closure);
  std::apply(c.kernel, c.args);  // every CUDA thread gets its own copy of the arguments
}
template <class C>
std::shared_ptr<const void> clone_closure(const void* closure) {
  return std::make_shared<const C>(*static_cast<const C*>(closure));
}

// launch.cpp: validates the configuration (a bad one sets the last error), then runs the launch or,
// when `stream` is capturing, records it.
void submit(const LaunchDesc& launch, cudaStream_t stream, CloneFn clone);
}  // namespace detail

// kernel<<<grid, block, shared_bytes, stream>>>(args...). Synchronous; throws dv::Error when the
// kernel throws or deadlocks. `op` names the kernel in errors ("diffvit.<op>: ...").
template <typename... P>
void launch(const char* op, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            typename detail::identity<P>::type... args) {
  using C = detail::Closure<P...>;
  C closure{kernel, std::tuple<std::decay_t<P>...>(args...)};
  detail::LaunchDesc d{op, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes,
                       &detail::invoke_closure<P...>, &closure};
  detail::submit(d, stream, &detail::clone_closure<C>);
}

// The running block's dynamic shared memory (16-byte aligned, launch's `shared_bytes` long).
inline void* dynamic_shared() { return detail::t_block->dynamic_shared; }

// Warp-collective m16n8k16 bf16 MMA with fp32 accumulation (mma.cpp); see common.cuh for the layout.
void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]);

// Emulated device memory capacity (default: env DIFFVIT_EMU_DEVICE_MEMORY bytes, else 8 GiB).
// cudaMalloc fails with cudaErrorMemoryAllocation past it.
void set_device_memory_limit(size_t bytes);
// Number of OS worker threads blocks run on (env DIFFVIT_EMU_THREADS, default: hardware threads).
int worker_count();

}  // namespace dv_emu
