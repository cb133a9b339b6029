// Self-test of the CUDA emulator (native/cuda/emu). Kernels are written as for the GPU and launched
// through common.cuh. Build and run:
//   g++ -std=c++17 -O1 -g -DDV_CUDA_EMULATOR -I native native/cuda/emu/tests/selftest.cpp
//       native/cuda/emu/*.cpp -lpthread -o /tmp/emu_selftest && /tmp/emu_selftest
// Prints one line per check and exits non-zero when any fails. Useful variations:
// DIFFVIT_EMU_THREADS=1, DIFFVIT_EMU_FIBER_PER_THREAD=1.
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

#include <time.h>
#include <vector>

#include "cuda/common.cuh"

// common.cuh's host hooks, which the backend's runtime defines; here a plain stream and checks.
namespace dv::cuda {
cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t x = nullptr;
    cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking);
    return x;
  }();
  return s;
}
void check(cudaError_t status, const char* op) {
  if (status != cudaSuccess)
    throw dv::Error(std::string("diffvit.") + op + ": CUDA error " + cudaGetErrorName(status) + ": " +
                    cudaGetErrorString(status));
}
void check_launch(const char* op) { check(cudaGetLastError(), op); }
}  // namespace dv::cuda

namespace {

using dv::cuda::launch;

int g_failures = 0;

// Runs one check; `fn` returns "" on success or what went wrong.
template <class F>
void run_check(const char* name, F fn) {
  std::string err;
  try {
    err = fn();
  } catch (const std::exception& e) {
    err = std::string("unexpected exception: ") + e.what();
  }
  if (err.empty()) {
    std::printf("PASS %s\n", name);
  } else {
    std::printf("FAIL %s: %s\n", name, err.c_str());
    ++g_failures;
  }
  std::fflush(stdout);
}

// Device buffer holding a copy of a host vector.
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    dv::cuda::check(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(T)), "selftest.malloc");
    dv::cuda::check(cudaMemset(ptr, 0, count * sizeof(T)), "selftest.memset");
  }
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) { upload(v); }
  ~DeviceBuffer() { cudaFree(ptr); }
  void upload(const std::vector<T>& v) {
    dv::cuda::check(cudaMemcpy(ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "selftest.upload");
  }
  std::vector<T> download() const {
    std::vector<T> v(n);
    dv::cuda::check(cudaMemcpy(v.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), "selftest.download");
    return v;
  }
};

std::string fmt(const char* f, long long a = 0, long long b = 0, long long c = 0, long long d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

// ------------------------------------------------------------------------------------------------
// Kernels
// ------------------------------------------------------------------------------------------------

__global__ void index_kernel(uint32_t* out) {
  const unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned i = bx * (blockDim.x * blockDim.y * blockDim.z) + tx;
  out[i * 4 + 0] = threadIdx.x | threadIdx.y << 8 | threadIdx.z << 16;
  out[i * 4 + 1] = blockIdx.x | blockIdx.y << 8 | blockIdx.z << 16;
  out[i * 4 + 2] = blockDim.x | blockDim.y << 8 | blockDim.z << 16;
  out[i * 4 + 3] = gridDim.x | gridDim.y << 8 | gridDim.z << 16;
}

template <int kThreads>
__global__ void block_sum_kernel(const float* in, float* out) {
  __shared__ float s[kThreads];
  const unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * kThreads + t];
  __syncthreads();
  for (unsigned stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

std::mutex g_worker_mutex;
std::set<std::thread::id> g_workers_seen;

// Every block fills static and dynamic shared memory with its own pattern, then checks what other
// threads of the block wrote; blocks run on several workers at once.
__global__ void shared_pattern_kernel(int* errors, int spin_ns) {
  __shared__ int s_static[128];
  DV_DYNAMIC_SHARED(int, s_dyn);
  const unsigned t = threadIdx.x, b = blockIdx.x;
  s_static[t] = static_cast<int>(b * 1000 + t);
  s_dyn[t] = static_cast<int>(b * 7 + t * 3);
  s_dyn[128 + t] = -static_cast<int>(b);
  if (t == 0) {
    std::lock_guard<std::mutex> lk(g_worker_mutex);
    g_workers_seen.insert(std::this_thread::get_id());
  }
  if (t == 0) {  // give other workers time to hold their own blocks meanwhile
    long long t0 = clock64();
    while (clock64() - t0 < spin_ns) {
    }
  }
  __syncthreads();
  const unsigned o = 127 - t;
  int bad = 0;
  if (s_static[o] != static_cast<int>(b * 1000 + o)) ++bad;
  if (s_dyn[o] != static_cast<int>(b * 7 + o * 3)) ++bad;
  if (s_dyn[128 + o] != -static_cast<int>(b)) ++bad;
  if (bad) atomicAdd(errors, bad);
}

enum ShflOp { kIdx, kUp, kDown, kXor };
template <class T, int kOp>
__global__ void shfl_kernel(const T* in, const int* arg, T* out, int width) {
  const unsigned i = threadIdx.x;
  const T v = in[i];
  T r;
  if (kOp == kIdx) r = __shfl_sync(0xffffffffu, v, arg[i], width);
  else if (kOp == kUp) r = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(arg[i]), width);
  else if (kOp == kDown) r = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(arg[i]), width);
  else r = __shfl_xor_sync(0xffffffffu, v, arg[i], width);
  out[i] = r;
}

