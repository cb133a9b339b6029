// Data-race check of emulated kernels under ThreadSanitizer (see race_check.sh, which builds this
// with -fsanitize=thread together with the emulator and any kernel sources given to it).
//
// The emulator runs every CUDA thread on its own TSan fiber and tells TSan exactly the ordering CUDA
// guarantees (block start, __syncthreads, warp collectives, thread exit), so TSan reports two threads
// of a block touching the same shared or global memory without a barrier in between.
//
// A test is a function registered with RACE_CHECK_TEST(name, expect_race). Clean tests (false) must
// produce no report; racy ones (true) must each produce one. To cover another kernel, add a test
// that calls its host entry point (declare it, or include its cuda/<family>.h) and pass its .cu file
// to race_check.sh.
//
// Usage: race_check            run every clean test
//        race_check racy       run every racy test
//        race_check <name>     run one test
//        race_check list-clean | list-racy
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda/common.cuh"

// common.cuh's host hooks, unless a linked backend source defines them.
namespace dv::cuda {
__attribute__((weak)) cudaStream_t stream() { return nullptr; }
__attribute__((weak)) void check(cudaError_t status, const char* op) {
  if (status != cudaSuccess)
    throw dv::Error(std::string("diffvit.") + op + ": CUDA error " + cudaGetErrorName(status) + ": " +
                    cudaGetErrorString(status));
}
__attribute__((weak)) void check_launch(const char* op) { check(cudaGetLastError(), op); }
}  // namespace dv::cuda

namespace race_check {

struct Test {
  const char* name;
  bool expect_race;
  void (*run)();
};
std::vector<Test>& tests() {
  static std::vector<Test> t;
  return t;
}
struct Register {
  Register(const char* name, bool expect_race, void (*run)()) { tests().push_back({name, expect_race, run}); }
};

// Device buffer for tests.
template <class T>
struct Buffer {
  T* ptr = nullptr;
  size_t n;
  explicit Buffer(size_t count, const T& fill = T()) : n(count) {
    dv::cuda::check(cudaMalloc(reinterpret_cast<void**>(&ptr), n * sizeof(T)), "race_check.malloc");
    std::vector<T> h(n, fill);
    dv::cuda::check(cudaMemcpy(ptr, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), "race_check.upload");
  }
  ~Buffer() { cudaFree(ptr); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    dv::cuda::check(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), "race_check.download");
    return h;
  }
};

}  // namespace race_check

#define RACE_CHECK_TEST(ident, expect_race)                                           \
  static void ident();                                                                \
  static const ::race_check::Register ident##_registration(#ident, expect_race, ident); \
  static void ident()

namespace {

using dv::cuda::launch;
using race_check::Buffer;

// ---- clean kernels ----

// Block sum: warp shuffles, then one partial per warp through shared memory.
__global__ void warp_shared_reduce_kernel(const float* in, float* out, int n) {
  __shared__ float partial[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  float v = 0.0f;
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n;
       i += static_cast<int>(gridDim.x * blockDim.x))
    v += in[i];
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < nwarps ? partial[lane] : 0.0f;
    for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) atomicAdd(out, v);
  }
}

// Phases of neighbour exchange through shared memory, separated by barriers.
__global__ void barrier_phases_kernel(float* out, int rounds) {
  __shared__ float s[256];
  const unsigned t = threadIdx.x, n = blockDim.x;
  float acc = 0.0f;
  for (int r = 0; r < rounds; ++r) {
    s[t] = static_cast<float>(t * r);
    __syncthreads();
    acc += s[(t + 1) % n];
    __syncthreads();  // before anyone overwrites s in the next round
  }
  out[blockIdx.x * n + t] = acc;
}

// Warp-synchronous exchange through shared memory, ordered by __syncwarp.
__global__ void syncwarp_exchange_kernel(int* out) {
  __shared__ int s[64];
  const unsigned t = threadIdx.x;
  s[t] = static_cast<int>(t);
  __syncwarp();
  int v = s[t ^ 1];
  __syncwarp();
  s[t] = v * 2;
  __syncwarp();
  out[blockIdx.x * 64 + t] = s[t ^ 3];  // each block its own outputs
}

