#!/usr/bin/env bash
# Builds race_check.cpp with ThreadSanitizer against the CUDA emulator (plus any kernel sources given
# after OUTDIR: .cu files are compiled as C++ with DV_CUDA_EMULATOR), then runs
#   (a) every clean test in one process: TSan must report nothing;
#   (b) every racy test, one process each: TSan must report a data race in each.
# Exits 0 only when both hold. Logs go to OUTDIR. Extra compiler flags (e.g. -DDV_CUDA=1 for
# backend sources): RACE_CHECK_CXXFLAGS.
#
# Usage: native/cuda/emu/tests/race_check.sh OUTDIR [kernel.cu | source.cpp ...]
set -u -o pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 OUTDIR [kernel.cu | source.cpp ...]" >&2
  exit 2
fi
OUT=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
NATIVE=$(cd "$HERE/../../.." && pwd)
CXX=${CXX:-g++}
mkdir -p "$OUT"

FLAGS=(-std=c++17 -O1 -g -fsanitize=thread -fno-omit-frame-pointer -DDV_CUDA_EMULATOR -I "$NATIVE")
# shellcheck disable=SC2206
FLAGS+=(${RACE_CHECK_CXXFLAGS:-})
OBJS=()
compile() {  # compile SRC [extra flags...]
  local src=$1
  shift
  local obj="$OUT/obj/$(echo "$src" | tr '/.' '__').o"
  mkdir -p "$OUT/obj"
  if ! "$CXX" "${FLAGS[@]}" "$@" -c "$src" -o "$obj" 2>>"$OUT/build.log"; then
    echo "race_check: compiling $src failed (see $OUT/build.log)" >&2
    tail -n 30 "$OUT/build.log" >&2
    exit 2
  fi
  OBJS+=("$obj")
}

: >"$OUT/build.log"
compile "$HERE/race_check.cpp"
for src in "$NATIVE"/cuda/emu/*.cpp; do compile "$src"; done
for src in "$@"; do
  case "$src" in
    *.cu) compile "$src" -x c++ ;;
    *) compile "$src" ;;
  esac
done
if ! "$CXX" -fsanitize=thread "${OBJS[@]}" -lpthread -o "$OUT/race_check" 2>>"$OUT/build.log"; then
  echo "race_check: linking failed (see $OUT/build.log)" >&2
  tail -n 30 "$OUT/build.log" >&2
  exit 2
fi

export TSAN_OPTIONS="halt_on_error=0 exitcode=66 ${TSAN_OPTIONS:-}"
status=0

# (a) clean: no report, exit 0.
"$OUT/race_check" clean >"$OUT/clean.log" 2>&1
rc=$?
races=$(grep -c "WARNING: ThreadSanitizer" "$OUT/clean.log")
if [ "$rc" -eq 0 ] && [ "$races" -eq 0 ]; then
  echo "race_check: clean tests: no race reported (ok)"
else
  echo "race_check: clean tests: FAILED (exit $rc, $races TSan report(s)); see $OUT/clean.log" >&2
  grep -A 12 "WARNING: ThreadSanitizer" "$OUT/clean.log" | head -n 60 >&2
  status=1
fi

# (b) racy: each test on its own must be reported.
for name in $("$OUT/race_check" list-racy); do
  "$OUT/race_check" "$name" >"$OUT/racy_$name.log" 2>&1
  rc=$?
  if grep -q "WARNING: ThreadSanitizer: data race" "$OUT/racy_$name.log"; then
    echo "race_check: racy test $name: data race reported (ok)"
  else
    echo "race_check: racy test $name: NO data race reported (exit $rc); see $OUT/racy_$name.log" >&2
    tail -n 20 "$OUT/racy_$name.log" >&2
    status=1
  fi
done
exit $status
