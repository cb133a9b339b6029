// Internal: the state of one block on one OS worker, shared by scheduler.cpp (fibers, barriers,
// collectives), warp_ops.cpp (what collectives compute) and worker_pool.cpp (running launches).
#pragma once
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "cuda/emu/cuda_emu.h"
#include "cuda/emu/fiber.h"

namespace dv_emu::detail {

struct Block;

// One fiber: runs CUDA threads of the worker's current block. t_thread points at its ThreadView.
struct Fiber : ThreadView {
  Context ctx;
  Block* block = nullptr;
  bool in_kernel = false;  // its stack holds kernel frames (abandoned and restarted on abort)
};

// A warp collective in progress: the lanes of `mask` that have arrived.
struct Group {
  WarpOp op;
  unsigned mask = 0, arrived = 0;
  LaneArgs* args[32] = {};
  Fiber* fibers[32] = {};
};

struct WarpState {
  unsigned existing = 0;  // lanes the block has in this warp
  unsigned exited = 0;
  std::vector<Group*> pending;
};

// One worker's block. Reused for every block the worker runs (buffers keep their capacity).
struct Block : BlockView {
  void* worker_ptr = nullptr;  // the Worker (scheduler.cpp) that owns this block
  const LaunchDesc* launch = nullptr;
  unsigned nthreads = 0, next_thread = 0, exited = 0;
  bool one_fiber_per_thread = false;  // each CUDA thread on its own fiber (TSan needs distinct fibers)

  // __syncthreads: arrivals of the current generation; the reduction result per generation parity.
  unsigned bar_gen = 0, bar_arrived = 0, bar_true = 0;
  unsigned bar_result_true[2] = {}, bar_result_n[2] = {};
  std::vector<Fiber*> bar_waiters;

  std::vector<WarpState> warps;
  std::vector<std::unique_ptr<Group>> group_store;
  std::vector<Group*> free_groups;

  // Runnable fibers: a FIFO ring (round robin), power-of-two sized; each fiber is in it at most once.
  std::vector<Fiber*> runq;
  size_t runq_head = 0, runq_count = 0;

  std::vector<Fiber*> used;     // fibers taken for this block
  std::vector<Fiber*> retired;  // one_fiber_per_thread: fibers done for this block

  bool aborted = false;
  std::exception_ptr error;

  // ThreadSanitizer sync addresses (only their addresses matter): block start -> threads, threads ->
  // block end, barrier generations (two, alternating), and per-thread arrival/departure slots for
  // warp collectives.
  char tsan_start = 0, tsan_exit = 0;
  char tsan_bar[2] = {};
  std::vector<uint64_t> tsan_lane_arrive, tsan_lane_depart;
};

// worker_pool.cpp / scheduler.cpp
struct Worker;
Worker& this_worker();
// Runs one block of `launch` on the calling OS thread; returns false (with the error in `error`) when
// the block failed.
bool run_block(Worker& w, const LaunchDesc& launch, uint64_t block_index, std::exception_ptr& error);

// warp_ops.cpp: fills every participant's result once all lanes of `g` have arrived.
void compute_collective(Group& g);
const char* warp_op_name(WarpOp op);
// mma.cpp
void compute_mma(Group& g);

}  // namespace dv_emu::detail
