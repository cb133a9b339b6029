// Binding for cpu/peak.h: the measured FMA (or vdpbf16ps) peak, on one thread or on the pool.
#include <algorithm>
#include <chrono>

#include "addon/args.h"
#include "addon/registry.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "cpu/peak.h"

namespace dv::addon {
namespace {
volatile float g_sink;  // keeps the loops' results (and so the loops) alive

// GFLOP/s of `chunks` runs of loop(iters) spread over the pool (one chunk: the calling thread).
template <typename Loop>
double measure(Loop loop, int64_t flops_per_iter, bool all_threads) {
  using Clock = std::chrono::steady_clock;
  const int64_t chunks = all_threads ? 4 * int64_t(num_threads()) : 1;
  auto run = [&](int64_t iters) {
    const auto t0 = Clock::now();
    if (chunks == 1) {
      g_sink = loop(iters, 1.0f);
    } else {
      // Several chunks per thread: a thread that other processes delay hands its share to the rest.
      parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) g_sink = loop(iters, static_cast<float>(c));
      });
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  // Calibrate to ~10 ms per chunk, then keep the best run over 0.4 s (at least 5 runs): on a
  // shared machine short runs are the likeliest to find the cores undisturbed.
  int64_t iters = 1 << 12;
  while (run(iters) * static_cast<double>(num_threads()) / static_cast<double>(chunks) < 0.01 && iters < (int64_t(1) << 34))
    iters *= 2;
  double best = 1e300, total = 0;
  for (int r = 0; r < 5 || total < 0.4; ++r) {
    const double t = run(iters);
    best = std::min(best, t);
    total += t;
  }
  return static_cast<double>(chunks) * static_cast<double>(iters) * static_cast<double>(flops_per_iter) / best / 1e9;
}
}  // namespace

// fmaPeak(kind, allThreads): GFLOP/s of independent fp32 FMA chains ('float32') or vdpbf16ps
// chains ('bf16', AVX512_BF16 at the avx512 level only) at the active kernel level.
DV_BINDING(fmaPeak) {
  Args a(info, "fmaPeak", {"kind", "allThreads"});
  const bool bf16 = a.choice(0, {"float32", "bf16"}) == 1;
  const bool all_threads = a.boolean(1);
  double gflops = 0;
  if (!bf16) {
    gflops = measure([](int64_t iters, float x) { return cpu::fma_loop(iters, x); }, cpu::fma_loop_flops(), all_threads);
  } else {
#if DV_X86
    if (isa_level() != IsaLevel::avx512 || !cpu_features().avx512bf16)
      a.fail(0, std::string("'float32' (bf16 needs AVX512_BF16 at the avx512 kernel level; level ") +
                    isa_name(isa_level()) + (cpu_features().avx512bf16 ? "" : ", CPU without AVX512_BF16") + ")",
             "'bf16'");
    gflops = measure([](int64_t iters, float x) { return cpu::avx512::dpbf16_loop(iters, x); },
                     cpu::avx512::dpbf16_loop_flops(), all_threads);
#else
    a.fail(0, "'float32' (bf16 needs AVX512_BF16)", "'bf16'");
#endif
  }
  return Napi::Number::New(info.Env(), gflops);
}

}  // namespace dv::addon
