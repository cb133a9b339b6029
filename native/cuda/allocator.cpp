// The caching device allocator. cudaMalloc and cudaFree synchronise the device and cost tens of
// microseconds, and a training step frees and re-allocates the same activation sizes every step, so
// freed blocks wait in per-size-class free lists (as PyTorch's CUDA caching allocator does). Every
// kernel runs on one stream, so a block freed after its kernels were queued can be handed out again
// at once: stream order keeps the next user's kernels after the previous user's.
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/errors.h"
#include "cuda/allocator.h"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {

constexpr size_t kMinBlock = 512;       // cudaMalloc aligns to 256; 512 B keeps tiny blocks few
constexpr size_t kSmallLimit = 1 << 20;  // below 1 MiB: multiples of 512 B

// Size classes: multiples of 512 B below 1 MiB, then 2^k·{1, 1.25, 1.5, 1.75} (at most 25% slack).
size_t size_class(size_t bytes) {
  if (bytes < kSmallLimit) return (bytes + kMinBlock - 1) / kMinBlock * kMinBlock;
  size_t pow2 = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t quarter = pow2 / 4;
  return (bytes + quarter - 1) / quarter * quarter;
}

std::string mib(int64_t bytes) {
  char text[64];
  snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

constexpr int64_t kSharedPool = 0;  // blocks not owned by any graph

class DeviceAllocator : public Allocator {
 public:
  Device device() const override { return Device::cuda; }

  void* allocate(size_t bytes, size_t* capacity) override {
    require_device("alloc");
    const size_t size = size_class(bytes == 0 ? 1 : bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t pool = current_pool_;
    if (void* p = take_cached(pool, size)) return handed_out(p, size, pool, capacity);
    if (pool != kSharedPool)  // a graph may adopt a block of the shared cache
      if (void* p = take_cached(kSharedPool, size)) return handed_out(p, size, pool, capacity);
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status != cudaSuccess) {  // out of memory: return the shared cache to the device and retry once
      cudaGetLastError();
      release_cached(kSharedPool);
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      cudaGetLastError();
      fail("alloc", "CUDA out of memory: tried to allocate " + mib(size) + " (" + std::to_string(bytes) +
                        " bytes); the device has " + mib(free_bytes) + " free of " + mib(total_bytes) + ", " +
                        mib(live_bytes_) + " in live tensors and " + mib(cached_bytes_) +
                        " cached by diffvit (" + cudaGetErrorString(status) + ")");
    }
    ++total_allocations_;
    reserved_bytes_ += size;
    return handed_out(p, size, pool, capacity);
  }

  void deallocate(void* p, size_t capacity) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto owner = owner_.find(p);
    int64_t pool = owner == owner_.end() ? kSharedPool : owner->second;
    // Freed while a graph is captured: the graph may read it at every replay, so it stays the graph's.
    if (current_pool_ != kSharedPool) pool = current_pool_;
    if (pool != kSharedPool && !live_graphs_.count(pool)) pool = kSharedPool;
    if (pool == kSharedPool) {
      owner_.erase(p);
    } else {
      owner_[p] = pool;
    }
    free_[pool].emplace(capacity, p);
    cached_bytes_ += capacity;
  }

  void count(int64_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes == 0) return;
    live_bytes_ += bytes;
    live_buffers_ += bytes > 0 ? 1 : -1;
    if (live_bytes_ > peak_bytes_) peak_bytes_ = live_bytes_;
  }

  MemoryStats stats() override {
    std::lock_guard<std::mutex> lock(mutex_);
    return {live_buffers_, live_bytes_, peak_bytes_, total_allocations_, cached_bytes_};
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached(kSharedPool);
  }

  void begin_pool(int64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_graphs_.insert({id, true});
    current_pool_ = id;
  }
  void end_pool() {
    std::lock_guard<std::mutex> lock(mutex_);
    current_pool_ = kSharedPool;
  }
  void release_pool(int64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_graphs_.erase(id);
    auto it = free_.find(id);
    if (it == free_.end()) return;
    for (auto& [size, p] : it->second) {
      owner_.erase(p);
      free_[kSharedPool].emplace(size, p);
    }
    free_.erase(id);
  }

 private:
  void* take_cached(int64_t pool, size_t size) {
    auto lists = free_.find(pool);
    if (lists == free_.end()) return nullptr;
    auto it = lists->second.find(size);
    if (it == lists->second.end()) return nullptr;
    void* p = it->second;
    lists->second.erase(it);
    cached_bytes_ -= size;
    return p;
  }
  void* handed_out(void* p, size_t size, int64_t pool, size_t* capacity) {
    if (pool != kSharedPool) owner_[p] = pool;
    *capacity = size;
    return p;
  }
  // Frees every cached block of `pool` (the stream is drained first: queued kernels may still use them).
  void release_cached(int64_t pool) {
    auto lists = free_.find(pool);
    if (lists == free_.end() || lists->second.empty()) return;
    cudaStreamSynchronize(stream());
    for (auto& [size, p] : lists->second) {
      cudaFree(p);
      cached_bytes_ -= size;
      reserved_bytes_ -= size;
    }
    lists->second.clear();
  }

  std::mutex mutex_;
  std::unordered_map<int64_t, std::multimap<size_t, void*>> free_;  // pool -> size -> block
  std::unordered_map<void*, int64_t> owner_;                        // blocks owned by a graph's pool
  std::unordered_map<int64_t, bool> live_graphs_;
  int64_t current_pool_ = kSharedPool;
  int64_t live_buffers_ = 0, live_bytes_ = 0, peak_bytes_ = 0, total_allocations_ = 0, cached_bytes_ = 0,
          reserved_bytes_ = 0;
};

DeviceAllocator& allocator() {
  static DeviceAllocator* a = new DeviceAllocator();  // never destroyed: buffers may outlive statics
  return *a;
}

}  // namespace

Allocator& device_allocator() { return allocator(); }

namespace detail {
void begin_graph_pool(int64_t id) { allocator().begin_pool(id); }
void end_graph_pool() { allocator().end_pool(); }
void release_graph_pool(int64_t id) { allocator().release_pool(id); }
}  // namespace detail

}  // namespace dv::cuda
