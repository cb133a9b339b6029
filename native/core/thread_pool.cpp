#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/trace.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dv {
namespace {

thread_local bool t_inside_pool = false;
constexpr int64_t kMaxChunks = 256;  // fits the claim word's 16-bit fields

// One parallel region at a time: the caller publishes the task and a claim word (the region's
// generation, its chunk count and the next unclaimed chunk), then every thread claims chunks by
// compare-and-swap on that word until none are left. The count travels in the word so that a
// worker still looking at a finished region can never claim a chunk of the next one. The caller
// returns as soon as every chunk is done; it never waits for a worker to wake up. (Waking an idle
// vCPU of a VM takes tens to hundreds of microseconds, more than a whole small elementwise kernel:
// when the caller waited for every worker to check in, a 2-thread training step ran its small
// kernels up to 5x slower than on one thread.) A worker that wakes late finds the chunks claimed,
// or a newer generation, and waits again. Workers spin for kSpin after each region before
// sleeping, as OpenMP runtimes do: the next kernel of a training step usually follows within
// microseconds.
//
// The pool is one per process, shared by every JS thread that loaded the addon (the main thread
// and worker_threads, e.g. lib/async): regions of concurrent callers run one after the other
// (run_mutex_), and resize() waits for the region in flight and excludes every other caller.
class ThreadPool {
 public:
  explicit ThreadPool(int n) { start(n); }
  ~ThreadPool() { stop(); }

  // Read by every parallel_for while another thread may be resizing: an atomic, not workers_.size().
  int size() const { return size_.load(std::memory_order_relaxed); }

  void resize(int n) {
    std::lock_guard<std::mutex> serial(run_mutex_);
    stop();
    start(n);
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& task) {
    std::lock_guard<std::mutex> serial(run_mutex_);  // one parallel region at a time
    task_.store(&task, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      gen = generation_.load(std::memory_order_relaxed) + 1;
      claim_.store(claim_word(gen, chunks), std::memory_order_release);  // publishes task_ and done_
      generation_.store(gen, std::memory_order_release);
    }
    if (sleeping_.load() > 0) cv_.notify_all();
    work(gen);
    for (int spin = 0; done_.load(std::memory_order_acquire) != chunks; ++spin) {
      if (spin > 2000) std::this_thread::yield();
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static constexpr auto kSpin = std::chrono::microseconds(200);

  // Generation (low 32 bits) | chunk count (16 bits; at most kMaxChunks) | next chunk (16 bits).
  static uint64_t claim_word(uint64_t gen, int64_t chunks) { return (gen & 0xffffffffu) << 32 | static_cast<uint64_t>(chunks) << 16; }
  static int64_t word_chunks(uint64_t word) { return static_cast<int64_t>(word >> 16 & 0xffffu); }
  static int64_t word_next(uint64_t word) { return static_cast<int64_t>(word & 0xffffu); }

  void start(int n) {
    quit_.store(false);
    const uint64_t current = generation_.load();
    for (int i = 1; i < n; ++i) {
      workers_.emplace_back([this, current, i] {
        char name[16];
        std::snprintf(name, sizeof name, "diffvit-w%d", i);  // the caller is thread 0
        trace::name_thread(name);
        loop(current);
      });
    }
    size_.store(n, std::memory_order_relaxed);
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      quit_.store(true);
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  // Claims and runs chunks of region `gen` until none are left (or a newer region has begun).
  void work(uint64_t gen) {
    t_inside_pool = true;
    uint64_t word = claim_.load(std::memory_order_acquire);
    while (word >> 32 == (gen & 0xffffffffu) && word_next(word) < word_chunks(word)) {
      if (!claim_.compare_exchange_weak(word, word + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      // The caller cannot finish the region (and replace task_) before done_ counts this chunk.
      try {
        (*task_.load(std::memory_order_relaxed))(word_next(word));
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_release);
      word = claim_.load(std::memory_order_acquire);
    }
    t_inside_pool = false;
  }

  // The generation after `seen`: spun for up to kSpin, then slept for.
  uint64_t next_generation(uint64_t seen) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 1;; ++i) {
      const uint64_t g = generation_.load(std::memory_order_acquire);
      if (g != seen) return g;
      if (i % 256 == 0 && std::chrono::steady_clock::now() > until) break;
      cpu_relax();
    }
    std::unique_lock<std::mutex> lk(mutex_);
    sleeping_.fetch_add(1);
    cv_.wait(lk, [&] { return generation_.load() != seen; });
    sleeping_.fetch_sub(1);
    return generation_.load();
  }

  void loop(uint64_t seen) {
    for (;;) {
      seen = next_generation(seen);
      if (quit_.load()) return;
      work(seen);
    }
  }

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claim_{0};
  std::atomic<const std::function<void(int64_t)>*> task_{nullptr};
  std::atomic<int64_t> done_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> quit_{false};
  std::atomic<int> size_{1};  // workers_ + the caller
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* env = std::getenv("DIFFVIT_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, 1024);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(std::max(1, n)); }

int64_t num_chunks(int64_t n, int64_t grain) {
  if (n <= 0) return 0;
  grain = std::max<int64_t>(1, grain);
  return std::min<int64_t>(kMaxChunks, (n + grain - 1) / grain);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  parallel_for_chunks(n, grain, [&](int64_t, int64_t a, int64_t b) { fn(a, b); });
}

void parallel_for_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  int64_t chunks = num_chunks(n, grain);
  if (chunks == 0) return;
  auto range = [&](int64_t c) { fn(c, c * n / chunks, (c + 1) * n / chunks); };
  if (chunks == 1 || t_inside_pool || pool().size() == 1) {
    for (int64_t c = 0; c < chunks; ++c) range(c);
    return;
  }
  std::function<void(int64_t)> task = range;
  pool().run(chunks, task);
}

}  // namespace dv
