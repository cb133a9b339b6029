#include "addon/tensor_lists.h"

#include <algorithm>
#include <string>

namespace dv::addon {
namespace {
constexpr int kMaxItems = 1 << 20;
constexpr int64_t kMaxCount = int64_t(1) << 40;

// An item's elements [lo, hi) of its buffer.
struct Span {
  const Buffer* buffer;
  int64_t lo, hi;
  const TensorList* list;
  int item;
};

std::string item_name(Args& a, const Span& s) { return std::string(a.name(s.list->arg)) + "[" + std::to_string(s.item) + "]"; }

[[noreturn]] void overlap(Args& a, const Span& first, const Span& second) {
  a.fail(item_name(a, second).c_str(),
         "memory not overlapping '" + item_name(a, first) + "' (elements " + std::to_string(first.lo) + ".." + std::to_string(first.hi) + ")",
         "elements " + std::to_string(second.lo) + ".." + std::to_string(second.hi) + " of the same buffer");
}
}  // namespace

std::vector<int64_t> read_tensor_lists(Args& a, const std::vector<TensorList*>& lists, int counts_arg) {
  std::vector<int64_t> counts = a.integers(counts_arg, kMaxItems, 0, kMaxCount);
  std::vector<Span> spans;
  for (TensorList* list : lists) {
    std::vector<Buffer*> buffers = a.buffers(list->arg);
    std::vector<int64_t> offsets = a.integers(list->arg + 1, kMaxItems, 0, int64_t(1) << 50);
    const std::string n = std::to_string(counts.size());
    if (buffers.size() != counts.size()) a.fail(list->arg, n + " buffers (one per count)", std::to_string(buffers.size()));
    if (offsets.size() != counts.size()) a.fail(list->arg + 1, n + " offsets (one per count)", std::to_string(offsets.size()));
    list->data.resize(counts.size());
    for (size_t t = 0; t < counts.size(); ++t) {
      a.require_extent(list->arg, *buffers[t], offsets[t], counts[t]);
      list->data[t] = buffers[t]->as<float>() + offsets[t];
      if (counts[t] > 0) spans.push_back({buffers[t], offsets[t], offsets[t] + counts[t], list, static_cast<int>(t)});
    }
  }
  // Sorted by buffer and start, an item overlaps an earlier one iff it starts before the furthest end
  // so far in its buffer: checked against the written items' furthest end, and for a written item
  // against every item's.
  std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.buffer != y.buffer ? x.buffer < y.buffer : x.lo < y.lo; });
  const Span *furthest = nullptr, *furthest_written = nullptr;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    if (i > 0 && spans[i - 1].buffer != s.buffer) furthest = furthest_written = nullptr;
    if (furthest_written && s.lo < furthest_written->hi) overlap(a, *furthest_written, s);
    if (s.list->written && furthest && s.lo < furthest->hi) overlap(a, *furthest, s);
    if (!furthest || s.hi > furthest->hi) furthest = &s;
    if (s.list->written && (!furthest_written || s.hi > furthest_written->hi)) furthest_written = &s;
  }
  return counts;
}

}  // namespace dv::addon
