// Running one block: its CUDA threads as fibers on the worker's OS thread, the block barrier, warp
// collectives, deadlock detection, and (under ThreadSanitizer) the happens-before edges CUDA
// guarantees: block start -> every thread, barrier arrivals -> barrier departures, collective
// arrivals -> collective departures, thread exit -> block end (-> launch end, worker_pool.cpp).
//
// Fibers are taken lazily: a block starts on one fiber, which runs thread after thread until one
// blocks at a barrier or collective; only then is another fiber taken for the next unstarted thread.
// Kernels without barriers thus run every thread of a block on one fiber with no switch at all.
// Under TSan every CUDA thread of a block gets its own fiber (TSan orders the work of one fiber).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/errors.h"
#include "cuda/emu/scheduler.h"

#if DV_EMU_TSAN
#include <sanitizer/tsan_interface.h>
#define DV_TSAN_RELEASE(addr) __tsan_release(addr)
#define DV_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#else
#define DV_TSAN_RELEASE(addr) ((void)0)
#define DV_TSAN_ACQUIRE(addr) ((void)0)
#endif

namespace dv_emu::detail {

struct Worker {
  Context sched;  // the OS thread's own stack: where a block starts and ends
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<Fiber*> idle;  // LIFO: the most recently used stacks are warm in cache
  Block block;
  void* shared = nullptr;  // dynamic shared memory, grown on demand
  size_t shared_capacity = 0;

