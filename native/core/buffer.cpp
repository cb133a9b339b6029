#include "core/buffer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/errors.h"

namespace dv {
namespace {
std::atomic<int64_t> g_live_buffers{0}, g_live_bytes{0}, g_peak_bytes{0}, g_total_allocations{0};
constexpr size_t kAlignment = 64;  // one cache line, the widest vector load
}  // namespace

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
const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "?"; }

Buffer::Buffer(Device device, DType dtype, int64_t numel) : numel_(numel), dtype_(dtype), device_(device) {
  // Round up to whole cache lines (and at least one) so vector tails may over-read safely.
  size_t bytes = std::max<size_t>(kAlignment, (numel * dtype_size(dtype) + kAlignment - 1) / kAlignment * kAlignment);
  data_ = std::aligned_alloc(kAlignment, bytes);
  if (!data_) throw Error("diffvit.alloc: out of memory allocating " + std::to_string(bytes) + " bytes");
  g_live_buffers++;
  int64_t live = (g_live_bytes += this->bytes());
  int64_t peak = g_peak_bytes.load();
  while (live > peak && !g_peak_bytes.compare_exchange_weak(peak, live)) {
  }
  g_total_allocations++;
}

Buffer::~Buffer() { release(); }

void Buffer::release() {
  if (!data_) return;
  std::free(data_);
  data_ = nullptr;
  g_live_buffers--;
  g_live_bytes -= bytes();
}

MemoryStats memory_stats() {
  return {g_live_buffers.load(), g_live_bytes.load(), g_peak_bytes.load(), g_total_allocations.load()};
}

}  // namespace dv