__global__ void vote_kernel(const int* pred, unsigned* out) {
  const unsigned i = threadIdx.x, lane = i % 32;
  const int p = pred[i];
  out[i * 8 + 0] = __ballot_sync(0xffffffffu, p);
  out[i * 8 + 1] = __any_sync(0xffffffffu, p);
  out[i * 8 + 2] = __all_sync(0xffffffffu, p);
  // Divergent halves, each with its own mask.
  if (lane < 16) out[i * 8 + 3] = __ballot_sync(0x0000ffffu, p);
  else out[i * 8 + 3] = __ballot_sync(0xffff0000u, p);
  out[i * 8 + 4] = __activemask();
  out[i * 8 + 5] = __match_any_sync(0xffffffffu, p);
  out[i * 8 + 6] = __reduce_add_sync(0xffffffffu, static_cast<unsigned>(p + lane));
  __syncwarp();
  out[i * 8 + 7] = static_cast<unsigned>(__all_sync(0xffffffffu, 1));
}

__global__ void barrier_reduce_kernel(const int* pred, int* out) {
  const int p = pred[threadIdx.x];
  const int c = __syncthreads_count(p);
  const int a = __syncthreads_and(p);
  const int o = __syncthreads_or(p);
  if (threadIdx.x == 5) {
    out[0] = c;
    out[1] = a;
    out[2] = o;
  }
}

__global__ void atomics_kernel(int* i32, unsigned* u32, unsigned long long* u64, float* f32, double* f64, int* mx,
                               int* mn, int* cas_counter) {
  __shared__ int s_count;
  if (threadIdx.x == 0) s_count = 0;
  __syncthreads();
  atomicAdd(&s_count, 1);
  atomicAdd(i32, 1);
  atomicSub(i32, 2);
  atomicAdd(u32, 3u);
  atomicAdd(u64, 1ull << 33);
  atomicAdd(f32, 0.5f);
  atomicAdd(f64, 0.25);
  const int id = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicMax(mx, id);
  atomicMin(mn, -id);
  int old = __ldcg(cas_counter), assumed;
  do {
    assumed = old;
    old = atomicCAS(cas_counter, assumed, assumed + 1);
  } while (old != assumed);
  __syncthreads();
  if (threadIdx.x == 0 && s_count != static_cast<int>(blockDim.x)) atomicAdd(i32, 1000000);  // flags an error
}

__global__ void mma_kernel(const float* A, const float* B, const float* C, float* D) {
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const float* a_ = A + warp * 256;
  const float* b_ = B + warp * 128;
  const float* c_ = C + warp * 128;
  float* d_ = D + warp * 128;
  auto at = [&](unsigned r, unsigned c) { return a_[r * 16 + c]; };
  auto bt = [&](unsigned k, unsigned n) { return b_[k * 8 + n]; };
  const uint32_t a[4] = {dv::cuda::pack_bf16x2(at(g, 2 * t), at(g, 2 * t + 1)),
                         dv::cuda::pack_bf16x2(at(g + 8, 2 * t), at(g + 8, 2 * t + 1)),
                         dv::cuda::pack_bf16x2(at(g, 2 * t + 8), at(g, 2 * t + 9)),
                         dv::cuda::pack_bf16x2(at(g + 8, 2 * t + 8), at(g + 8, 2 * t + 9))};
  const uint32_t b[2] = {dv::cuda::pack_bf16x2(bt(2 * t, g), bt(2 * t + 1, g)),
                         dv::cuda::pack_bf16x2(bt(2 * t + 8, g), bt(2 * t + 9, g))};
  float acc[4] = {c_[g * 8 + 2 * t], c_[g * 8 + 2 * t + 1], c_[(g + 8) * 8 + 2 * t], c_[(g + 8) * 8 + 2 * t + 1]};
  dv::cuda::mma_bf16_16816(acc, a, b, acc);  // in place, as kernels accumulate
  d_[g * 8 + 2 * t] = acc[0];
  d_[g * 8 + 2 * t + 1] = acc[1];
  d_[(g + 8) * 8 + 2 * t] = acc[2];
  d_[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// The bug: only threads 0-15 reach the barrier; the rest of warp 0 then waits in a full-warp
// shuffle for lanes 0-15, which wait at the barrier for them.
__global__ void divergent_barrier_kernel(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) __syncthreads();
  out[blockIdx.x * 64 + threadIdx.x] = __shfl_xor_sync(0xffffffffu, s[threadIdx.x], 1);
}
// Lanes 16-31 exit, then lanes 0-15 shuffle with a full mask.
__global__ void exited_lane_kernel(float* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, 1.0f, 0);
}
// Early exit before a barrier: exited threads no longer count, so this completes.
__global__ void early_exit_barrier_kernel(int* out, int n) {
  __shared__ int s[128];
  const int i = static_cast<int>(threadIdx.x);
  if (i >= n) return;
  s[i] = i;
  __syncthreads();
  out[i] = s[n - 1 - i];
}

__global__ void throwing_kernel(int which) {
  if (blockIdx.x == 3 && threadIdx.x == 5) {
    if (which == 0) throw std::runtime_error("boom");
    throw dv::Error("diffvit.selftest_throw: assertion failed in kernel");
  }
  __syncthreads();
}

