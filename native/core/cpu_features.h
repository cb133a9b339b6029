// Which vector instructions this CPU has, and which kernel level runs. Decided once at load time;
// DIFFVIT_CPU=avx512|avx2|scalar forces a lower level (tests run every level through it).
#pragma once
#include <string>

namespace dv {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512bf16 = false;
  bool amx_tile = false, amx_bf16 = false;
};

enum class IsaLevel : int { scalar = 0, avx2 = 1, avx512 = 2 };

const CpuFeatures& cpu_features();
IsaLevel best_isa_level();  // the highest level this CPU and this build support
IsaLevel isa_level();       // the level kernels dispatch to now
void set_isa_level(IsaLevel level);  // throws dv::Error when the CPU lacks it
const char* isa_name(IsaLevel level);
bool parse_isa_level(const std::string& name, IsaLevel* out);
std::string isa_note();  // why the active level differs from the best one, or ""

}  // namespace dv
