// Runtime API for the emulator: errors, the one device, and memory. Device memory is host memory
// (256-byte aligned), counted against an emulated capacity so that out-of-memory paths can be tested.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "cuda/emu/internal.h"

namespace {

thread_local cudaError_t t_last_error = cudaSuccess;

size_t default_capacity() {
  if (const char* e = std::getenv("DIFFVIT_EMU_DEVICE_MEMORY")) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(e, &end, 10);
    if (end != e && v > 0) return static_cast<size_t>(v);
  }
  return size_t{8} << 30;
}

struct Memory {
  std::mutex m;
  size_t capacity = default_capacity();
  size_t used = 0;
  std::unordered_map<void*, size_t> device;  // pointer -> bytes counted
  std::unordered_map<void*, size_t> pinned;
};
Memory& memory() {
  static Memory mem;
  return mem;
}

bool valid_kind(cudaMemcpyKind k) { return k >= cudaMemcpyHostToHost && k <= cudaMemcpyDefault; }

// Asynchronous copy / set: now, or recorded when the stream captures (the graph keeps the pointers,
// like a memcpy node).
struct CopyOp {
  void* dst;
  const void* src;
  size_t count;
  int value;
  bool is_set;
};
void do_copy(const CopyOp& op) {
  if (op.is_set) std::memset(op.dst, op.value, op.count);
  else if (op.dst != op.src) std::memmove(op.dst, op.src, op.count);
}
std::function<void()> make_copy(const void* p) {
  CopyOp op = *static_cast<const CopyOp*>(p);
  return [op] { do_copy(op); };
}
cudaError_t issue_copy(const CopyOp& op, cudaStream_t stream) {
  using dv_emu::detail::record_error;
  bool recorded = false;
  cudaError_t e = dv_emu::detail::issue_async(stream, &recorded, &make_copy, &op);
  if (e != cudaSuccess) return record_error(e);
  if (!recorded && op.count) do_copy(op);
  return cudaSuccess;
}

const char* describe(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorUnknown: return "unknown error";
    default: return nullptr;
  }
}

}  // namespace

namespace dv_emu {
namespace detail {
cudaError_t record_error(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}
}  // namespace detail

void set_device_memory_limit(size_t bytes) {
  Memory& mem = memory();
  std::lock_guard<std::mutex> lk(mem.m);
  mem.capacity = bytes;
}

}  // namespace dv_emu

long long int clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using dv_emu::detail::check_capture_prohibits;
using dv_emu::detail::record_error;

extern "C" {

// ---- errors ----
cudaError_t cudaGetLastError(void) {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return t_last_error; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
#define DV_EMU_NAME_CASE(name, value) \
  case name: return #name;
    DV_EMU_CUDA_ERRORS(DV_EMU_NAME_CASE)
#undef DV_EMU_NAME_CASE
  }
  return "unrecognized error code";
}
const char* cudaGetErrorString(cudaError_t error) {
  if (const char* d = describe(error)) return d;
  return cudaGetErrorName(error);  // no description kept for the rarer codes: their name
}

// ---- device ----
cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return record_error(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record_error(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (!device) return record_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
  if (!prop) return record_error(cudaErrorInvalidValue);
  if (device != 0) return record_error(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::strncpy(prop->name, "diffvit CUDA emulator (CPU)", sizeof prop->name - 1);
  {
    Memory& mem = memory();
    std::lock_guard<std::mutex> lk(mem.m);
    prop->totalGlobalMem = mem.capacity;
  }
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 232448;
  prop->sharedMemPerMultiprocessor = 233472;
  prop->reservedSharedMemPerBlock = 1024;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->memPitch = 2147483647;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = dv_emu::worker_count();
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->maxBlocksPerMultiProcessor = 32;
  prop->canMapHostMemory = 1;
  prop->concurrentKernels = 1;
  prop->unifiedAddressing = 1;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->memoryBusWidth = 5120;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return record_error(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return record_error(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}
// Resets nothing (allocations stay valid); clears the last error.
cudaError_t cudaDeviceReset(void) {
  t_last_error = cudaSuccess;
  return cudaSuccess;
}

// ---- memory ----
cudaError_t cudaMalloc(void** devPtr, size_t size) {
  if (!devPtr) return record_error(cudaErrorInvalidValue);
  if (cudaError_t e = check_capture_prohibits(false)) return record_error(e);
  *devPtr = nullptr;
  if (size == 0) return cudaSuccess;
  const size_t bytes = (size + 255) / 256 * 256;
  if (bytes < size) return record_error(cudaErrorMemoryAllocation);
  Memory& mem = memory();
  std::lock_guard<std::mutex> lk(mem.m);
  if (bytes > mem.capacity || mem.used > mem.capacity - bytes) return record_error(cudaErrorMemoryAllocation);
  void* p = std::aligned_alloc(256, bytes);
  if (!p) return record_error(cudaErrorMemoryAllocation);
  mem.device[p] = bytes;
  mem.used += bytes;
  *devPtr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* devPtr) {
  if (cudaError_t e = check_capture_prohibits(false)) return record_error(e);
  if (!devPtr) return cudaSuccess;
  Memory& mem = memory();
  std::lock_guard<std::mutex> lk(mem.m);
  auto it = mem.device.find(devPtr);
  if (it == mem.device.end()) return record_error(cudaErrorInvalidValue);
  mem.used -= it->second;
  mem.device.erase(it);
  std::free(devPtr);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (!ptr) return record_error(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  void* p = std::aligned_alloc(256, (size + 255) / 256 * 256);
  if (!p) return record_error(cudaErrorMemoryAllocation);
  Memory& mem = memory();
  std::lock_guard<std::mutex> lk(mem.m);
  mem.pinned[p] = size;
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* ptr) {
  if (cudaError_t e = check_capture_prohibits(false)) return record_error(e);
  if (!ptr) return cudaSuccess;
  Memory& mem = memory();
  std::lock_guard<std::mutex> lk(mem.m);
  auto it = mem.pinned.find(ptr);
  if (it == mem.pinned.end()) return record_error(cudaErrorInvalidValue);
  mem.pinned.erase(it);
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  if (!free_bytes || !total) return record_error(cudaErrorInvalidValue);
  Memory& mem = memory();
  std::lock_guard<std::mutex> lk(mem.m);
  *total = mem.capacity;
  *free_bytes = mem.used < mem.capacity ? mem.capacity - mem.used : 0;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  if (!valid_kind(kind)) return record_error(cudaErrorInvalidMemcpyDirection);
  if (count && (!dst || !src)) return record_error(cudaErrorInvalidValue);
  if (cudaError_t e = check_capture_prohibits(true)) return record_error(e);
  if (count) do_copy(CopyOp{dst, src, count, 0, false});
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
  if (!valid_kind(kind)) return record_error(cudaErrorInvalidMemcpyDirection);
  if (count && (!dst || !src)) return record_error(cudaErrorInvalidValue);
  return issue_copy(CopyOp{dst, src, count, 0, false}, stream);
}
cudaError_t cudaMemset(void* devPtr, int value, size_t count) {
  if (count && !devPtr) return record_error(cudaErrorInvalidValue);
  if (cudaError_t e = check_capture_prohibits(true)) return record_error(e);
  if (count) std::memset(devPtr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream) {
  if (count && !devPtr) return record_error(cudaErrorInvalidValue);
  return issue_copy(CopyOp{devPtr, nullptr, count, value, true}, stream);
}

}  // extern "C"
