// Device probing, the backend's stream, error checking and copies (see runtime.h).
#include "cuda/runtime.h"

#include <cstring>
#include <mutex>
#include <vector>

#include "core/errors.h"

#ifndef DV_CUDA_ARCHS
#define DV_CUDA_ARCHS "unknown"
#endif

namespace dv::cuda {
namespace {

std::string error_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

DeviceStatus probe() {
  DeviceStatus s;
#if defined(DV_CUDA_EMULATOR)
  s.emulated = true;
#endif
  cudaRuntimeGetVersion(&s.runtime_version);
  cudaDriverGetVersion(&s.driver_version);  // 0 without a driver
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it so later calls do not report it again
    s.reason = "cudaGetDeviceCount failed (" + error_text(status) + ")";
    if (s.driver_version == 0) s.reason += "; no NVIDIA driver is loaded on this machine";
    return s;
  }
  if (count == 0) {
    s.reason = "no CUDA device found";
    return s;
  }
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  status = cudaGetDeviceProperties(&prop, 0);
  if (status != cudaSuccess) {
    s.reason = "cudaGetDeviceProperties failed (" + error_text(status) + ")";
    return s;
  }
  s.name = prop.name;
  s.major = prop.major;
  s.minor = prop.minor;
  s.total_memory = static_cast<int64_t>(prop.totalGlobalMem);
  s.multiprocessors = prop.multiProcessorCount;
  if (!s.emulated && s.major < 8) {
    s.reason = s.name + " has compute capability " + std::to_string(s.major) + "." + std::to_string(s.minor) +
               "; this build has device code for " + DV_CUDA_ARCHS + " only (sm_80 or newer)";
    return s;
  }
  s.usable = true;
  return s;
}

}  // namespace

const DeviceStatus& device_status() {
  static const DeviceStatus status = probe();
  return status;
}

const char* built_architectures() {
#if defined(DV_CUDA_EMULATOR)
  return "emulated on the CPU (native/cuda/emu)";
#else
  return DV_CUDA_ARCHS;
#endif
}

void require_device(const char* op) {
  const DeviceStatus& s = device_status();
  if (!s.usable) fail(op, "no CUDA device is usable: " + s.reason);
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    require_device("cuda");
    cudaStream_t created = nullptr;
    check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cuda.stream");
    return created;
  }();
  return s;
}

void check(cudaError_t status, const char* op) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  fail(op, "CUDA error " + error_text(status));
}

void check_launch(const char* op) { check(cudaGetLastError(), op); }

void copy_to_host(void* dst, const void* src, size_t bytes, const char* op) {
  if (bytes == 0) return;
  if (capturing()) fail(op, "cannot copy to the host while a CUDA graph is being captured (it would wait for the device)");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()), op);
  check(cudaStreamSynchronize(stream()), op);
}

void copy_from_host(void* dst, const void* src, size_t bytes, const char* op) {
  if (bytes == 0) return;
  if (capturing()) fail(op, "cannot copy from the host while a CUDA graph is being captured (the host memory would be read at replay)");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), op);
  // The source is JS memory that may move or die once we return: wait for the copy.
  check(cudaStreamSynchronize(stream()), op);
}

void copy_to_device_async(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (capturing()) {
    // Captured copies read their source at every replay: keep a copy of it alive forever (small
    // parameter tables only; a graph is captured once).
    static std::mutex mutex;
    static std::vector<std::vector<char>> kept;
    std::lock_guard<std::mutex> lock(mutex);
    kept.emplace_back(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
    check(cudaMemcpyAsync(dst, kept.back().data(), bytes, cudaMemcpyHostToDevice, stream()), "cuda.copy");
    return;
  }
  // Pageable memory: cudaMemcpyAsync returns once the source has been staged, so `src` may die.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()), "cuda.copy");
}

void copy_device_to_device(void* dst, const void* src, size_t bytes, const char* op) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), op);
}

void synchronize(const char* op) {
  if (!device_status().usable) return;
  if (capturing()) fail(op, "cannot synchronize while a CUDA graph is being captured");
  check(cudaStreamSynchronize(stream()), op);
}

DeviceMemoryInfo device_memory_info() {
  size_t free_bytes = 0, total_bytes = 0;
  if (device_status().usable) check(cudaMemGetInfo(&free_bytes, &total_bytes), "cuda.memory");
  return {static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

DeviceScratch::DeviceScratch(size_t bytes) {
  data_ = device_allocator().allocate(bytes == 0 ? 1 : bytes, &capacity_);
}

DeviceScratch::~DeviceScratch() {
  if (data_) device_allocator().deallocate(data_, capacity_);
}

StreamTimer::StreamTimer() {
  check(cudaEventCreate(&begin_), "cuda.timer");
  check(cudaEventCreate(&end_), "cuda.timer");
}

StreamTimer::~StreamTimer() {
  cudaEventDestroy(begin_);
  cudaEventDestroy(end_);
}

void StreamTimer::start() { check(cudaEventRecord(begin_, stream()), "cuda.timer"); }

double StreamTimer::stop_ms() {
  check(cudaEventRecord(end_, stream()), "cuda.timer");
  check(cudaEventSynchronize(end_), "cuda.timer");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, begin_, end_), "cuda.timer");
  return ms;
}

}  // namespace dv::cuda
