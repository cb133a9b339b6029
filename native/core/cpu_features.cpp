#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "core/errors.h"

#if DV_X86
#include <cpuid.h>
#endif

namespace dv {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if DV_X86
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) f.f16c = (c >> 29) & 1;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = f.avx512f && ((a >> 5) & 1);
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.amx_bf16 = (d >> 22) & 1;
    f.amx_tile = (d >> 24) & 1;
  }
#endif
  return f;
}

IsaLevel detect_best() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.fma) return IsaLevel::avx512;
  if (f.avx2 && f.fma) return IsaLevel::avx2;
  return IsaLevel::scalar;
}

// The level and its note are process-wide: setCpuLevel on one JS thread (a worker_thread too)
// changes them for all, so every read and write is atomic (the note under its mutex).
std::mutex g_note_mutex;
std::string g_note;  // guarded by g_note_mutex

void set_note(std::string note) {
  std::lock_guard<std::mutex> lk(g_note_mutex);
  g_note = std::move(note);
}

IsaLevel initial_level() {
  IsaLevel best = detect_best();
  const char* env = std::getenv("DIFFVIT_CPU");
  if (!env || !*env) return best;
  IsaLevel wanted;
  if (!parse_isa_level(env, &wanted)) {
    set_note(std::string("DIFFVIT_CPU='") + env + "' is not one of avx512, avx2, scalar; using " + isa_name(best));
    return best;
  }
  if (wanted > best) {
    set_note(std::string("DIFFVIT_CPU=") + env + " is not supported by this CPU; using " + isa_name(best));
    return best;
  }
  if (wanted < best) set_note(std::string("forced by DIFFVIT_CPU=") + env);
  return wanted;
}

std::atomic<IsaLevel>& active_level() {
  static std::atomic<IsaLevel> level{initial_level()};
  return level;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static CpuFeatures f = detect();
  return f;
}

IsaLevel best_isa_level() {
  static IsaLevel best = detect_best();
  return best;
}

IsaLevel isa_level() { return active_level().load(std::memory_order_relaxed); }

void set_isa_level(IsaLevel level) {
  if (level > best_isa_level())
    fail_arg("setCpuLevel", "level", std::string("at most ") + isa_name(best_isa_level()) + " on this CPU",
             isa_name(level));
  active_level().store(level, std::memory_order_relaxed);
  set_note(level == best_isa_level() ? "" : "forced by setCpuLevel");
}

const char* isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::avx512: return "avx512";
    case IsaLevel::avx2: return "avx2";
    case IsaLevel::scalar: return "scalar";
  }
  return "?";
}

bool parse_isa_level(const std::string& name, IsaLevel* out) {
  if (name == "avx512") *out = IsaLevel::avx512;
  else if (name == "avx2") *out = IsaLevel::avx2;
  else if (name == "scalar") *out = IsaLevel::scalar;
  else return false;
  return true;
}

std::string isa_note() {
  active_level();
  std::lock_guard<std::mutex> lk(g_note_mutex);
  return g_note;
}

}  // namespace dv
