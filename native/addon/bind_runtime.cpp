// Runtime queries and settings: build/CPU info, thread count, dispatch level, memory statistics.
#include "addon/args.h"
#include "addon/registry.h"
#include "core/buffer.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#if DV_CUDA
#include "cuda/runtime.h"
#endif

namespace dv::addon {

DV_BINDING(info) {
  Args a(info, "info", {});
  Napi::Env env = info.Env();
  const CpuFeatures& f = cpu_features();
  Napi::Object features = Napi::Object::New(env);
  features.Set("avx2", f.avx2);
  features.Set("fma", f.fma);
  features.Set("f16c", f.f16c);
  features.Set("avx512f", f.avx512f);
  features.Set("avx512bw", f.avx512bw);
  features.Set("avx512dq", f.avx512dq);
  features.Set("avx512vl", f.avx512vl);
  features.Set("avx512bf16", f.avx512bf16);
  features.Set("amxTile", f.amx_tile);
  features.Set("amxBf16", f.amx_bf16);
  Napi::Object out = Napi::Object::New(env);
  out.Set("cpuFeatures", features);
  out.Set("cpuLevel", isa_name(isa_level()));
  out.Set("cpuBestLevel", isa_name(best_isa_level()));
  out.Set("cpuLevelNote", isa_note());
  out.Set("threads", num_threads());
#if DV_CUDA
  const cuda::DeviceStatus& cs = cuda::device_status();
  out.Set("cudaBuilt", true);
  out.Set("cudaAvailable", cs.usable);
  out.Set("cudaStatus", cs.usable ? cs.name + " (compute capability " + std::to_string(cs.major) + "." +
                                        std::to_string(cs.minor) + "); device code: " + cuda::built_architectures()
                                  : std::string("no CUDA device is usable: ") + cs.reason +
                                        " (this build has device code for " + cuda::built_architectures() + ")");
#else
  out.Set("cudaBuilt", false);
  out.Set("cudaAvailable", false);
  out.Set("cudaStatus", DV_CUDA_STATUS);
#endif
  out.Set("buildFlags", DV_BUILD_FLAGS);
  return out;
}

DV_BINDING(memoryStats) {
  Args a(info, "memoryStats", {});
  return memory_stats_object(info.Env(), cpu_allocator().stats());
}

DV_BINDING(emptyCache) {
  Args a(info, "emptyCache", {});
  cpu_allocator().empty_cache();
  return info.Env().Undefined();
}

DV_BINDING(setThreads) {
  Args a(info, "setThreads", {"threads"});
  set_num_threads(static_cast<int>(a.integer(0, 1, 1024)));
  return info.Env().Undefined();
}

DV_BINDING(setCpuLevel) {
  Args a(info, "setCpuLevel", {"level"});
  static const IsaLevel levels[] = {IsaLevel::avx512, IsaLevel::avx2, IsaLevel::scalar};
  set_isa_level(levels[a.choice(0, {"avx512", "avx2", "scalar"})]);
  return info.Env().Undefined();
}

}  // namespace dv::addon
