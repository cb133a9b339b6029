#!/usr/bin/env bash
# ThreadSanitizer over the emulated CUDA kernels (native/cuda/emu runs every CUDA thread as a fiber
# that TSan sees as a thread, with __syncthreads and warp collectives as its only synchronisation):
#   1. the emulator's own race check: clean kernels must report nothing, a deliberately racy kernel
#      must be caught (native/cuda/emu/tests/race_check.sh);
#   2. the attention kernels (native/cuda/tests/attention_check.cpp, --quick) and the fused EDM
#      kernels (native/cuda/tests/edm_check.cpp) against their references: they must pass and TSan
#      must report no data race.
# Usage: scripts/cuda-race-check.sh [OUTDIR]   (default build-emu/tsan). Exits 0 when all hold.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-emu/tsan}
mkdir -p "$OUT"
CXX=${CXX:-g++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=thread -fno-omit-frame-pointer -DDV_CUDA_EMULATOR -DDV_CUDA=1 -DDV_X86=1 -I native -pthread)
RUNTIME=(native/cuda/runtime.cpp native/cuda/allocator.cpp native/cuda/graph.cpp native/cuda/emu/*.cpp)
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}"
status=0

bash native/cuda/emu/tests/race_check.sh "$OUT/emulator" || status=1

# check NAME: build $OUT/NAME from the remaining arguments, run it, require success and no report.
check() {
  local name=$1
  shift
  if ! "$CXX" "${FLAGS[@]}" "$@" -o "$OUT/$name" >"$OUT/$name.build.log" 2>&1; then
    echo "cuda-race-check: building $name failed:" >&2
    tail -n 30 "$OUT/$name.build.log" >&2
    status=1
    return
  fi
  "$OUT/$name" ${RUN_ARGS:-} >"$OUT/$name.log" 2>&1
  local rc=$?
  local races
  races=$(grep -c "WARNING: ThreadSanitizer" "$OUT/$name.log")
  if [ "$rc" -eq 0 ] && [ "$races" -eq 0 ]; then
    echo "cuda-race-check: $name: passed, no data race reported"
  else
    echo "cuda-race-check: $name: FAILED (exit $rc, $races ThreadSanitizer reports; log: $OUT/$name.log)" >&2
    grep -m 40 -A 12 "WARNING: ThreadSanitizer\|FAIL" "$OUT/$name.log" >&2
    status=1
  fi
}

RUN_ARGS=--quick check attention_check -x c++ native/cuda/attention.cu -x none native/cuda/tests/attention_check.cpp "${RUNTIME[@]}"
# native/cpu/edm.cpp (the reference) draws its noise through a per-ISA kernel (native/cpu/simd/random.cpp),
# compiled once per level with CMake's flags for it, and dispatched by native/core/cpu_features.cpp.
ISA_OBJECTS=()
for isa in avx512 avx2 scalar; do
  case $isa in
    avx512) isa_flags=(-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c -mbmi2) ;;
    avx2) isa_flags=(-mavx2 -mfma -mf16c -mbmi2) ;;
    scalar) isa_flags=() ;;
  esac
  if ! "$CXX" "${FLAGS[@]}" "${isa_flags[@]}" -DDV_ISA=$isa "-DDV_ISA_${isa^^}=1" -c native/cpu/simd/random.cpp \
      -o "$OUT/random_$isa.o" >"$OUT/random_$isa.build.log" 2>&1; then
    echo "cuda-race-check: building native/cpu/simd/random.cpp for $isa failed:" >&2
    tail -n 30 "$OUT/random_$isa.build.log" >&2
    exit 1
  fi
  ISA_OBJECTS+=("$OUT/random_$isa.o")
done
check edm_check -x c++ native/cuda/edm.cu -x none native/cuda/tests/edm_check.cpp native/cpu/edm.cpp \
  native/core/thread_pool.cpp native/core/trace.cpp native/core/cpu_features.cpp "${ISA_OBJECTS[@]}" "${RUNTIME[@]}"
exit $status
