#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace dv {
namespace {

thread_local bool t_inside_pool = false;
constexpr int64_t kMaxChunks = 256;

class ThreadPool {
 public:
  explicit ThreadPool(int n) { start(n); }
  ~ThreadPool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    start(n);
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& task) {
    std::lock_guard<std::mutex> serial(run_mutex_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(mutex_);
      task_ = &task;
      chunks_ = chunks;
      next_.store(0);
      pending_.store(static_cast<int>(workers_.size()));
      error_ = nullptr;
      generation_++;
    }
    cv_.notify_all();
    work();
    // Spin briefly, then sleep: most kernels end within microseconds of each other.
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin > 2000) std::this_thread::yield();
    }
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void start(int n) {
    quit_ = false;
    // New workers wait for the NEXT generation: the current one (and the one stop() used to wake
    // their predecessors) must not be taken for work, or they would decrement pending_ for a run
    // they never joined and the caller would wait forever.
    const uint64_t current = generation_.load();
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, current] { loop(current); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      quit_ = true;
      generation_++;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  void work() {
    t_inside_pool = true;
    for (int64_t c; (c = next_.fetch_add(1)) < chunks_;) {
      try {
        (*task_)(c);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    t_inside_pool = false;
  }

  void loop(uint64_t seen) {
    for (;;) {
      // Spin a little before sleeping so back-to-back kernels do not pay a futex wake-up each.
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin) {
      }
      {
        std::unique_lock<std::mutex> lk(mutex_);
        cv_.wait(lk, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        if (quit_) return;
      }
      work();
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  int64_t chunks_ = 0;
  const std::function<void(int64_t)>* task_ = nullptr;
  std::exception_ptr error_;
  bool quit_ = false;
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