RACE_CHECK_TEST(warp_shared_reduce, false) {
  const int n = 1 << 14;
  Buffer<float> in(n, 1.0f), out(1, 0.0f);
  launch("race_check.reduce", warp_shared_reduce_kernel, dim3(8), dim3(256), 0, in.ptr, out.ptr, n);
  if (out.get()[0] != static_cast<float>(n)) throw dv::Error("race_check.reduce: wrong sum");
}

RACE_CHECK_TEST(barrier_phases, false) {
  Buffer<float> out(4 * 128);
  launch("race_check.phases", barrier_phases_kernel, dim3(4), dim3(128), 0, out.ptr, 4);
}

RACE_CHECK_TEST(syncwarp_exchange, false) {
  Buffer<int> out(128);
  launch("race_check.syncwarp", syncwarp_exchange_kernel, dim3(2), dim3(64), 0, out.ptr);
  auto v = out.get();
  for (unsigned t = 0; t < 128; ++t)
    if (v[t] != static_cast<int>((((t % 64) ^ 3) ^ 1) * 2)) throw dv::Error("race_check.syncwarp: wrong result");
}

// Grid-wide sum, "last block" style: each block publishes a partial, then counts itself in; the block
// that counts last adds the partials. The atomic counter orders the partials before the final read.
__global__ void last_block_sum_kernel(const float* in, float* partials, unsigned* counter, float* out) {
  __shared__ float s[128];
  __shared__ bool last;
  const unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) {
    partials[blockIdx.x] = s[0];
    __threadfence();
    last = atomicInc(counter, gridDim.x) == gridDim.x - 1;
  }
  __syncthreads();
  if (last && t == 0) {
    float total = 0.0f;
    for (unsigned b = 0; b < gridDim.x; ++b) total += partials[b];
    *out = total;
  }
}

// Dynamic shared memory staged by one warp, consumed by the others after a barrier; many blocks per
// worker, so the buffer is reused by consecutive blocks.
__global__ void dynamic_stage_kernel(const int* in, int* out) {
  DV_DYNAMIC_SHARED(int, stage);
  const unsigned t = threadIdx.x;
  if (t < 32) {
    for (unsigned i = t; i < blockDim.x; i += 32) stage[i] = in[blockIdx.x * blockDim.x + i];
  }
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = stage[blockDim.x - 1 - t];
}

// Tensor-core tile per warp; results exchanged through shared memory after a barrier.
__global__ void mma_tiles_kernel(float* out) {
  __shared__ float tile[4][16 * 8];
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const uint32_t one = dv::cuda::pack_bf16x2(1.0f, 1.0f);
  const uint32_t a[4] = {one, one, one, one}, b[2] = {one, one};
  float acc[4] = {static_cast<float>(warp), 0.0f, 0.0f, 0.0f};
  dv::cuda::mma_bf16_16816(acc, a, b, acc);
  tile[warp][g * 8 + 2 * t] = acc[0];
  tile[warp][g * 8 + 2 * t + 1] = acc[1];
  tile[warp][(g + 8) * 8 + 2 * t] = acc[2];
  tile[warp][(g + 8) * 8 + 2 * t + 1] = acc[3];
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = tile[(warp + 1) % 4][lane];
}

RACE_CHECK_TEST(last_block_sum, false) {
  const int blocks = 16;
  Buffer<float> in(blocks * 128, 1.0f), partials(blocks), out(1);
  Buffer<unsigned> counter(1, 0u);
  launch("race_check.last_block", last_block_sum_kernel, dim3(blocks), dim3(128), 0, in.ptr, partials.ptr, counter.ptr,
         out.ptr);
  if (out.get()[0] != blocks * 128.0f) throw dv::Error("race_check.last_block: wrong sum");
}