// Thread 0 spins (yielding with __nanosleep) until thread 1 publishes a flag.
__global__ void spin_handshake_kernel(int* out) {
  __shared__ int flag;
  if (threadIdx.x == 0) flag = 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    int spins = 0;
    while (__atomic_load_n(&flag, __ATOMIC_ACQUIRE) == 0) {
      __nanosleep(100);
      ++spins;
    }
    out[0] = 1;
  } else if (threadIdx.x == 1) {
    __atomic_store_n(&flag, 1, __ATOMIC_RELEASE);
  }
}

__global__ void add_one_kernel(float* a, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) a[i] += 1.0f;
}
__global__ void accumulate_kernel(float* b, const float* a, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) b[i] += a[i];
}
__global__ void double_kernel(float* a, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) a[i] *= 2.0f;
}

__global__ void big_shared_kernel(int* errors, int words) {
  DV_DYNAMIC_SHARED(int, s);
  for (int i = static_cast<int>(threadIdx.x); i < words; i += static_cast<int>(blockDim.x)) s[i] = i ^ 0x5a5a;
  __syncthreads();
  int bad = 0;
  for (int i = static_cast<int>(threadIdx.x); i < words; i += static_cast<int>(blockDim.x))
    bad += s[words - 1 - i] != ((words - 1 - i) ^ 0x5a5a);
  if (bad) atomicAdd(errors, bad);
}

__global__ void sleep_kernel(long long ns) {
  if (threadIdx.x == 0) {
    long long t0 = clock64();
    while (clock64() - t0 < ns) {
    }
  }
}

__global__ void barrier_rounds_kernel(int rounds, int* out) {
  int x = 0;
  for (int r = 0; r < rounds; ++r) {
    __syncthreads();
    ++x;
  }
  if (threadIdx.x == 0) out[0] = x;
}
__global__ void syncwarp_rounds_kernel(int rounds, int* out) {
  int x = 0;
  for (int r = 0; r < rounds; ++r) {
    __syncwarp();
    ++x;
  }
  if (threadIdx.x == 0) out[0] = x;
}
__global__ void fill_kernel(float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = static_cast<float>(i);
}

// ------------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------------

std::string check_indexing() {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const unsigned nb = 12, nt = 24;
  DeviceBuffer<uint32_t> out(nb * nt * 4);
  launch("selftest_index", index_kernel, grid, block, 0, out.ptr);
  auto v = out.download();
  for (unsigned bz = 0; bz < 2; ++bz)
    for (unsigned by = 0; by < 2; ++by)
      for (unsigned bx = 0; bx < 3; ++bx)
        for (unsigned tz = 0; tz < 2; ++tz)
          for (unsigned ty = 0; ty < 3; ++ty)
            for (unsigned tx = 0; tx < 4; ++tx) {
              unsigned b = bx + 3 * (by + 2 * bz), t = tx + 4 * (ty + 3 * tz), i = b * nt + t;
              if (v[i * 4 + 0] != (tx | ty << 8 | tz << 16) || v[i * 4 + 1] != (bx | by << 8 | bz << 16) ||
                  v[i * 4 + 2] != (4u | 3u << 8 | 2u << 16) || v[i * 4 + 3] != (3u | 2u << 8 | 2u << 16))
                return fmt("wrong indices for block %lld thread %lld", b, t);
            }
  return "";
}

template <int kThreads>
std::string check_block_sum(int blocks) {
  std::vector<float> in(static_cast<size_t>(blocks) * kThreads);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>((i * 7) % 13);  // exact sums
  DeviceBuffer<float> din(in), dout(static_cast<size_t>(blocks));
  launch("selftest_block_sum", block_sum_kernel<kThreads>, dim3(blocks), dim3(kThreads), 0, din.ptr, dout.ptr);
  auto out = dout.download();
  for (int b = 0; b < blocks; ++b) {
    double ref = 0;
    for (int t = 0; t < kThreads; ++t) ref += in[static_cast<size_t>(b) * kThreads + t];
    if (out[b] != ref) return fmt("block %lld: sum %lld, expected %lld", b, static_cast<long long>(out[b]),
                                  static_cast<long long>(ref));
  }
  return "";
}

std::string check_shared_per_block() {
  g_workers_seen.clear();
  DeviceBuffer<int> errors(1);
  launch("selftest_shared", shared_pattern_kernel, dim3(96), dim3(128), 256 * sizeof(int), errors.ptr, 200000);
  int e = errors.download()[0];
  if (e) return fmt("%lld shared-memory words held another block's data", e);
  const int workers = dv_emu::worker_count();
  if (workers > 1 && g_workers_seen.size() < 2)
    return fmt("blocks ran on %lld OS thread(s) though %lld workers exist", static_cast<long long>(g_workers_seen.size()),
               workers);
  std::printf("  (blocks ran on %zu OS threads, %d workers)\n", g_workers_seen.size(), workers);
  return "";
}

// Scalar reference of the shuffles, written from the CUDA programming guide's description.
int ref_shfl_src(int op, int lane, int arg, int width) {
  const int base = lane / width * width;
  switch (op) {
    case kIdx: return base + (arg % width);
    case kUp: return lane - base >= arg ? lane - arg : lane;
    case kDown: return lane - base + arg < width ? lane + arg : lane;
    default: {
      const int s = lane ^ arg;
      return s < base + width ? s : lane;  // later groups give the caller's own value
    }
  }
}