  Worker() {
    context_adopt_thread(sched);
    block.worker_ptr = this;
  }
  ~Worker() {
    for (auto& f : fibers) context_free(f->ctx);
    std::free(shared);
  }
};

Worker& this_worker() {
  static thread_local std::unique_ptr<Worker> w;
  if (!w) w.reset(new Worker());
  return *w;
}

namespace {

bool fiber_per_thread_default() {
#if DV_EMU_TSAN
  return true;
#else
  const char* e = std::getenv("DIFFVIT_EMU_FIBER_PER_THREAD");
  return e && e[0] == '1';
#endif
}

Fiber* current() { return static_cast<Fiber*>(t_thread); }

std::string dims(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}
std::string where(const Block& b) {
  return "block " + dims(b.block_idx) + " (blockDim " + dims(b.block_dim) + ")";
}
std::string prefix(const Block& b) { return std::string("diffvit.") + b.launch->op + ": "; }

// "0-15,20,22-23" for the ids in `ids` (sorted).
std::string ranges(const std::vector<unsigned>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!s.empty()) s += ",";
    s += std::to_string(ids[i]);
    if (j > i) s += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return s;
}
std::vector<unsigned> lanes_of(unsigned mask) {
  std::vector<unsigned> v;
  for (unsigned l = 0; l < 32; ++l)
    if (mask >> l & 1u) v.push_back(l);
  return v;
}

void fail(Block& b, std::exception_ptr e) {
  if (b.aborted) return;
  b.aborted = true;
  b.error = e;
}

// ---- run queue: a ring over at most nthreads fibers ----
void runq_push(Block& b, Fiber* f) {
  size_t cap = b.runq.size();
  b.runq[(b.runq_head + b.runq_count) & (cap - 1)] = f;
  ++b.runq_count;
}
Fiber* runq_pop(Block& b) {
  Fiber* f = b.runq[b.runq_head];
  b.runq_head = (b.runq_head + 1) & (b.runq.size() - 1);
  --b.runq_count;
  return f;
}

std::string describe_deadlock(const Block& b) {
  std::string s = prefix(b) + "emulated kernel deadlocked: " + where(b) + ": ";
  std::vector<unsigned> at_barrier;
  for (Fiber* f : b.bar_waiters) at_barrier.push_back(f->linear);
  std::sort(at_barrier.begin(), at_barrier.end());
  bool first = true;
  if (!at_barrier.empty()) {
    s += "threads " + ranges(at_barrier) + " wait at __syncthreads for " +
         std::to_string(b.nthreads - b.exited - b.bar_arrived) + " more";
    first = false;
  }
  for (size_t w = 0; w < b.warps.size(); ++w) {
    for (const Group* g : b.warps[w].pending) {
      s += first ? "" : "; ";
      first = false;
      s += "warp " + std::to_string(w) + " lanes " + ranges(lanes_of(g->arrived)) + " wait in " + warp_op_name(g->op) +
           "(mask " + hex(g->mask) + ") for lanes " + ranges(lanes_of(g->mask & ~g->arrived));
    }
  }
  s += "; " + std::to_string(b.exited) + " of " + std::to_string(b.nthreads) + " threads exited (thread ids are linear)";
  return s;
}

void fiber_main(void* arg);

// Adds a fiber to the worker's idle list; false when its stack cannot be had.
bool create_fiber(Worker& w) {
  try {
    auto f = std::make_unique<Fiber>();
    context_start(f->ctx, &fiber_main, f.get());
    w.idle.push_back(f.get());
    w.fibers.push_back(std::move(f));
    return true;
  } catch (...) {
    return false;
  }
}

Fiber* take_fiber(Block& b) {
  Worker& w = *static_cast<Worker*>(b.worker_ptr);
  // With a fiber per thread every fiber exists before the block starts (run_block): under TSan a
  // fiber created here would inherit the creating thread's clock and hide its races.
  if (w.idle.empty() && (b.one_fiber_per_thread || !create_fiber(w))) {
    fail(b, std::make_exception_ptr(dv::Error(prefix(b) + "emulator could not allocate a fiber stack")));
    return nullptr;
  }
  Fiber* f = w.idle.back();
  w.idle.pop_back();
  f->block = &b;
  b.used.push_back(f);
  return f;
}

// The next fiber to run after the current one stops (blocked or out of work): a runnable one, else a
// fiber for the next unstarted thread; nullptr to return to the worker (block done or aborted).
Fiber* pick(Block& b) {
  if (b.aborted) return nullptr;
  if (b.runq_count) return runq_pop(b);
  if (b.next_thread < b.nthreads) return take_fiber(b);
  if (b.exited == b.nthreads) return nullptr;
  // Every live thread waits and no barrier or collective can complete.
  fail(b, std::make_exception_ptr(dv::Error(describe_deadlock(b))));
  return nullptr;
}

void switch_to(Fiber* self, Fiber* next) {
  if (next == self) return;
  if (next) {
    t_thread = next;
    context_switch(self->ctx, next->ctx);
  } else {
    t_thread = nullptr;
    context_switch(self->ctx, static_cast<Worker*>(self->block->worker_ptr)->sched);
  }
  // Resumed: whoever switched here set t_thread to self.
}

// The current fiber cannot go on (it waits, or has no more threads to run).
void switch_away(Fiber* self) { switch_to(self, pick(*self->block)); }

void complete_barrier(Block& b) {
  unsigned p = b.bar_gen & 1;
  b.bar_result_true[p] = b.bar_true;
  b.bar_result_n[p] = b.bar_arrived;
  ++b.bar_gen;
  b.bar_arrived = 0;
  b.bar_true = 0;
  for (Fiber* f : b.bar_waiters) {
    runq_push(b, f);
  }
  b.bar_waiters.clear();
}

void finish_thread(Block& b, Fiber* f) {
  DV_TSAN_RELEASE(&b.tsan_exit);
  ++b.exited;
  WarpState& ws = b.warps[f->linear >> 5];
  unsigned bit = 1u << (f->linear & 31);
  ws.exited |= bit;
  if (b.aborted) return;
  for (const Group* g : ws.pending) {
    if (g->mask & bit) {
      fail(b, std::make_exception_ptr(dv::Error(
                  prefix(b) + "emulated kernel deadlocked: " + where(b) + ": lane " + std::to_string(f->linear & 31) +
                  " of warp " + std::to_string(f->linear >> 5) + " exited while lanes " + ranges(lanes_of(g->arrived)) +
                  " wait for it in " + warp_op_name(g->op) + "(mask " + hex(g->mask) + ")")));
      return;
    }
  }
  // Exited threads no longer count towards the barrier (as bar.sync behaves).
  if (b.bar_arrived && b.bar_arrived == b.nthreads - b.exited) complete_barrier(b);
}

// A kernel's exception as the launch's error: dv::Error as it is, anything else wrapped in one.
std::exception_ptr as_launch_error(const Block& b, const Fiber* f, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const dv::Error&) {
    return e;
  } catch (const std::exception& x) {
    return std::make_exception_ptr(dv::Error(prefix(b) + "emulated kernel threw in " + where(b) + ", thread " +
                                             dims(f->thread_idx) + ": " + x.what()));
  } catch (...) {
    return std::make_exception_ptr(dv::Error(prefix(b) + "emulated kernel threw a non-standard exception in " +
                                             where(b) + ", thread " + dims(f->thread_idx)));
  }
}

