// The CUDA backend's host runtime: the device and why it is (not) usable, the one stream every
// kernel is queued on, error checking, copies, scratch memory and CUDA graphs. Plain C++ plus the
// CUDA runtime API (cuda_api.h: the toolkit's or the emulator's).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/buffer.h"
#include "cuda/cuda_api.h"

namespace dv::cuda {

struct DeviceStatus {
  bool usable = false;
  std::string reason;         // why not, when !usable
  std::string name;           // e.g. "NVIDIA H100 80GB HBM3" or "diffvit CUDA emulator (CPU)"
  int major = 0, minor = 0;   // compute capability
  int64_t total_memory = 0;
  int multiprocessors = 0;
  int runtime_version = 0, driver_version = 0;
  bool emulated = false;
};
// Probes the device once (never throws). Only device 0 is used.
const DeviceStatus& device_status();
// The compute capabilities this build has device code for ("sm_80, sm_90a"; "emulated on the CPU").
const char* built_architectures();
// Throws dv::Error "diffvit.<op>: no CUDA device is usable: <reason>" unless the device is usable.
void require_device(const char* op);

// The stream every kernel and copy of the backend is queued on (created on first use).
cudaStream_t stream();

// Throws dv::Error "diffvit.<op>: CUDA error <name>: <description>" for a failed CUDA call.
void check(cudaError_t status, const char* op);
// After a launch: a configuration or launch error as a dv::Error.
void check_launch(const char* op);

// Copies queued on stream(); to_host waits for it (and so for every kernel before it).
void copy_to_host(void* dst, const void* src, size_t bytes, const char* op);
void copy_from_host(void* dst, const void* src, size_t bytes, const char* op);
// Queues a host-to-device copy of `bytes` from `src`, which must stay valid until the stream
// reaches it (use for small parameter tables: the host memory is copied into a staging block).
void copy_to_device_async(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes, const char* op);
// Waits for everything queued on stream().
void synchronize(const char* op);

// The caching device allocator (allocator.cpp).
Allocator& device_allocator();
// Largest block sizes and counts for tests and `dv.memory('cuda')`.
struct DeviceMemoryInfo {
  int64_t free_bytes, total_bytes;  // cudaMemGetInfo
};
DeviceMemoryInfo device_memory_info();

// Temporary device memory for one kernel sequence: a block of the caching allocator, returned to it
// when destroyed. Everything runs on stream(), so a block freed after its kernels were queued can be
// handed to the next request at once (stream order protects it), as PyTorch's allocator does.
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes);
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// CUDA graphs (graph.cpp): stream capture of everything queued between begin and end, replayed
// as one launch. While capturing, the allocator keeps every block allocated or freed in a pool of
// the graph, so replays never write into memory handed to anyone else.
int64_t graph_capture_begin();
int64_t graph_capture_end();  // the graph's id
void graph_replay(int64_t id);
void graph_destroy(int64_t id);
int64_t graph_count();  // live graphs, for tests
bool capturing();

// Elapsed milliseconds between two points of the stream, measured with CUDA events.
class StreamTimer {
 public:
  StreamTimer();
  ~StreamTimer();
  void start();
  double stop_ms();  // waits for the stream

 private:
  cudaEvent_t begin_ = nullptr, end_ = nullptr;
};

}  // namespace dv::cuda
