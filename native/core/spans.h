// Several arrays' elements laid end to end, for one parallel pass over all of them: an optimiser
// update of a model's ~80 parameter tensors in one dispatch instead of one per tensor (each
// dispatch costs the JS call, the argument checks and the thread pool's wake-up, ~10-30 µs).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace dv {

// Runs fn(t, begin, end) over elements [begin, end) of array t, for every element of arrays
// 0..count-1 of counts[t] elements, in parallel_for chunks of `grain` over their total (a chunk
// may span several arrays; chunk boundaries depend only on the counts).
template <class Fn>
void parallel_for_spans(const int64_t* counts, int64_t count, int64_t grain, Fn&& fn) {
  std::vector<int64_t> start(count + 1, 0);
  for (int64_t t = 0; t < count; ++t) start[t + 1] = start[t] + counts[t];
  parallel_for(start[count], grain, [&](int64_t lo, int64_t hi) {
    // The array holding element lo: the last start <= lo (empty arrays share their start with the next).
    int64_t t = std::upper_bound(start.begin(), start.end(), lo) - start.begin() - 1;
    for (; lo < hi; ++t) {
      const int64_t end = std::min(hi, start[t + 1]);
      if (end > lo) fn(t, lo - start[t], end - start[t]);
      lo = std::max(lo, end);
    }
  });
}

}  // namespace dv