void run_threads(Fiber* f) {
  Block& b = *f->block;
  const unsigned bx = b.block_dim.x, bxy = b.block_dim.x * b.block_dim.y;
  while (!b.aborted && b.next_thread < b.nthreads) {
    const unsigned lin = b.next_thread++;
    f->linear = lin;
    f->thread_idx = uint3{lin % bx, (lin % bxy) / bx, lin / bxy};
#if DV_EMU_TSAN
    DV_TSAN_ACQUIRE(&b.tsan_start);
    std::string name = "CUDA thread " + dims(f->thread_idx) + " of block " + dims(b.block_idx);
    __tsan_set_fiber_name(f->ctx.tsan_fiber, name.c_str());
#endif
    f->in_kernel = true;
    std::exception_ptr thrown;
    tsan_ignore_end();  // only the kernel body is visible to TSan
    try {
      b.launch->invoke(b.launch->closure);
    } catch (...) {
      thrown = std::current_exception();
    }
    tsan_ignore_begin();
    if (thrown) fail(b, as_launch_error(b, f, thrown));
    f->in_kernel = false;
    finish_thread(b, f);
    if (b.one_fiber_per_thread) break;
  }
}

void fiber_main(void* arg) {
  Fiber* f = static_cast<Fiber*>(arg);
  for (;;) {
    run_threads(f);
    // Out of work for this block: become idle, then run whatever comes next. When resumed, the
    // fiber has been taken again (f->block set) for a new batch of threads.
    Block& b = *f->block;
    if (b.one_fiber_per_thread) b.retired.push_back(f);
    else static_cast<Worker*>(b.worker_ptr)->idle.push_back(f);
    switch_away(f);
  }
}

void begin_block(Worker& w, const LaunchDesc& L, uint64_t index) {
  Block& b = w.block;
  b.launch = &L;
  const uint64_t gx = L.grid.x, gxy = gx * L.grid.y;
  b.block_idx = uint3{static_cast<unsigned>(index % gx), static_cast<unsigned>((index % gxy) / gx),
                      static_cast<unsigned>(index / gxy)};
  b.block_dim = L.block;
  b.grid_dim = L.grid;
  if (L.shared_bytes > w.shared_capacity || !w.shared) {
    std::free(w.shared);
    w.shared_capacity = std::max<size_t>(L.shared_bytes, 1024);
    w.shared = std::aligned_alloc(256, (w.shared_capacity + 255) / 256 * 256);
    if (!w.shared) throw std::bad_alloc();
  }
  b.dynamic_shared = w.shared;
  b.dynamic_shared_bytes = L.shared_bytes;

  b.nthreads = L.block.x * L.block.y * L.block.z;
  b.next_thread = 0;
  b.exited = 0;
  b.one_fiber_per_thread = fiber_per_thread_default();
  b.bar_gen = b.bar_arrived = b.bar_true = 0;
  b.bar_waiters.clear();
  const unsigned nwarps = (b.nthreads + 31) / 32;
  b.warps.resize(nwarps);
  for (unsigned i = 0; i < nwarps; ++i) {
    WarpState& ws = b.warps[i];
    unsigned n = std::min(32u, b.nthreads - i * 32);
    ws.existing = n == 32 ? ~0u : (1u << n) - 1;
    ws.exited = 0;
    for (Group* g : ws.pending) b.free_groups.push_back(g);  // left over by an aborted block
    ws.pending.clear();
  }
  size_t cap = 1;
  while (cap < b.nthreads) cap <<= 1;
  if (b.runq.size() < cap) b.runq.assign(cap, nullptr);
  else if (b.runq.size() > cap) b.runq.resize(cap);
  b.runq_head = b.runq_count = 0;
  b.used.clear();
  b.retired.clear();
  b.aborted = false;
  b.error = nullptr;
#if DV_EMU_TSAN
  if (b.tsan_lane_arrive.size() < nwarps * 32) {
    b.tsan_lane_arrive.resize(nwarps * 32);
    b.tsan_lane_depart.resize(nwarps * 32);
  }
#endif
}

