// The OS threads blocks run on: the launching thread plus (workers - 1) pool threads. Blocks are
// handed out in index order from an atomic counter; a failing block stops the others from starting.
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/errors.h"
#include "cuda/emu/internal.h"
#include "cuda/emu/scheduler.h"

namespace dv_emu {
namespace detail {
namespace {

struct Job {
  const LaunchDesc* launch;
  uint64_t total;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> abort{false};
  std::mutex error_mutex;
  std::exception_ptr error;
};

void work(Job& job) {
  Worker& w = this_worker();
  while (!job.abort.load(std::memory_order_relaxed)) {
    uint64_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= job.total) break;
    std::exception_ptr e;
    if (!run_block(w, *job.launch, i, e)) {
      std::lock_guard<std::mutex> lk(job.error_mutex);
      if (!job.error) job.error = e;
      job.abort.store(true, std::memory_order_relaxed);
    }
  }
}

int configured_workers() {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* e = std::getenv("DIFFVIT_EMU_THREADS")) {
    long v = std::strtol(e, nullptr, 10);
    if (v >= 1) n = static_cast<int>(std::min<long>(v, 256));
  }
  return n < 1 ? 1 : n;
}

class Pool {
 public:
  explicit Pool(int workers) : workers_(workers) {
    for (int i = 1; i < workers; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return workers_; }

  void run(Job& job) {
    std::lock_guard<std::mutex> one_launch_at_a_time(launch_mutex_);
    const uint64_t helpers = std::min<uint64_t>(threads_.size(), job.total - 1);
    if (helpers) {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &job;
      slots_ = static_cast<unsigned>(helpers);
      wake_.notify_all();
    }
    work(job);
    if (helpers) {
      // Close the job to helpers that have not woken yet, and wait for those inside it.
      std::unique_lock<std::mutex> lk(m_);
      job_ = nullptr;
      slots_ = 0;
      done_.wait(lk, [this] { return inside_ == 0; });
    }
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      wake_.wait(lk, [this] { return stop_ || (job_ && slots_ > 0); });
      if (stop_) return;
      --slots_;
      ++inside_;
      Job* job = job_;
      lk.unlock();
      work(*job);
      lk.lock();
      if (--inside_ == 0) done_.notify_all();
    }
  }

  const int workers_;
  std::vector<std::thread> threads_;
  std::mutex launch_mutex_;
  std::mutex m_;
  std::condition_variable wake_, done_;
  Job* job_ = nullptr;
  unsigned slots_ = 0, inside_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p(configured_workers());
  return p;
}

}  // namespace

void run_launch(const LaunchDesc& launch) {
  if (t_block)
    throw dv::Error(std::string("diffvit.") + launch.op + ": kernel launched from inside an emulated kernel");
  Job job;
  job.launch = &launch;
  job.total = static_cast<uint64_t>(launch.grid.x) * launch.grid.y * launch.grid.z;
  pool().run(job);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace detail

int worker_count() { return detail::pool().workers(); }

}  // namespace dv_emu
