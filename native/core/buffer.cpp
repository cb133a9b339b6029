#include "core/buffer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/errors.h"

#include <sys/mman.h>

#include <map>
#include <mutex>
#include <vector>

namespace dv {
namespace {
constexpr size_t kAlignment = 64;  // one cache line, the widest vector load

// A caching allocator. Training allocates and frees the same activations every step; the C heap
// returns large blocks to the OS, so each step would fault fresh pages back in (measured ~5 ms per
// MB on a VM, 100x the cost of reusing warm memory). Freed blocks wait in per-size-class free
// lists instead, like PyTorch's CUDA caching allocator. Small blocks are cached too: glibc does
// not reliably reuse freed aligned_alloc blocks (its bug 14581), and a model of width 64, whose
// step frees and re-allocates many 4-64 KB blocks, grew by 4.6 MB a step when those went back to
// the heap.
constexpr size_t kSmallClass = 1024;  // below this, classes are whole cache lines

// Size classes: whole cache lines below 1 KB, then 2^k·{1, 1.25, 1.5, 1.75} (at most 25% slack).
size_t size_class(size_t bytes) {
  if (bytes < kSmallClass) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  size_t pow2 = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t quarter = pow2 / 4;
  return (bytes + quarter - 1) / quarter * quarter;
}

// Blocks of 2 MB or more start on a 2 MB boundary and ask for transparent huge pages (where the
// system leaves that to madvise, as Debian and Ubuntu do): a training step streams hundreds of MB
// of activations through the GEMMs, and 4 KB pages cost TLB misses on every strided panel read.
// iuvit-t/4 bf16 train step on a Zen 4: 310 -> 290 ms (means of 4 alternating 30-step runs; fp32
// and the width-128 default model within noise, 0-3 %). The tail past the last whole huge page
// stays in small pages, so no memory is wasted.
constexpr size_t kHugePage = size_t(2) << 20;
void* allocate(size_t bytes) {
  if (bytes < kHugePage) return std::aligned_alloc(kAlignment, bytes);
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, bytes) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure leaves small pages
#endif
  return p;
}

class BlockCache {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
        return p;
      }
    }
    void* p = allocate(bytes);
    if (!p) {  // out of memory: give the cache back and try once more
      release_all();
      p = allocate(bytes);
    }
    return p;
  }
  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lk(mutex_);
    free_[bytes].push_back(p);
    cached_bytes_ += bytes;
  }
  void release_all() {
    std::lock_guard<std::mutex> lk(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }
  int64_t cached_bytes() {
    std::lock_guard<std::mutex> lk(mutex_);
    return static_cast<int64_t>(cached_bytes_);
  }

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

// The CPU backend's allocator: 64-byte aligned host memory through the block cache.
class HostAllocator final : public Allocator {
 public:
  Device device() const override { return Device::cpu; }
  void* allocate(size_t bytes, size_t* capacity) override {
    // Round up to a size class (at least one cache line) so vector tails may over-read safely.
    *capacity = size_class(std::max<size_t>(kAlignment, bytes));
    return cache_.take(*capacity);
  }
  void deallocate(void* p, size_t capacity) override { cache_.give(p, capacity); }
  void count(int64_t bytes) override {
    if (bytes > 0) {
      live_buffers_++;
      total_allocations_++;
      int64_t live = (live_bytes_ += bytes);
      int64_t peak = peak_bytes_.load();
      while (live > peak && !peak_bytes_.compare_exchange_weak(peak, live)) {
      }
    } else {
      live_buffers_--;
      live_bytes_ += bytes;
    }
  }
  MemoryStats stats() override {
    return {live_buffers_.load(), live_bytes_.load(), peak_bytes_.load(), total_allocations_.load(),
            cache_.cached_bytes()};
  }
  void empty_cache() override { cache_.release_all(); }

 private:
  BlockCache cache_;
  std::atomic<int64_t> live_buffers_{0}, live_bytes_{0}, peak_bytes_{0}, total_allocations_{0};
};

}  // namespace

Allocator& cpu_allocator() {
  static HostAllocator* a = new HostAllocator();  // never destroyed: buffers may be finalised at exit
  return *a;
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i32: return 4;
  }
  return 4;
}
const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::i32: return "int32";
  }
  return "?";
}
const char* device_name(Device d) { return d == Device::cpu ? "cpu" : d == Device::cuda ? "cuda" : "?"; }

Buffer::Buffer(Allocator& allocator, DType dtype, int64_t numel)
    : allocator_(&allocator), numel_(numel), dtype_(dtype) {
  data_ = allocator_->allocate(bytes(), &capacity_);
  if (!data_)
    throw Error(std::string("diffvit.alloc: out of memory allocating ") + std::to_string(bytes()) + " bytes on " +
                device_name(device()));
  allocator_->count(static_cast<int64_t>(bytes()));
}

Buffer::~Buffer() { release(); }

void Buffer::release() {
  if (!data_) return;
  allocator_->deallocate(data_, capacity_);
  data_ = nullptr;
  allocator_->count(-static_cast<int64_t>(bytes()));
}

}  // namespace dv
