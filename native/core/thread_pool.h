// The native thread pool all CPU kernels share. Sized to the machine; DIFFVIT_THREADS overrides.
// One per process: every thread may call these at once (JS worker threads each run kernels); the
// parallel regions of concurrent callers run one after the other, and a resize waits for them.
#pragma once
#include <cstdint>
#include <functional>

namespace dv {

int num_threads();
void set_num_threads(int n);  // n >= 1; restarts the workers

// Runs fn(begin, end) over [0, n) split into chunks of at least `grain` items. The chunk
// boundaries depend only on n and grain, never on the thread count, so per-chunk partial results
// combined in chunk order are identical for every DIFFVIT_THREADS. Nested calls run inline.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Number of chunks parallel_for(n, grain, ...) uses.
int64_t num_chunks(int64_t n, int64_t grain);
// As parallel_for, also passing the chunk index (0 .. num_chunks-1): for reductions that keep one
// partial per chunk and combine them in order.
void parallel_for_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int64_t)>& fn);

}  // namespace dv