Group* alloc_group(Block& b) {
  if (b.free_groups.empty()) {
    b.group_store.push_back(std::make_unique<Group>());
    return b.group_store.back().get();
  }
  Group* g = b.free_groups.back();
  b.free_groups.pop_back();
  return g;
}

Fiber* require_fiber(const char* what) {
  Fiber* f = current();
  if (!f) throw dv::Error(std::string("diffvit.emulator: ") + what + " called outside an emulated kernel");
  return f;
}

}  // namespace

bool run_block(Worker& w, const LaunchDesc& L, uint64_t index, std::exception_ptr& error) {
  TsanIgnore hidden;
  Block& b = w.block;
  try {
    begin_block(w, L, index);
  } catch (...) {
    error = std::make_exception_ptr(dv::Error(std::string("diffvit.") + L.op + ": emulator out of memory"));
    return false;
  }
  if (b.one_fiber_per_thread) {
    while (w.idle.size() < b.nthreads) {
      if (!create_fiber(w)) {
        error = std::make_exception_ptr(dv::Error(std::string("diffvit.") + L.op + ": emulator could not allocate " +
                                                  std::to_string(b.nthreads) + " fiber stacks"));
        return false;
      }
    }
  }
  t_block = &b;
  DV_TSAN_RELEASE(&b.tsan_start);
  if (Fiber* f = take_fiber(b)) {
    t_thread = f;
    context_switch(w.sched, f->ctx);  // returns when the block has finished or failed
  }
  t_thread = nullptr;
  t_block = nullptr;
  for (Fiber* f : b.retired) w.idle.push_back(f);
  if (b.aborted) {
    // Fibers stopped inside the kernel are abandoned: restart them from the top.
    for (Fiber* f : b.used) {
      if (!f->in_kernel) continue;
#if DV_EMU_TSAN
      // The abandoned thread never exits; let TSan see it release into the block end as an exiting
      // thread would (switching TSan's notion of the current fiber only), so that memory it touched
      // (kernel arguments, its stack) is ordered before whatever reuses it.
      __tsan_switch_to_fiber(f->ctx.tsan_fiber, __tsan_switch_to_fiber_no_sync);
      __tsan_release(&b.tsan_exit);
      __tsan_switch_to_fiber(w.sched.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
      f->in_kernel = false;
        context_start(f->ctx, &fiber_main, f);
      w.idle.push_back(f);
    }
  }
  DV_TSAN_ACQUIRE(&b.tsan_exit);
  if (b.aborted) {
    error = b.error;
    return false;
  }
  return true;
}

int block_barrier(int predicate, int mode) {
  TsanIgnore hidden;
  Fiber* f = require_fiber("__syncthreads");
  Block& b = *f->block;
  const unsigned p = b.bar_gen & 1;
  // Arrivals of generation k release into tsan_bar[k % 2] and departures acquire from it. A thread
  // that already left barrier k and arrives at k+1 uses the other address, so its later writes are
  // not ordered before a slower thread's departure from k; k+2 reuses the address only after every
  // thread has left k.
  DV_TSAN_RELEASE(&b.tsan_bar[p]);
  ++b.bar_arrived;
  b.bar_true += predicate != 0;
  if (b.bar_arrived == b.nthreads - b.exited) {
    complete_barrier(b);
  } else {
    b.bar_waiters.push_back(f);
    switch_away(f);
  }
  DV_TSAN_ACQUIRE(&b.tsan_bar[p]);
  const unsigned t = b.bar_result_true[p], n = b.bar_result_n[p];
  switch (mode) {
    case 1: return static_cast<int>(t);
    case 2: return t == n;
    case 3: return t != 0;
    default: return 0;
  }
}

void warp_collective(WarpOp op, unsigned mask, LaneArgs* args) {
  TsanIgnore hidden;
  Fiber* f = require_fiber(warp_op_name(op));
  Block& b = *f->block;
  const unsigned lin = f->linear, lane = lin & 31, wi = lin >> 5, bit = 1u << lane;
  WarpState& ws = b.warps[wi];
  const unsigned m = mask & ws.existing;  // lanes past a partial last warp do not exist
  if (!(m & bit))
    throw dv::Error(prefix(b) + warp_op_name(op) + " in " + where(b) + ", thread " + std::to_string(lin) + ": mask " +
                    hex(mask) + " does not name the calling lane " + std::to_string(lane));
  if (op == WarpOp::kMma && m != ~0u)
    throw dv::Error(prefix(b) + "mma_bf16_16816 in " + where(b) + ": all 32 lanes of warp " + std::to_string(wi) +
                    " must take part (mask " + hex(m) + ")");
  if (m & ws.exited)
    throw dv::Error(prefix(b) + "emulated kernel deadlocked: " + where(b) + ": lane " + std::to_string(lane) +
                    " of warp " + std::to_string(wi) + " calls " + warp_op_name(op) + "(mask " + hex(mask) +
                    ") naming exited lanes " + ranges(lanes_of(m & ws.exited)));

  Group* g = nullptr;
  for (Group* p : ws.pending) {
    if (p->mask == m && p->op == op) {
      g = p;
      break;
    }
  }
  if (!g) {
    g = alloc_group(b);
    g->op = op;
    g->mask = m;
    g->arrived = 0;
    ws.pending.push_back(g);
  }
  g->args[lane] = args;
  g->fibers[lane] = f;
  g->arrived |= bit;
  // Each lane releases into its own arrival slot; the completing lane acquires them all, computes,
  // then releases into every participant's departure slot, which each acquires when it leaves.
  // Slots are only ever released by their owner (arrival) or the completer of the owner's current
  // collective, so no ordering leaks between unrelated collectives.
  DV_TSAN_RELEASE(&b.tsan_lane_arrive[lin]);
  if (g->arrived == m) {
    for (size_t i = 0; i < ws.pending.size(); ++i) {
      if (ws.pending[i] == g) {
        ws.pending.erase(ws.pending.begin() + static_cast<long>(i));
        break;
      }
    }
#if DV_EMU_TSAN
    for (unsigned l = 0; l < 32; ++l)
      if (m >> l & 1u) DV_TSAN_ACQUIRE(&b.tsan_lane_arrive[wi * 32 + l]);
#endif
    compute_collective(*g);
#if DV_EMU_TSAN
    for (unsigned l = 0; l < 32; ++l)
      if (m >> l & 1u) DV_TSAN_RELEASE(&b.tsan_lane_depart[wi * 32 + l]);
#endif
    for (unsigned l = 0; l < 32; ++l) {
      if (!(m >> l & 1u)) continue;
      if (l != lane) {
        runq_push(b, g->fibers[l]);
      }
      g->fibers[l] = nullptr;
      g->args[l] = nullptr;
    }
    b.free_groups.push_back(g);
  } else {
    switch_away(f);
  }
  DV_TSAN_ACQUIRE(&b.tsan_lane_depart[lin]);
}

unsigned active_mask() {
  TsanIgnore hidden;
  Fiber* f = require_fiber("__activemask");
  const WarpState& ws = f->block->warps[f->linear >> 5];
  return ws.existing & ~ws.exited;
}

void yield_thread() {
  TsanIgnore hidden;
  Fiber* f = current();
  if (!f) return;
  Block& b = *f->block;
  Fiber* next;
  if (b.next_thread < b.nthreads) {
    next = take_fiber(b);  // let unstarted threads run first: they may be what f waits for
    if (!next) return;
  } else if (b.runq_count) {
    next = runq_pop(b);
  } else {
    return;  // nobody else can run
  }
  runq_push(b, f);
  switch_to(f, next);
}

}  // namespace dv_emu::detail