template <class T, int kOp>
std::string check_one_shuffle(std::mt19937& rng, int width, int uniform_arg) {
  const int n = 64;
  std::vector<T> in(n);
  std::vector<int> arg(n);
  for (int i = 0; i < n; ++i) {
    in[i] = static_cast<T>(static_cast<T>(rng() % 100000) - static_cast<T>(50000)) / static_cast<T>(4);
    if (std::is_integral<T>::value) in[i] = static_cast<T>(rng());
    arg[i] = uniform_arg >= 0 ? uniform_arg : static_cast<int>(rng() % 32);
  }
  DeviceBuffer<T> din(in), dout(n);
  DeviceBuffer<int> darg(arg);
  launch("selftest_shfl", shfl_kernel<T, kOp>, dim3(1), dim3(n), 0, din.ptr, darg.ptr, dout.ptr, width);
  auto out = dout.download();
  for (int i = 0; i < n; ++i) {
    const int lane = i % 32, warp = i / 32;
    const int src = warp * 32 + ref_shfl_src(kOp, lane, arg[i], width);
    if (out[i] != in[src])
      return fmt("op %lld width %lld lane %lld: wrong value (expected lane %lld's)", kOp, width, i, src);
  }
  return "";
}

template <class T>
std::string check_shuffles_of(std::mt19937& rng) {
  for (int width : {32, 16, 8, 4, 2, 1}) {
    std::string e = check_one_shuffle<T, kIdx>(rng, width, -1);
    for (int d : {0, 1, 2, 3, 5, 8, 16, 31}) {
      if (e.empty()) e = check_one_shuffle<T, kUp>(rng, width, d);
      if (e.empty()) e = check_one_shuffle<T, kDown>(rng, width, d);
      if (e.empty()) e = check_one_shuffle<T, kXor>(rng, width, d);
    }
    if (!e.empty()) return e;
  }
  return "";
}

std::string check_shuffles() {
  std::mt19937 rng(7);
  std::string e = check_shuffles_of<float>(rng);
  if (e.empty()) e = check_shuffles_of<int>(rng);
  if (e.empty()) e = check_shuffles_of<unsigned>(rng);
  if (e.empty()) e = check_shuffles_of<double>(rng);
  if (e.empty()) e = check_shuffles_of<long long>(rng);
  if (e.empty()) e = check_shuffles_of<unsigned long long>(rng);
  return e;
}

std::string check_partial_warp_shuffle() {
  // 48 threads: warp 1 has 16 lanes; full masks name only the lanes that exist.
  const int n = 48;
  std::vector<float> in(n);
  std::vector<int> arg(n, 1);
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i * 3 + 1);
  DeviceBuffer<float> din(in), dout(n);
  DeviceBuffer<int> darg(arg);
  launch("selftest_shfl_partial", shfl_kernel<float, kXor>, dim3(1), dim3(n), 0, din.ptr, darg.ptr, dout.ptr, 16);
  auto out = dout.download();
  for (int i = 0; i < n; ++i)
    if (out[i] != in[i ^ 1]) return fmt("lane %lld", i);
  return "";
}

std::string check_votes() {
  const int n = 64;
  std::mt19937 rng(11);
  std::vector<int> pred(n);
  for (int i = 0; i < n; ++i) pred[i] = static_cast<int>(rng() % 4);  // 0 is false; also used as match key
  for (int i = 32; i < 64; ++i) pred[i] = 1 + static_cast<int>(rng() % 3);  // warp 1: all true
  DeviceBuffer<int> dpred(pred);
  DeviceBuffer<unsigned> dout(n * 8);
  launch("selftest_votes", vote_kernel, dim3(1), dim3(n), 0, dpred.ptr, dout.ptr);
  auto out = dout.download();
  for (int w = 0; w < 2; ++w) {
    unsigned ballot = 0, reduce = 0;
    for (int l = 0; l < 32; ++l) {
      ballot |= (pred[w * 32 + l] != 0 ? 1u : 0u) << l;
      reduce += static_cast<unsigned>(pred[w * 32 + l] + l);
    }
    for (int l = 0; l < 32; ++l) {
      const int i = w * 32 + l;
      const unsigned* o = &out[i * 8];
      unsigned half = l < 16 ? (ballot & 0xffffu) : (ballot & 0xffff0000u);
      unsigned match = 0;
      for (int k = 0; k < 32; ++k)
        if (pred[w * 32 + k] == pred[i]) match |= 1u << k;
      if (o[0] != ballot) return fmt("ballot warp %lld lane %lld", w, l);
      if (o[1] != (ballot != 0)) return fmt("any warp %lld lane %lld", w, l);
      if (o[2] != (ballot == ~0u)) return fmt("all warp %lld lane %lld", w, l);
      if (o[3] != half) return fmt("divergent ballot warp %lld lane %lld", w, l);
      if (o[4] != ~0u) return fmt("activemask warp %lld lane %lld", w, l);
      if (o[5] != match) return fmt("match_any warp %lld lane %lld", w, l);
      if (o[6] != reduce) return fmt("reduce_add warp %lld lane %lld", w, l);
      if (o[7] != 1) return fmt("syncwarp/all warp %lld lane %lld", w, l);
    }
  }
  return "";
}

