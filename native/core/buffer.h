// A typed block of device memory. Tensors in JS are views (offset, shape, strides) over a Buffer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dv {

enum class DType : int { f32 = 0, i32 = 1 };
enum class Device : int { cpu = 0 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

class Buffer {
 public:
  Buffer(Device device, DType dtype, int64_t numel);  // throws dv::Error when memory is exhausted
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void release();  // frees the memory now; the object stays as a "disposed" marker
  bool alive() const { return data_ != nullptr; }
  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  int64_t numel() const { return numel_; }
  size_t bytes() const { return numel_ * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;  // bytes actually held (a size class of the cache)
  int64_t numel_;
  DType dtype_;
  Device device_;
};

struct MemoryStats {
  int64_t live_buffers;
  int64_t live_bytes;
  int64_t peak_bytes;
  int64_t total_allocations;
  int64_t cached_bytes;  // freed blocks kept for reuse
};
MemoryStats memory_stats();
// Returns every cached free block to the system (like torch.cuda.empty_cache).
void empty_cache();

}  // namespace dv
