// Which bf16 kernel runs (cpu/gemm.h).
#include <atomic>

#include "core/cpu_features.h"
#include "core/errors.h"
#include "cpu/gemm.h"

#if DV_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace dv::cpu {
namespace {

std::atomic<int> g_limit{static_cast<int>(Bf16Path::amx)};

// Linux hands a process AMX's tile data state only on request (arch_prctl ARCH_REQ_XCOMP_PERM,
// kernel 5.16 on); without it the first tile instruction kills the process. Asked once.
bool amx_granted() {
  static const bool granted = [] {
    const CpuFeatures& f = cpu_features();
    if (!f.amx_tile || !f.amx_bf16 || !f.avx512bf16) return false;
#if DV_X86 && defined(__linux__)
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return granted;
}

}  // namespace

Bf16Path bf16_path() {
  const int limit = g_limit.load(std::memory_order_relaxed);
  const bool avx512 = isa_level() == IsaLevel::avx512;
  if (avx512 && limit <= static_cast<int>(Bf16Path::amx) && amx_granted()) return Bf16Path::amx;
  if (avx512 && limit <= static_cast<int>(Bf16Path::avx512bf16) && cpu_features().avx512bf16) return Bf16Path::avx512bf16;
  return Bf16Path::emulated;
}

void set_bf16_path_limit(Bf16Path first) { g_limit.store(static_cast<int>(first), std::memory_order_relaxed); }

const char* bf16_path_name(Bf16Path path) {
  return path == Bf16Path::amx ? "amx" : path == Bf16Path::avx512bf16 ? "avx512bf16" : "emulated";
}

const char* bf16_path_description(Bf16Path path) {
  return path == Bf16Path::amx          ? "amx (TDPBF16PS on 16 x 16 tiles)"
         : path == Bf16Path::avx512bf16 ? "avx512bf16 (vdpbf16ps micro-kernel)"
                                        : "emulated (operands rounded to bf16 while packing, fp32 FMA micro-kernel)";
}
}  // namespace dv::cpu