std::string check_barrier_reductions() {
  std::vector<int> pred(96, 0);
  for (int i = 0; i < 96; i += 3) pred[i] = 1;
  DeviceBuffer<int> dpred(pred), dout(3);
  launch("selftest_syncthreads_count", barrier_reduce_kernel, dim3(1), dim3(96), 0, dpred.ptr, dout.ptr);
  auto o = dout.download();
  if (o[0] != 32 || o[1] != 0 || o[2] != 1) return fmt("count/and/or = %lld/%lld/%lld", o[0], o[1], o[2]);
  std::fill(pred.begin(), pred.end(), 1);
  dpred.upload(pred);
  launch("selftest_syncthreads_count", barrier_reduce_kernel, dim3(1), dim3(96), 0, dpred.ptr, dout.ptr);
  o = dout.download();
  if (o[0] != 96 || o[1] != 1 || o[2] != 1) return fmt("all true: count/and/or = %lld/%lld/%lld", o[0], o[1], o[2]);
  return "";
}

std::string check_atomics() {
  const int blocks = 400, threads = 256, n = blocks * threads;
  DeviceBuffer<int> i32(1), mx(1), mn(1), cas(1);
  DeviceBuffer<unsigned> u32(1);
  DeviceBuffer<unsigned long long> u64(1);
  DeviceBuffer<float> f32(1);
  DeviceBuffer<double> f64(1);
  launch("selftest_atomics", atomics_kernel, dim3(blocks), dim3(threads), 0, i32.ptr, u32.ptr, u64.ptr, f32.ptr,
         f64.ptr, mx.ptr, mn.ptr, cas.ptr);
  if (i32.download()[0] != -n) return fmt("int add/sub: %lld, expected %lld", i32.download()[0], -n);
  if (u32.download()[0] != 3u * n) return "unsigned add";
  if (u64.download()[0] != (static_cast<unsigned long long>(n) << 33)) return "unsigned long long add";
  if (f32.download()[0] != 0.5f * n) return "float add";
  if (f64.download()[0] != 0.25 * n) return "double add";
  if (mx.download()[0] != n - 1 || mn.download()[0] != -(n - 1)) return "max/min";
  if (cas.download()[0] != n) return fmt("CAS loop counted %lld, expected %lld", cas.download()[0], n);
  return "";
}

float bf16_round_host(float f) { return __uint_as_float(dv_cuda_bf16_round(f) << 16); }

std::string check_mma() {
  const int warps = 2;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> mag(0.25f, 2.0f);
  auto nonzero = [&] { return bf16_round_host((rng() & 1) ? mag(rng) : -mag(rng)); };
  std::vector<float> A(warps * 256), B(warps * 128), C(warps * 128);
  for (auto& x : A) x = nonzero();
  for (auto& x : B) x = nonzero();
  for (auto& x : C) x = (rng() & 1 ? 1.0f : -1.0f) * mag(rng) * 3.0f;
  DeviceBuffer<float> dA(A), dB(B), dC(C), dD(warps * 128);
  launch("selftest_mma", mma_kernel, dim3(1), dim3(32 * warps), 0, dA.ptr, dB.ptr, dC.ptr, dD.ptr);
  auto D = dD.download();
  double worst = 0;
  for (int w = 0; w < warps; ++w) {
    for (int i = 0; i < 16; ++i) {
      for (int j = 0; j < 8; ++j) {
        double ref = 0, mag_sum = 0;
        float same_order = 0.0f;
        for (int k = 0; k < 16; ++k) {
          const double p = static_cast<double>(A[w * 256 + i * 16 + k]) * B[w * 128 + k * 8 + j];
          ref += p;
          mag_sum += std::fabs(p);
          same_order += A[w * 256 + i * 16 + k] * B[w * 128 + k * 8 + j];
        }
        const double c = C[w * 128 + i * 8 + j];
        ref += c;
        same_order += static_cast<float>(c);
        const double got = D[w * 128 + i * 8 + j];
        const double tol = 1.2e-6 * (mag_sum + std::fabs(c));
        worst = std::max(worst, std::fabs(got - ref) / (mag_sum + std::fabs(c)));
        if (std::fabs(got - ref) > tol) return fmt("warp %lld D[%lld][%lld] off the float64 product", w, i, j);
        if (static_cast<float>(got) != same_order) return fmt("warp %lld D[%lld][%lld] differs from fp32 k-order sum", w, i, j);
      }
    }
  }
  std::printf("  (worst relative error vs float64: %.3g)\n", worst);
  return "";
}

template <class F>
std::string expect_error(F fn, const char* needle1, const char* needle2 = nullptr) {
  try {
    fn();
  } catch (const dv::Error& e) {
    std::string m = e.what();
    if (m.find(needle1) == std::string::npos || (needle2 && m.find(needle2) == std::string::npos))
      return "wrong message: " + m;
    std::printf("  (%s)\n", m.c_str());
    return "";
  }
  return "no dv::Error thrown";
}

std::string check_deadlock() {
  DeviceBuffer<float> out(128);
  std::string e = expect_error(
      [&] { launch("selftest_deadlock", divergent_barrier_kernel, dim3(2), dim3(64), 0, out.ptr); },
      "diffvit.selftest_deadlock: emulated kernel deadlocked", "__syncthreads");
  if (!e.empty()) return e;
  e = expect_error([&] { launch("selftest_exited_lane", exited_lane_kernel, dim3(1), dim3(64), 0, out.ptr); },
                   "diffvit.selftest_exited_lane: emulated kernel deadlocked", "exited");
  if (!e.empty()) return e;
  // The emulator recovers: a correct kernel runs afterwards, and early exits before a barrier work.
  DeviceBuffer<int> o(128);
  launch("selftest_early_exit", early_exit_barrier_kernel, dim3(1), dim3(128), 0, o.ptr, 100);
  auto v = o.download();
  for (int i = 0; i < 100; ++i)
    if (v[i] != 99 - i) return "kernel after a deadlock / early-exit barrier gave wrong results";
  return check_block_sum<256>(8);
}

