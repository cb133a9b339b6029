// Kernel launches: CUDA's configuration checks, the per-kernel dynamic shared memory limit
// (cudaFuncSetAttribute), and the choice between running now and recording into a capture.
#include <mutex>
#include <string>
#include <unordered_map>

#include "cuda/emu/internal.h"

namespace {

constexpr size_t kDefaultDynamicShared = 48 * 1024;
constexpr size_t kMaxDynamicShared = 232448;  // 227 KiB: sm_90's opt-in per-block maximum

std::mutex g_attr_mutex;
std::unordered_map<const void*, size_t>& shared_limits() {
  static std::unordered_map<const void*, size_t> m;
  return m;
}

size_t dynamic_shared_limit(const void* kernel) {
  std::lock_guard<std::mutex> lk(g_attr_mutex);
  auto& m = shared_limits();
  auto it = m.find(kernel);
  return it == m.end() ? kDefaultDynamicShared : it->second;
}

bool valid_configuration(const dv_emu::detail::LaunchDesc& d) {
  const dim3 b = d.block, g = d.grid;
  if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64) return false;
  if (static_cast<uint64_t>(b.x) * b.y * b.z > 1024) return false;
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) return false;
  return d.shared_bytes <= dynamic_shared_limit(d.kernel);
}

// A recorded launch owns copies of the closure and of the op name.
struct Recorded {
  dv_emu::detail::LaunchDesc desc;
  std::shared_ptr<const void> closure;
  std::shared_ptr<const std::string> op;
};
struct RecordCtx {
  const dv_emu::detail::LaunchDesc* desc;
  dv_emu::detail::CloneFn clone;
};
std::function<void()> make_recorded(const void* p) {
  const RecordCtx& ctx = *static_cast<const RecordCtx*>(p);
  Recorded r{*ctx.desc, ctx.clone(ctx.desc->closure), std::make_shared<const std::string>(ctx.desc->op)};
  r.desc.closure = r.closure.get();
  r.desc.op = r.op->c_str();
  return [r] { dv_emu::detail::run_launch(r.desc); };
}

}  // namespace

extern "C" cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  using dv_emu::detail::record_error;
  if (!func) return record_error(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > kMaxDynamicShared) return record_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lk(g_attr_mutex);
    shared_limits()[func] = static_cast<size_t>(value);
    return cudaSuccess;
  }
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) {
    return (value < -1 || value > 100) ? record_error(cudaErrorInvalidValue) : cudaSuccess;
  }
  if (attr < cudaFuncAttributeMaxDynamicSharedMemorySize || attr >= cudaFuncAttributeMax)
    return record_error(cudaErrorInvalidValue);
  return cudaSuccess;  // cluster attributes: accepted, nothing to emulate
}

namespace dv_emu::detail {

void submit(const LaunchDesc& launch, cudaStream_t stream, CloneFn clone) {
  if (!valid_configuration(launch)) {
    // As CUDA: the launch does not happen and the error waits in cudaGetLastError.
    record_error(cudaErrorInvalidConfiguration);
    invalidate_capture(stream);
    return;
  }
  RecordCtx ctx{&launch, clone};
  bool recorded = false;
  cudaError_t e = issue_async(stream, &recorded, &make_recorded, &ctx);
  if (e != cudaSuccess) {
    record_error(e);
    return;
  }
  if (!recorded) run_launch(launch);
}

}  // namespace dv_emu::detail
