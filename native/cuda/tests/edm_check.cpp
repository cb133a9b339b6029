// Standalone check of the EDM kernels (native/cuda/edm.cu) against the CPU functions of
// native/cpu/edm.cpp on random inputs of awkward sizes (3 images of 257 values, odd and even
// Philox counters, vectorised and scalar paths, aliased outputs, non-positive sigmas). Every output
// must have the CPU's bits (NaN matching NaN), except the mean loss, whose float64 sum is ordered
// differently and must agree to 1 float32 ulp. Exits 1 on any mismatch, 2 on an error.
//
// Built against the CPU emulator of CUDA, e.g. under ThreadSanitizer (one command line):
//   g++ -std=c++17 -O1 -g -fsanitize=thread -DDV_CUDA_EMULATOR -DDV_CUDA=1 -I native
//       -x c++ native/cuda/edm.cu -x none native/cuda/tests/edm_check.cpp native/cuda/runtime.cpp native/cuda/allocator.cpp native/cuda/graph.cpp
//       native/cpu/edm.cpp native/core/thread_pool.cpp native/core/trace.cpp native/cuda/emu/*.cpp
//       -lpthread -o /tmp/edm_check && /tmp/edm_check
// (scripts/cuda-race-check.sh builds and runs it under ThreadSanitizer.)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "cpu/edm.h"
#include "cuda/cuda_api.h"
#include "cuda/edm.h"
#include "cuda/runtime.h"