std::string check_exceptions() {
  std::string e = expect_error([&] { launch("selftest_throw", throwing_kernel, dim3(8), dim3(64), 0, 0); },
                               "diffvit.selftest_throw: emulated kernel threw", "boom");
  if (!e.empty()) return e;
  e = expect_error([&] { launch("selftest_throw", throwing_kernel, dim3(8), dim3(64), 0, 1); },
                   "diffvit.selftest_throw: assertion failed in kernel");
  if (!e.empty()) return e;
  return check_block_sum<128>(16);
}

std::string check_nanosleep_yield() {
  DeviceBuffer<int> out(1);
  launch("selftest_spin", spin_handshake_kernel, dim3(1), dim3(64), 0, out.ptr);
  return out.download()[0] == 1 ? "" : "handshake did not complete";
}

std::string check_launch_errors() {
  DeviceBuffer<int> out(4);
  cudaGetLastError();
  struct Case {
    dim3 grid, block;
    size_t shared;
    const char* what;
  };
  const Case cases[] = {
      {dim3(1), dim3(1025), 0, "1025 threads"},
      {dim3(1), dim3(32, 32, 2), 0, "2048 threads"},
      {dim3(1), dim3(1, 1, 65), 0, "block.z 65"},
      {dim3(1), dim3(0), 0, "empty block"},
      {dim3(1, 65536), dim3(32), 0, "grid.y 65536"},
      {dim3(1, 1, 65536), dim3(32), 0, "grid.z 65536"},
      {dim3(1), dim3(32), 48 * 1024 + 1, "dynamic shared over 48 KiB without the attribute"},
  };
  for (const Case& c : cases) {
    dv_emu::launch("selftest_config", barrier_rounds_kernel, c.grid, c.block, c.shared, nullptr, 1, out.ptr);
    if (cudaPeekAtLastError() != cudaErrorInvalidConfiguration) return std::string("not rejected: ") + c.what;
    if (cudaGetLastError() != cudaErrorInvalidConfiguration || cudaGetLastError() != cudaSuccess)
      return "cudaGetLastError does not return then clear the error";
  }
  // The common.cuh path turns it into a dv::Error.
  std::string e = expect_error([&] { launch("selftest_config", barrier_rounds_kernel, dim3(1), dim3(2048), 0, 1, out.ptr); },
                               "cudaErrorInvalidConfiguration");
  if (!e.empty()) return e;
  // Opting in to more dynamic shared memory, as on sm_90.
  if (cudaFuncSetAttribute(big_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 232449) != cudaErrorInvalidValue)
    return "227 KiB + 1 accepted";
  cudaGetLastError();
  dv::cuda::check(cudaFuncSetAttribute(big_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 232448),
                  "selftest.attr");
  const int words = 232448 / 4;
  launch("selftest_big_shared", big_shared_kernel, dim3(6), dim3(1024), words * sizeof(int), out.ptr, words);
  if (out.download()[0] != 0) return "227 KiB dynamic shared memory corrupted";
  dv_emu::launch("selftest_big_shared", big_shared_kernel, dim3(1), dim3(32), 232448 + 4, nullptr, out.ptr, 1);
  if (cudaGetLastError() != cudaErrorInvalidConfiguration) return "shared memory above the attribute accepted";
  return "";
}

std::string check_memory_limit() {
  size_t free0 = 0, total0 = 0;
  cudaMemGetInfo(&free0, &total0);
  dv_emu::set_device_memory_limit(total0 - free0 + (64u << 20));  // 64 MiB left
  void *a = nullptr, *b = nullptr, *c = nullptr;
  std::string err;
  cudaGetLastError();
  if (cudaMalloc(&a, 48u << 20) != cudaSuccess) err = "48 MiB of 64 failed";
  else if (cudaMalloc(&b, 32u << 20) != cudaErrorMemoryAllocation || b) err = "32 MiB over the limit did not fail";
  else if (cudaGetLastError() != cudaErrorMemoryAllocation) err = "the failure is not the last error";
  else if (cudaMalloc(&c, 8u << 20) != cudaSuccess) err = "a smaller allocation after the failure failed";
  size_t fr = 0, tot = 0;
  cudaMemGetInfo(&fr, &tot);
  if (err.empty() && (tot != total0 - free0 + (64u << 20) || fr != (8u << 20)))
    err = fmt("cudaMemGetInfo free %lld total %lld", static_cast<long long>(fr), static_cast<long long>(tot));
  cudaFree(a);
  cudaFree(c);
  dv_emu::set_device_memory_limit(total0);
  if (err.empty() && cudaFree(reinterpret_cast<void*>(0x1234)) != cudaErrorInvalidValue) err = "freeing a bad pointer";
  cudaGetLastError();
  return err;
}

