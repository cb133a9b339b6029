// The CUDA backend's runtime functions: device information, synchronisation, the caching
// allocator's statistics, and CUDA graphs (capture, replay, destroy).
#if DV_CUDA
#include "addon/args.h"
#include "addon/registry.h"
#include "cuda/gemm.h"
#include "cuda/runtime.h"

#if defined(DV_CUDA_EMULATOR)
#include "cuda/emu/cuda_emu.h"
#endif

namespace dv::addon {

// cudaInfo(): the device, what this build targets, and how GEMMs run.
DV_BINDING(cudaInfo) {
  Args a(info, "cudaInfo", {});
  const cuda::DeviceStatus& s = cuda::device_status();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("usable", s.usable);
  out.Set("reason", s.reason);
  out.Set("name", s.name);
  out.Set("computeCapability", s.usable || s.major ? std::to_string(s.major) + "." + std::to_string(s.minor) : "");
  out.Set("totalMemory", static_cast<double>(s.total_memory));
  out.Set("multiprocessors", s.multiprocessors);
  out.Set("runtimeVersion", s.runtime_version);
  out.Set("driverVersion", s.driver_version);
  out.Set("emulated", s.emulated);
  out.Set("architectures", cuda::built_architectures());
  out.Set("gemm", s.usable ? cuda::gemm_path() : "");
  return out;
}

DV_BINDING(cudaSynchronize) {
  Args a(info, "cudaSynchronize", {});
  cuda::synchronize("synchronize");
  return info.Env().Undefined();
}

DV_BINDING(cudaMemoryStats) {
  Args a(info, "cudaMemoryStats", {});
  MemoryStats s{};
  cuda::DeviceMemoryInfo m{0, 0};
  if (cuda::device_status().usable) {
    s = cuda::device_allocator().stats();
    m = cuda::device_memory_info();
  }
  Napi::Object out = memory_stats_object(info.Env(), s);
  out.Set("deviceFreeBytes", static_cast<double>(m.free_bytes));
  out.Set("deviceTotalBytes", static_cast<double>(m.total_bytes));
  return out;
}

DV_BINDING(cudaEmptyCache) {
  Args a(info, "cudaEmptyCache", {});
  if (cuda::device_status().usable) cuda::device_allocator().empty_cache();
  return info.Env().Undefined();
}

DV_BINDING(cudaGraphBegin) {
  Args a(info, "cudaGraphBegin", {});
  return Napi::Number::New(info.Env(), static_cast<double>(cuda::graph_capture_begin()));
}

DV_BINDING(cudaGraphEnd) {
  Args a(info, "cudaGraphEnd", {});
  return Napi::Number::New(info.Env(), static_cast<double>(cuda::graph_capture_end()));
}

DV_BINDING(cudaGraphReplay) {
  Args a(info, "cudaGraphReplay", {"graph"});
  cuda::graph_replay(a.integer(0, 1));
  return info.Env().Undefined();
}

DV_BINDING(cudaGraphDestroy) {
  Args a(info, "cudaGraphDestroy", {"graph"});
  cuda::graph_destroy(a.integer(0, 1));
  return info.Env().Undefined();
}

DV_BINDING(cudaGraphCount) {
  Args a(info, "cudaGraphCount", {});
  return Napi::Number::New(info.Env(), static_cast<double>(cuda::graph_count()));
}

// cudaTime(fn): milliseconds the device spent on the work fn() queued, measured with CUDA events.
DV_BINDING(cudaTime) {
  Args a(info, "cudaTime", {"fn"});
  if (!info[0].IsFunction()) a.fail(0, "a function", describe(info[0]));
  cuda::StreamTimer timer;
  timer.start();
  info[0].As<Napi::Function>().Call({});
  return Napi::Number::New(info.Env(), timer.stop_ms());
}

#if defined(DV_CUDA_EMULATOR)
// Emulator only: the device memory limit (bytes) that cudaMalloc enforces, for out-of-memory tests.
DV_BINDING(cudaEmulatorSetMemoryLimit) {
  Args a(info, "cudaEmulatorSetMemoryLimit", {"bytes"});
  dv_emu::set_device_memory_limit(static_cast<size_t>(a.integer(0, 0, int64_t(1) << 46)));
  return info.Env().Undefined();
}
#endif

}  // namespace dv::addon
#endif  // DV_CUDA