namespace {

constexpr int64_t kBatch = 3, kPer = 257;
constexpr float kSigmaData = 0.5f;

std::mt19937 rng(20240607);

std::vector<float> random_values(int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// A device copy of host values, freed at scope end.
struct DeviceArray {
  float* ptr = nullptr;
  size_t n = 0;
  explicit DeviceArray(size_t count) : n(count) {
    dv::cuda::check(cudaMalloc(reinterpret_cast<void**>(&ptr), (n ? n : 1) * sizeof(float)), "edm_check.alloc");
    dv::cuda::check(cudaMemset(ptr, 0xff, (n ? n : 1) * sizeof(float)), "edm_check.memset");  // NaN fill
  }
  explicit DeviceArray(const std::vector<float>& v) : DeviceArray(v.size()) { upload(v); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(ptr); }
  void upload(const std::vector<float>& v) {
    dv::cuda::check(cudaMemcpy(ptr, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "edm_check.upload");
  }
  std::vector<float> download() const {
    dv::cuda::check(cudaDeviceSynchronize(), "edm_check.sync");
    std::vector<float> v(n);
    dv::cuda::check(cudaMemcpy(v.data(), ptr, n * sizeof(float), cudaMemcpyDeviceToHost), "edm_check.download");
    return v;
  }
};

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits(a) == bits(b); }

// Every element bit-identical (NaN matching NaN); reports the first few mismatches.
bool expect_same(const std::string& what, const std::vector<float>& gpu, const std::vector<float>& cpu) {
  if (gpu.size() != cpu.size()) {
    std::printf("FAIL %s: %zu values, expected %zu\n", what.c_str(), gpu.size(), cpu.size());
    return false;
  }
  int bad = 0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    if (same(gpu[i], cpu[i])) continue;
    if (bad++ < 5) std::printf("FAIL %s[%zu]: cuda %.9g (0x%08x), cpu %.9g (0x%08x)\n", what.c_str(), i, gpu[i],
                               bits(gpu[i]), cpu[i], bits(cpu[i]));
  }
  if (bad) std::printf("FAIL %s: %d of %zu values differ\n", what.c_str(), bad, gpu.size());
  return bad == 0;
}

// ============================== cases ==============================

bool check_training_sigmas(uint64_t counter) {
  const uint64_t seed = 0x5eed1234u;
  const double p_mean = -1.2, p_std = 1.2;
  std::vector<float> cpu(kBatch);
  dv::cpu::edm_training_sigmas(kBatch, seed, counter, p_mean, p_std, cpu.data());
  DeviceArray gpu(kBatch);
  dv::cuda::edm_training_sigmas(kBatch, seed, counter, p_mean, p_std, gpu.ptr);
  return expect_same("edm_training_sigmas(counter " + std::to_string(counter) + ")", gpu.download(), cpu);
}

bool check_noise_levels() {
  std::vector<float> sigma = random_values(kBatch, 0.002f, 80.0f), cpu(kBatch);
  dv::cpu::edm_noise_levels(sigma.data(), kBatch, cpu.data());
  DeviceArray s(sigma), gpu(kBatch);
  dv::cuda::edm_noise_levels(s.ptr, kBatch, gpu.ptr);
  return expect_same("edm_noise_levels", gpu.download(), cpu);
}

// sigma: the per-image noise levels (may hold non-positive values: the kernels must not fault).
bool check_noise(const std::string& name, int64_t batch, int64_t per, uint64_t counter, std::vector<float> sigma) {
  const uint64_t seed = 77;
  const int64_t n = batch * per;
  std::vector<float> y = random_values(n, -1.0f, 1.0f), xn(static_cast<size_t>(n)), xi(static_cast<size_t>(n));
  dv::cpu::edm_noise(y.data(), sigma.data(), batch, per, seed, counter, kSigmaData, xn.data(), xi.data());
  DeviceArray dy(y), ds(sigma), dxn(static_cast<size_t>(n)), dxi(static_cast<size_t>(n));
  dv::cuda::edm_noise(dy.ptr, ds.ptr, batch, per, seed, counter, kSigmaData, dxn.ptr, dxi.ptr);
  const bool a = expect_same("edm_noise x_noisy (" + name + ")", dxn.download(), xn);
  const bool b = expect_same("edm_noise x_in (" + name + ")", dxi.download(), xi);
  return a && b;
}

bool check_loss(const std::string& name, int64_t batch, int64_t per, std::vector<float> sigma, bool finite) {
  const int64_t n = batch * per;
  std::vector<float> F = random_values(n, -2.0f, 2.0f), xn = random_values(n, -3.0f, 3.0f);
  std::vector<float> y = random_values(n, -1.0f, 1.0f), dF(static_cast<size_t>(n));
  const float cpu_loss =
      static_cast<float>(dv::cpu::edm_loss(F.data(), xn.data(), y.data(), sigma.data(), batch, per, kSigmaData, dF.data()));
  DeviceArray dFin(F), dxn(xn), dy(y), ds(sigma), ddF(static_cast<size_t>(n)), dloss(1);
  dv::cuda::edm_loss(dFin.ptr, dxn.ptr, dy.ptr, ds.ptr, batch, per, kSigmaData, ddF.ptr, dloss.ptr);
  bool ok = expect_same("edm_loss dF (" + name + ")", ddF.download(), dF);
  const float gpu_loss = dloss.download()[0];
  if (finite) {
    // The float64 sums are ordered differently: the float32 means may differ by an ulp.
    const int64_t ulps = std::llabs(int64_t(bits(gpu_loss)) - int64_t(bits(cpu_loss)));
    if (!std::isfinite(gpu_loss) || ulps > 1) {
      std::printf("FAIL edm_loss loss (%s): cuda %.9g, cpu %.9g (%lld ulps)\n", name.c_str(), gpu_loss, cpu_loss,
                  static_cast<long long>(ulps));
      ok = false;
    }
  } else if (!same(gpu_loss, cpu_loss) && !(std::isinf(gpu_loss) && std::isinf(cpu_loss))) {
    std::printf("FAIL edm_loss loss (%s): cuda %.9g, cpu %.9g\n", name.c_str(), gpu_loss, cpu_loss);
    ok = false;
  }
  return ok;
}

// alias: x_next written over base and d_out over d_prev (as Heun's correction may do).
bool check_sampler_step(const std::string& name, int64_t batch, int64_t per, bool guided, bool with_d_prev,
                        bool alias) {
  const int64_t n = batch * per;
  std::vector<float> F = random_values((guided ? 2 : 1) * n, -2.0f, 2.0f), x = random_values(n, -4.0f, 4.0f);
  std::vector<float> base = random_values(n, -4.0f, 4.0f), d_prev = random_values(n, -1.0f, 1.0f);
  std::vector<float> d_out(static_cast<size_t>(n)), x_next(static_cast<size_t>(n));
  dv::cpu::EdmStepArgs c{};
  c.batch = batch;
  c.per = per;
  c.guided = guided;
  c.guidance = 2.5f;
  c.sigma = 1.7f;
  c.sigma_data = kSigmaData;
  c.h = -0.4f;
  c.a = with_d_prev ? 0.5f : 0.0f;
  c.b = with_d_prev ? 0.5f : 1.0f;
  // CPU run on copies laid out as the GPU's (aliases included).
  std::vector<float> cpu_base = base, cpu_dprev = d_prev;
  c.F = F.data();
  c.x = x.data();
  c.base = cpu_base.data();
  c.d_prev = with_d_prev ? cpu_dprev.data() : nullptr;
  c.d_out = alias && with_d_prev ? cpu_dprev.data() : d_out.data();
  c.x_next = alias ? cpu_base.data() : x_next.data();
  dv::cpu::edm_sampler_step(c);
  const std::vector<float>& want_d = alias && with_d_prev ? cpu_dprev : d_out;
  const std::vector<float>& want_next = alias ? cpu_base : x_next;

  DeviceArray dF(F), dx(x), dbase(base), ddprev(d_prev), dd(static_cast<size_t>(n)), dnext(static_cast<size_t>(n));
  dv::cpu::EdmStepArgs g = c;
  g.F = dF.ptr;
  g.x = dx.ptr;
  g.base = dbase.ptr;
  g.d_prev = with_d_prev ? ddprev.ptr : nullptr;
  g.d_out = alias && with_d_prev ? ddprev.ptr : dd.ptr;
  g.x_next = alias ? dbase.ptr : dnext.ptr;
  dv::cuda::edm_sampler_step(g);
  const bool a = expect_same("edm_sampler_step d (" + name + ")", alias && with_d_prev ? ddprev.download() : dd.download(), want_d);
  const bool b = expect_same("edm_sampler_step x_next (" + name + ")", alias ? dbase.download() : dnext.download(), want_next);
  return a && b;
}

std::vector<float> training_like_sigmas(int64_t batch) { return random_values(batch, 0.002f, 80.0f); }

}  // namespace