std::string check_capture() {
  const int n = 1000;
  cudaStream_t s = nullptr;
  dv::cuda::check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "selftest.stream");
  std::vector<float> a0(n);
  for (int i = 0; i < n; ++i) a0[i] = static_cast<float>(i % 17);
  DeviceBuffer<float> a(a0), b(n);
  std::vector<float> b0(n, 5.0f);
  b.upload(b0);
  const dim3 grid((n + 127) / 128), block(128);
  dv::cuda::check(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), "selftest.capture");
  cudaStreamCaptureStatus st;
  cudaStreamIsCapturing(s, &st);
  if (st != cudaStreamCaptureStatusActive) return "not capturing after BeginCapture";
  dv_emu::launch("selftest_capture", add_one_kernel, grid, block, 0, s, a.ptr, n);
  dv::cuda::check(cudaMemsetAsync(b.ptr, 0, n * sizeof(float), s), "selftest.memset");
  dv_emu::launch("selftest_capture", accumulate_kernel, grid, block, 0, s, b.ptr, a.ptr, n);
  dv_emu::launch("selftest_capture", double_kernel, grid, block, 0, s, a.ptr, n);
  if (cudaGetLastError() != cudaSuccess) return "launch error during capture";
  cudaGraph_t graph = nullptr;
  dv::cuda::check(cudaStreamEndCapture(s, &graph), "selftest.endcapture");
  if (a.download() != a0 || b.download() != b0) return "captured work ran during capture";
  size_t nodes = 0;
  cudaGraphGetNodes(graph, nullptr, &nodes);
  if (nodes != 4) return fmt("graph has %lld nodes, expected 4", static_cast<long long>(nodes));
  cudaGraphExec_t exec = nullptr;
  dv::cuda::check(cudaGraphInstantiate(&exec, graph, 0), "selftest.instantiate");
  cudaGraphDestroy(graph);  // the executable graph keeps its own copy
  std::vector<float> ea = a0, eb(n);
  for (int replay = 0; replay < 2; ++replay) {
    dv::cuda::check(cudaGraphLaunch(exec, s), "selftest.graphlaunch");
    dv::cuda::check(cudaStreamSynchronize(s), "selftest.sync");
    for (int i = 0; i < n; ++i) {
      ea[i] += 1.0f;
      eb[i] = ea[i];
      ea[i] *= 2.0f;
    }
    if (a.download() != ea || b.download() != eb) return fmt("replay %lld gave wrong results", replay + 1);
  }
  cudaGraphExecDestroy(exec);

  // A synchronisation inside the capture invalidates it.
  dv::cuda::check(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), "selftest.capture");
  dv_emu::launch("selftest_capture", add_one_kernel, grid, block, 0, s, a.ptr, n);
  if (cudaStreamSynchronize(s) != cudaErrorStreamCaptureUnsupported) return "StreamSynchronize during capture allowed";
  cudaStreamIsCapturing(s, &st);
  if (st != cudaStreamCaptureStatusInvalidated) return "capture not invalidated by StreamSynchronize";
  cudaGetLastError();
  dv_emu::launch("selftest_capture", add_one_kernel, grid, block, 0, s, a.ptr, n);
  if (cudaGetLastError() != cudaErrorStreamCaptureInvalidated) return "launch into an invalidated capture";
  if (cudaStreamEndCapture(s, &graph) != cudaErrorStreamCaptureInvalidated || graph) return "EndCapture did not fail";
  if (a.download() != ea) return "work of the invalidated capture ran";
  // So do a synchronous cudaMemcpy and a cudaMalloc in global mode.
  std::vector<float> host(n);
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  if (cudaMemcpy(host.data(), a.ptr, n * sizeof(float), cudaMemcpyDeviceToHost) != cudaErrorStreamCaptureUnsupported)
    return "cudaMemcpy during capture allowed";
  if (cudaStreamEndCapture(s, &graph) != cudaErrorStreamCaptureInvalidated) return "cudaMemcpy did not invalidate";
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  void* p = nullptr;
  if (cudaMalloc(&p, 256) != cudaErrorStreamCaptureUnsupported) return "cudaMalloc during capture allowed";
  if (cudaStreamEndCapture(s, &graph) != cudaErrorStreamCaptureInvalidated) return "cudaMalloc did not invalidate";
  // Relaxed mode allows cudaMalloc.
  cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (cudaMalloc(&p, 256) != cudaSuccess) return "cudaMalloc during relaxed capture refused";
  cudaFree(p);
  if (cudaStreamEndCapture(s, &graph) != cudaSuccess) return "relaxed capture failed";
  cudaGraphDestroy(graph);
  cudaGetLastError();
  cudaStreamDestroy(s);
  return "";
}

std::string check_events() {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, dv::cuda::stream());
  launch("selftest_sleep", sleep_kernel, dim3(1), dim3(32), 0, 20000000LL);
  cudaEventRecord(stop, dv::cuda::stream());
  cudaEventSynchronize(stop);
  float ms = 0;
  dv::cuda::check(cudaEventElapsedTime(&ms, start, stop), "selftest.elapsed");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (ms < 19.5f || ms > 2000.0f) return fmt("a 20 ms kernel measured %lld us", static_cast<long long>(ms * 1000));
  std::printf("  (20 ms kernel measured %.2f ms)\n", ms);
  return "";
}