RACE_CHECK_TEST(dynamic_shared_stage, false) {
  const int blocks = 12, threads = 96;
  Buffer<int> in(blocks * threads, 7), out(blocks * threads);
  launch("race_check.dynamic_stage", dynamic_stage_kernel, dim3(blocks), dim3(threads), threads * sizeof(int), in.ptr,
         out.ptr);
}

RACE_CHECK_TEST(mma_tiles, false) {
  Buffer<float> out(256);
  launch("race_check.mma", mma_tiles_kernel, dim3(2), dim3(128), 0, out.ptr);
  auto v = out.get();
  if (v[0] != 17.0f) throw dv::Error("race_check.mma: wrong tile value");
}

// ---- racy kernels: each must be reported ----

// Thread i writes s[i], then reads its neighbour's s[(i+1) % n] with no barrier in between.
__global__ void neighbour_no_barrier_kernel(float* out) {
  __shared__ float s[128];
  const unsigned i = threadIdx.x, n = blockDim.x;
  s[i] = static_cast<float>(i);
  out[i] = s[(i + 1) % n];
}

// A thread writes right after barrier k while a slower thread still reads what it read before
// barrier k: only the next barrier would order them.
__global__ void write_after_barrier_kernel(int* out) {
  __shared__ int s[64];
  const unsigned t = threadIdx.x;
  s[t] = 1;
  __syncthreads();
  if (t == blockDim.x - 1) s[0] = 2;  // no barrier between this write and thread 0's read
  else if (t == 0) out[0] = s[0];
  __syncthreads();
}

// Two lanes of a warp after the same shuffle: one writes what the other reads.
__global__ void after_shuffle_kernel(int* data) {
  const unsigned lane = threadIdx.x % 32;
  int v = __shfl_sync(0xffffffffu, static_cast<int>(lane), 0);
  if (lane == 1) data[0] = v;
  if (lane == 0) data[1] = data[0];
}

// Two threads of a block write the same global word.
__global__ void global_write_write_kernel(int* data) {
  if (threadIdx.x == 3 || threadIdx.x == 40) data[blockIdx.x] = static_cast<int>(threadIdx.x);
}

RACE_CHECK_TEST(neighbour_no_barrier, true) {
  Buffer<float> out(128);
  launch("race_check.neighbour", neighbour_no_barrier_kernel, dim3(1), dim3(128), 0, out.ptr);
}
RACE_CHECK_TEST(write_after_barrier, true) {
  Buffer<int> out(1);
  launch("race_check.after_barrier", write_after_barrier_kernel, dim3(1), dim3(64), 0, out.ptr);
}
RACE_CHECK_TEST(after_shuffle, true) {
  Buffer<int> data(2);
  launch("race_check.after_shuffle", after_shuffle_kernel, dim3(1), dim3(32), 0, data.ptr);
}
RACE_CHECK_TEST(global_write_write, true) {
  Buffer<int> data(4);
  launch("race_check.global_ww", global_write_write_kernel, dim3(4), dim3(64), 0, data.ptr);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "clean";
  if (mode == "list-clean" || mode == "list-racy") {
    for (const auto& t : race_check::tests())
      if (t.expect_race == (mode == "list-racy")) std::printf("%s\n", t.name);
    return 0;
  }
  int ran = 0;
  for (const auto& t : race_check::tests()) {
    const bool selected = mode == t.name || (mode == "racy" && t.expect_race) || (mode == "clean" && !t.expect_race);
    if (!selected) continue;
    std::fprintf(stderr, "race_check: running %s (%s)\n", t.name, t.expect_race ? "race expected" : "no race expected");
    try {
      t.run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "race_check: %s failed: %s\n", t.name, e.what());
      return 2;
    }
    ++ran;
  }
  if (!ran) {
    std::fprintf(stderr, "race_check: no test selected by '%s'\n", mode.c_str());
    return 2;
  }
  return 0;
}