int main() {
  try {
    int failed = 0, run = 0;
    auto count = [&](bool ok) {
      ++run;
      if (!ok) ++failed;
    };
    count(check_training_sigmas(5));  // odd counter: the first image takes the odd member of a pair
    count(check_training_sigmas(8));
    count(check_noise_levels());
    const std::vector<float> sigmas = training_like_sigmas(kBatch);
    count(check_noise("3x257, odd counter", kBatch, kPer, 11, sigmas));
    count(check_noise("3x257, even counter", kBatch, kPer, 12, sigmas));
    count(check_noise("3x256, even counter", kBatch, 256, 4, sigmas));
    count(check_noise("1x1, odd counter", 1, 1, 3, {0.7f}));
    count(check_noise("non-positive sigmas", kBatch, kPer, 2, {0.0f, -1.5f, 2.0f}));
    count(check_loss("3x257", kBatch, kPer, sigmas, true));
    count(check_loss("3x256 (float4)", kBatch, 256, sigmas, true));
    count(check_loss("1x1", 1, 1, {3.0f}, true));
    count(check_loss("non-positive sigmas", kBatch, kPer, {0.0f, -1.5f, 2.0f}, false));
    count(check_sampler_step("3x257 guided Heun", kBatch, kPer, true, true, false));
    count(check_sampler_step("3x257 unguided Euler", kBatch, kPer, false, false, false));
    count(check_sampler_step("3x256 guided Heun (float4)", kBatch, 256, true, true, false));
    count(check_sampler_step("3x257 guided Heun, aliased outputs", kBatch, kPer, true, true, true));
    count(check_sampler_step("3x256 Euler, aliased outputs (float4)", kBatch, 256, true, false, true));
    std::printf("edm_check: %d of %d cases passed\n", run - failed, run);
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::printf("edm_check: error: %s\n", e.what());
    return 2;
  }
}