std::string check_runtime_queries() {
  int n = 0, dev = -1, v = 0;
  cudaDeviceProp prop;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n != 1) return "device count";
  if (cudaSetDevice(1) != cudaErrorInvalidDevice || cudaGetLastError() != cudaErrorInvalidDevice) return "SetDevice(1)";
  if (cudaSetDevice(0) != cudaSuccess || cudaGetDevice(&dev) != cudaSuccess || dev != 0) return "SetDevice(0)";
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "properties";
  if (std::string(prop.name) != "diffvit CUDA emulator (CPU)" || prop.major != 9 || prop.minor != 0 ||
      prop.warpSize != 32 || prop.maxThreadsPerBlock != 1024 || prop.sharedMemPerBlockOptin != 232448 ||
      prop.multiProcessorCount != dv_emu::worker_count())
    return "property values";
  if (cudaRuntimeGetVersion(&v) != cudaSuccess || v != 13000) return "runtime version";
  if (std::string(cudaGetErrorName(cudaErrorStreamCaptureInvalidated)) != "cudaErrorStreamCaptureInvalidated" ||
      cudaErrorStreamCaptureInvalidated != 901 || cudaErrorIllegalAddress != 700 || cudaErrorLaunchFailure != 719 ||
      std::string(cudaGetErrorString(cudaErrorMemoryAllocation)) != "out of memory")
    return "error names/values";
  return "";
}

double cpu_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// Fiber switch cost and per-thread cost of a trivial kernel. Wall time and CPU time are both shown:
// on a shared machine the wall time also counts time other processes took.
std::string measure_performance() {
  using clk = std::chrono::steady_clock;
  DeviceBuffer<int> out(1);
  const int rounds = 2000, threads = 256;
  auto t0 = clk::now();
  double c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);  // one block: it runs on this thread
  launch("selftest_perf", barrier_rounds_kernel, dim3(1), dim3(threads), 0, rounds, out.ptr);
  const double switches = double(rounds) * threads;
  double barrier_cpu = (cpu_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / switches;
  double barrier_wall = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / switches;
  t0 = clk::now();
  c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
  launch("selftest_perf", syncwarp_rounds_kernel, dim3(1), dim3(32), 0, rounds * 8, out.ptr);
  const double wswitches = double(rounds) * 8 * 32;
  double warp_cpu = (cpu_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / wswitches;
  double warp_wall = std::chrono::duration<double, std::nano>(clk::now() - t0).count() / wswitches;
  const int n = 1 << 20;
  DeviceBuffer<float> buf(n);
  launch("selftest_perf", fill_kernel, dim3(n / 256), dim3(256), 0, buf.ptr, n);  // warm up
  const int reps = 5;
  t0 = clk::now();
  c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
  for (int r = 0; r < reps; ++r) launch("selftest_perf", fill_kernel, dim3(n / 256), dim3(256), 0, buf.ptr, n);
  double fill_cpu = (cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1000.0 / (double(n) * reps);
  double fill_wall = std::chrono::duration<double, std::micro>(clk::now() - t0).count() / (double(n) * reps);
  auto v = buf.download();
  if (v[n - 1] != static_cast<float>(n - 1)) return "fill kernel wrong";
  std::printf("  __syncthreads round, 256 threads: %.1f ns CPU (%.1f ns wall) per thread (= one fiber switch)\n",
              barrier_cpu, barrier_wall);
  std::printf("  __syncwarp round, 32 threads: %.1f ns CPU (%.1f ns wall) per thread (= one fiber switch)\n", warp_cpu,
              warp_wall);
  std::printf("  trivial kernel, 1M threads in 4096 blocks of 256: %.4f us CPU (%.4f us wall) per thread, %d workers\n",
              fill_cpu, fill_wall, dv_emu::worker_count());
  // (Not enforced under sanitizers, nor with the ucontext fallback, whose swapcontext is a syscall.)
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__) && defined(__x86_64__) && \
    !defined(DV_EMU_FORCE_UCONTEXT)
  if (barrier_cpu > 1000 || fill_cpu > 2.0) return "far slower than expected";
#endif
  return "";
}

}  // namespace

int main() {
  std::printf("diffvit CUDA emulator self-test (%d workers)\n", dv_emu::worker_count());
  run_check("indexing over 3-D grids and blocks", check_indexing);
  run_check("__syncthreads tree reduction in shared memory (256 threads)", [] { return check_block_sum<256>(64); });
  run_check("__syncthreads tree reduction in shared memory (1024 threads)", [] { return check_block_sum<1024>(8); });
  run_check("static and dynamic shared memory are per block, blocks on several workers", check_shared_per_block);
  run_check("__shfl_sync / up / down / xor (all widths, 32- and 64-bit types) vs scalar reference", check_shuffles);
  run_check("shuffle in a partial warp (48-thread block)", check_partial_warp_shuffle);
  run_check("__ballot/__any/__all/__activemask/__match_any/__reduce_add/__syncwarp, divergent masks", check_votes);
  run_check("__syncthreads_count / _and / _or", check_barrier_reductions);
  run_check("atomics of many blocks (add/sub/max/min/CAS, int/unsigned/u64/float/double, shared)", check_atomics);
  run_check("mma_bf16_16816 vs float64 product of random non-zero bf16 16x16 * 16x8", check_mma);
  run_check("deadlock detection (divergent __syncthreads, collective naming an exited lane)", check_deadlock);
  run_check("exceptions thrown in a kernel propagate as dv::Error", check_exceptions);
  run_check("__nanosleep yields: spin-wait on another thread of the block", check_nanosleep_yield);
  run_check("launch configuration errors and the dynamic shared memory attribute", check_launch_errors);
  run_check("cudaMalloc over the device memory limit fails, a smaller one then succeeds", check_memory_limit);
  run_check("stream capture of 3 launches + memsetAsync replayed twice; sync in capture invalidates", check_capture);
  run_check("events measure time", check_events);
  run_check("device queries, versions, error names", check_runtime_queries);
  run_check("performance", measure_performance);
  std::printf("%s: %d check(s) failed\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
