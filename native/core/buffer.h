// A typed block of device memory. Tensors in JS are views (offset, shape, strides) over a Buffer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dv {

enum class DType : int { f32 = 0, i32 = 1 };
enum class Device : int { cpu = 0, cuda = 1 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

struct MemoryStats {
  int64_t live_buffers;
  int64_t live_bytes;
  int64_t peak_bytes;
  int64_t total_allocations;
  int64_t cached_bytes;  // freed blocks kept for reuse
};

// Where a device's memory comes from. Each backend has one (the CPU's is a caching host
// allocator); a Buffer remembers its allocator and gives its memory back to it.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  // A block of at least `bytes`, its real size in *capacity; nullptr when memory is exhausted.
  virtual void* allocate(size_t bytes, size_t* capacity) = 0;
  virtual void deallocate(void* p, size_t capacity) = 0;
  // `bytes` of a buffer started (> 0) or stopped (< 0) being live.
  virtual void count(int64_t bytes) = 0;
  virtual MemoryStats stats() = 0;
  // Returns every cached free block to the system (like torch.cuda.empty_cache).
  virtual void empty_cache() = 0;
};
Allocator& cpu_allocator();

class Buffer {
 public:
  Buffer(Allocator& allocator, DType dtype, int64_t numel);  // throws dv::Error when memory is exhausted
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
  Device device() const { return allocator_->device(); }
  Allocator& allocator() const { return *allocator_; }

 private:
  Allocator* allocator_;
  void* data_ = nullptr;
  size_t capacity_ = 0;  // bytes actually held (a size class of the cache)
  int64_t numel_;
  DType dtype_;
};

}  // namespace dv
