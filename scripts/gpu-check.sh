#!/usr/bin/env bash
# The one-command check of diffvit on a machine with an NVIDIA GPU (CUDA 13, no network, Node on
# PATH or in .gpu/): builds the CUDA backend, runs the per-backend tests on the device,
# compute-sanitizer memcheck and racecheck, the GPU benchmark against PyTorch, one nsys profile.
#
#   bash scripts/gpu-check.sh [--stages LIST] [--budget SECONDS] [--smoke] [OUT_DIR]
#   bash scripts/gpu-check.sh --pack [--prebuild]   (here, before a device call: see docs/gpu.md)
#
# Stages, in order (each stopped by `timeout` at its own limit and at the run's deadline):
#   versions   nvidia-smi, nvcc, node, cmake, compilers, torch, compute-sanitizer, nsys
#   build      the addon with the CUDA backend (cmake-js compile --out build -DDIFFVIT_CUDA=ON),
#              unless build/Release/diffvit.node is already a CUDA build usable on this GPU of the
#              same native sources, or --pack --prebuild's addon is (or DIFFVIT_ADDON names one)
#   static     scripts/check-cuda-build.mjs: registers, shared memory, spills, HMMA per kernel
#   dist       the TypeScript (tsc -p tsconfig.json) where tsc exists; else checks that the dist/
#              that came along was built from these sources (the stamp --pack writes)
#   tests      DIFFVIT_TEST_BACKENDS=cuda vitest run --project cpu <per-backend test files, cuda, device_*>
#   memcheck   compute-sanitizer --tool memcheck   node bench/gpu/sanitizer_cases.mjs
#   racecheck  compute-sanitizer --tool racecheck  node bench/gpu/sanitizer_cases.mjs --only attention,edm
#   bench      node bench/gpu.mjs (bench/results/<gpu>-<date>.json and a copy in OUT_DIR)
#   nsys       nsys profile -t cuda,nvtx of a few iuvit-s/2 training steps, and its kernel summary
# then OUT_DIR/summary.json: each stage's status (ok, failed, timeout, skipped), seconds and note.
#
# OUT_DIR (default ./build-gpu-check, git-ignored) gets at most 8 files, as the device tool returns them:
#   gpu-check.log  summary.json  vitest.json  sanitizer.log  <gpu>-<date>.json  nsys-stats.txt
#   train.nsys-rep (when under 15 MiB)
# Scratch goes to a temp folder. The whole run keeps to GPU_CHECK_BUDGET seconds (default 480), each
# stage to its own limit (the table at the end; GPU_CHECK_LIMIT_<STAGE>=S, e.g. GPU_CHECK_LIMIT_TESTS=300);
# --stages runs a subset (e.g. --stages versions,build,bench). --smoke passes --smoke to the
# benchmark (tiny shapes; for a dry run on the emulated device with DIFFVIT_ADDON set).
# Exit status: 0 when a CUDA device was usable and every stage that ran passed, 1 otherwise.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# ---------------------------------------------------------------------------------------------
# --pack: on the development machine, before a device call. Builds dist/ (the GPU machine has no
# TypeScript compiler), runs ../shared/tools/gpu/pack.sh (Node and node_modules into .gpu/),
# copies the PyTorch twin into .gpu/reference (../shared does not travel), stamps the sources.
# ---------------------------------------------------------------------------------------------
src_stamp() {  # a hash of the TypeScript sources that dist/ is built from
  find lib bench -name '*.ts' -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16
}
native_stamp() {  # a hash of what the addon is built from
  { find native -type f | LC_ALL=C sort | xargs sha256sum; sha256sum CMakeLists.txt; } | sha256sum | cut -c1-16
}
if [ "${1:-}" = "--pack" ]; then
  set -e
  prebuild=""
  [ "${2:-}" = "--prebuild" ] && prebuild=1
  pack=""
  for p in "$ROOT/../shared/tools/gpu/pack.sh" "$ROOT/shared/tools/gpu/pack.sh"; do [ -f "$p" ] && { pack=$p; break; }; done
  [ -n "$pack" ] || { echo "gpu-check --pack: ../shared/tools/gpu/pack.sh not found" >&2; exit 1; }
  echo "gpu-check --pack: npm run build (dist/)"
  stamp=$(src_stamp)  # before the build: an edit during it makes the GPU side say dist/ may be stale
  npm run --silent build
  bash "$pack"
  mkdir -p .gpu/reference
  twin=""
  for p in "$ROOT/../shared/reference/diffvit_torch.py" "$ROOT/shared/reference/diffvit_torch.py"; do [ -f "$p" ] && { twin=$p; break; }; done
  if [ -n "$twin" ]; then cp "$twin" .gpu/reference/diffvit_torch.py; else echo "gpu-check --pack: the twin diffvit_torch.py was not found: twin baselines will be skipped" >&2; fi
  echo "$stamp" > .gpu/dist.stamp
  carry='[".gpu", "dist"]'
  if [ -n "$prebuild" ]; then  # the CUDA addon compiled here (nvcc needs no GPU): saves the device minutes of the build
    echo "gpu-check --pack: cmake-js compile --out build-cuda -DDIFFVIT_CUDA=ON"
    nstamp=$(native_stamp)
    npx --no-install cmake-js compile --out build-cuda --CDDIFFVIT_CUDA=ON -p "$(nproc)"
    echo "$nstamp" > build-cuda/native.stamp
    rm -rf .gpu/build-cuda && mkdir -p .gpu/build-cuda
    xz -T0 -6 -c build-cuda/Release/diffvit.node > .gpu/build-cuda/diffvit.node.xz  # ~16 MB -> ~3 MB
    cp build-cuda/native.stamp .gpu/build-cuda/
  else
    rm -rf .gpu/build-cuda
  fi
  { git rev-parse HEAD 2>/dev/null || echo unknown; git status --porcelain 2>/dev/null | wc -l | sed 's/^/uncommitted paths: /'; } > .gpu/commit.txt
  total=$(du -cm .gpu dist 2>/dev/null | tail -1 | cut -f1)
  echo "gpu-check --pack: .gpu and dist: ${total} MB (with the tree, all must stay under 64 MiB)"
  echo "gpu-check --pack: now call the device tool with"
  echo "  command: bash .gpu/run.sh bash scripts/gpu-check.sh \$OUT"
  echo "  carry:   $carry    timeout_s: 600"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Arguments, Node (from .gpu/ when not on PATH), CUDA, the output folder and the log
# ---------------------------------------------------------------------------------------------
STAGES_WANTED=""
BUDGET=${GPU_CHECK_BUDGET:-480}
SMOKE=""
OUT_ARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stages) STAGES_WANTED=$2; shift 2 ;;
    --stages=*) STAGES_WANTED=${1#--stages=}; shift ;;
    --budget) BUDGET=$2; shift 2 ;;
    --budget=*) BUDGET=${1#--budget=}; shift ;;
    --smoke) SMOKE=--smoke; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) OUT_ARG=$1; shift ;;
  esac
done
ALL_STAGES="versions build static dist tests memcheck racecheck bench nsys"
for s in ${STAGES_WANTED//,/ }; do
  case " $ALL_STAGES " in *" $s "*) ;; *) echo "gpu-check: unknown stage '$s' (stages: $ALL_STAGES)" >&2; exit 2 ;; esac
done
wanted() { [ -z "$STAGES_WANTED" ] || case ",$STAGES_WANTED," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if ! command -v node >/dev/null 2>&1 && [ -f .gpu/run.sh ] && [ -z "${GPU_CHECK_IN_RUN_SH:-}" ]; then
  export GPU_CHECK_IN_RUN_SH=1   # .gpu/run.sh unpacks Node and node_modules, then runs us again
  exec bash .gpu/run.sh bash "$ROOT/scripts/gpu-check.sh" ${STAGES_WANTED:+--stages "$STAGES_WANTED"} --budget "$BUDGET" $SMOKE ${OUT_ARG:+"$OUT_ARG"}
fi
export PATH="$ROOT/node_modules/.bin:$PATH"

if [ -z "${CUDA_HOME:-}" ] || [ ! -d "$CUDA_HOME" ]; then
  CUDA_HOME=""
  for d in /usr/local/cuda $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV); do [ -x "$d/bin/nvcc" ] && { CUDA_HOME=$d; break; }; done
  [ -n "$CUDA_HOME" ] || CUDA_HOME=/usr/local/cuda
fi
export CUDA_HOME
export PATH="$PATH:$CUDA_HOME/bin"
# cuBLASLt is dlopen'ed at run time: the toolkit's, else the one of the nvidia-cublas wheel torch uses.
LD_EXTRA="$CUDA_HOME/lib64"
for d in $(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null); do [ -d "$d" ] && LD_EXTRA="$LD_EXTRA:$d"; done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$LD_EXTRA"

OUT=${OUT_ARG:-$ROOT/build-gpu-check}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu-check.log
SUMMARY=$OUT/summary.json
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
T0=$(date +%s)
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export ROOT OUT WORK SMOKE
export NO_COLOR=1 FORCE_COLOR=0

json_str() {  # $1 as a JSON string
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/; }; s=${s//$'\t'/ }
  printf '"%s"' "$(printf '%s' "$s" | tr -d '\000-\037')"
}
STAGE_ROWS=()
FAILED=0
write_summary() {
  local now=$(date +%s) gpu cc drv commit rows="" r
  gpu=$(cat "$WORK/gpu.name" 2>/dev/null || echo "")
  cc=$(cat "$WORK/gpu.cc" 2>/dev/null || echo "")
  drv=$(cat "$WORK/gpu.driver" 2>/dev/null || echo "")
  commit=$(git rev-parse HEAD 2>/dev/null || head -1 .gpu/commit.txt 2>/dev/null || echo unknown)
  for r in "${STAGE_ROWS[@]}"; do rows="${rows:+$rows,
    }$r"; done
  cat > "$SUMMARY" <<EOF
{
  "schema": "diffvit-gpu-check/1",
  "started": "$STARTED",
  "seconds": $((now - T0)),
  "budget_s": $BUDGET,
  "ok": $([ "$FAILED" = 0 ] && echo true || echo false),
  "gpu": $(json_str "$gpu"),
  "compute_capability": $(json_str "$cc"),
  "driver": $(json_str "$drv"),
  "commit": $(json_str "$commit"),
  "tree": $(json_str "$(sed -n 2p .gpu/commit.txt 2>/dev/null || git status --porcelain 2>/dev/null | wc -l | sed 's/^/uncommitted paths: /')"),
  "out_dir": $(json_str "$OUT"),
  "stages": [
    $rows
  ]
}
EOF
}

# run_stage NAME CAP RESERVE FUNCTION: runs FUNCTION under `timeout`, for at most CAP seconds and
# never past the deadline less RESERVE seconds (kept for the stages after it). A stage writes a
# one-line note to $WORK/note.NAME, and may say "skip" in $WORK/skip.NAME to be recorded as skipped.
run_stage() {
  local name=$1 cap=$2 reserve=$3 fn=$4 now left limit rc status note t1 secs
  if ! wanted "$name"; then return 0; fi
  local override="GPU_CHECK_LIMIT_${name^^}"
  cap=${!override:-$cap}
  now=$(date +%s)
  left=$((BUDGET - (now - T0) - reserve))
  limit=$(( cap < left ? cap : left ))
  echo
  echo "=================== $name (limit ${limit} s, $((now - T0)) s into the run) ==================="
  if [ -n "$NO_GPU" ] || { [ -n "$NO_ADDON" ] && [ "$name" != static ]; }; then
    status=skipped; rc=0; note="${NO_GPU:-$NO_ADDON}"; secs=0
  elif [ "$limit" -lt 10 ]; then
    status=skipped; rc=0; note="out of time: ${left} s left before the later stages' reserve"
    secs=0
  else
    rm -f "$WORK/note.$name" "$WORK/skip.$name"
    timeout -k 15 "$limit" bash -c "$fn"
    rc=$?
    t1=$(date +%s); secs=$((t1 - now))
    note=$(cat "$WORK/note.$name" 2>/dev/null || true)
    if [ -f "$WORK/skip.$name" ]; then status=skipped; note=$(cat "$WORK/skip.$name")
    elif [ $rc -eq 0 ]; then status=ok
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; note="stopped at its limit of ${limit} s${note:+; $note}"; FAILED=1
    else status=failed; FAILED=1
    fi
  fi
  echo "------------------- $name: $status (rc $rc, ${secs} s)${note:+: $note}"
  STAGE_ROWS+=("{\"name\": \"$name\", \"status\": \"$status\", \"rc\": $rc, \"seconds\": $secs, \"limit_s\": $limit, \"note\": $(json_str "$note")}")
  write_summary
}
note() { printf '%s' "$*" > "$WORK/note.$STAGE"; }
skip() { printf '%s' "$*" > "$WORK/skip.$STAGE"; }
export -f note skip

# ---------------------------------------------------------------------------------------------
# The stages
# ---------------------------------------------------------------------------------------------
stage_versions() {
  STAGE=versions
  date -u; uname -a; echo "cores: $(nproc)"; free -g 2>/dev/null | head -2
  local gpu_ok=1
  echo "--- nvidia-smi"
  if nvidia-smi; then
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv
  else
    gpu_ok=0
  fi
  echo "--- nvcc ($CUDA_HOME)"; nvcc --version || echo "nvcc: not found"
  echo "--- node $(node --version 2>&1)"
  echo "--- $(cmake --version 2>&1 | head -1); ninja $(ninja --version 2>&1); $(g++ --version 2>&1 | head -1)"
  echo "--- python3: $(python3 -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
  for t in compute-sanitizer nsys ncu cuobjdump; do echo "--- $t: $(command -v $t || echo 'not on PATH')"; done
  echo "--- LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  echo "--- tree: $(head -1 .gpu/commit.txt 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo '?')"
  local tools="$(nvcc --version 2>/dev/null | tail -2 | head -1); node $(node --version)"
  if [ $gpu_ok = 0 ]; then note "nvidia-smi failed: no usable NVIDIA GPU; $tools"; return 1; fi
  note "$(cat "$WORK/gpu.name") (cc $(cat "$WORK/gpu.cc"), driver $(cat "$WORK/gpu.driver")); $tools"
}

# Prints the addon's cudaInfo() when it is a CUDA build usable on this GPU; fails saying why not.
addon_ok() {
  node -e '
    const [path, cc] = process.argv.slice(1);
    let a;
    try { a = require(path); } catch (e) { console.log("does not load: " + e.message.split("\n")[0]); process.exit(1); }
    const i = a.cudaInfo ? a.cudaInfo() : null;
    if (!i) { console.log("not a CUDA build: " + a.info().cudaStatus); process.exit(1); }
    if (!i.usable) { console.log("no usable device: " + i.reason); process.exit(1); }
    if (i.emulated && cc) { console.log("the emulated device (" + i.name + "), not this GPU"); process.exit(1); }
    if (cc && !new RegExp("sm_" + cc + "a?\\b").test(i.architectures)) { console.log("built for " + i.architectures + ", not sm_" + cc); process.exit(1); }
    console.log(JSON.stringify(i));' "$1" "${2:-}"
}
export -f addon_ok

stage_build() {
  STAGE=build
  local cc addon=build/Release/diffvit.node why newer stamp
  summary_of() { node -pe 'const i = JSON.parse(require("fs").readFileSync(0, "utf8")); `${i.name}, ${i.architectures}; GEMM: ${i.gemm}`'; }
  if [ -n "${DIFFVIT_ADDON:-}" ]; then
    echo "DIFFVIT_ADDON=$DIFFVIT_ADDON: using that addon, not building"
    why=$(addon_ok "$DIFFVIT_ADDON") || { echo "$why"; note "DIFFVIT_ADDON=$DIFFVIT_ADDON is not usable: $why"; return 1; }
    note "DIFFVIT_ADDON=$DIFFVIT_ADDON, not built here ($(echo "$why" | summary_of))"
    return 0
  fi
  cc=$(tr -d ' .' < "$WORK/gpu.cc" 2>/dev/null)
  stamp=$(native_stamp)
  # 1. build/ already holds a CUDA build for this GPU, of these sources (its stamp, else its date)
  if [ -f "$addon" ]; then
    if why=$(addon_ok "$PWD/$addon" "$cc"); then
      if [ -f build/native.stamp ]; then
        [ "$(cat build/native.stamp)" = "$stamp" ] || newer="a different source stamp"
      else
        newer=$(find native CMakeLists.txt -newer "$addon" -type f 2>/dev/null | head -3 | tr '\n' ' ')
      fi
      if [ -z "$newer" ]; then
        echo "reusing $addon: $why"
        note "reused build/ ($(echo "$why" | summary_of))"
        return 0
      fi
      echo "$addon is a CUDA build for this GPU, but the sources changed since ($newer): building"
    else
      echo "$addon is not usable here ($why): building"
    fi
  fi
  # 2. the addon that scripts/gpu-check.sh --pack --prebuild compiled on the development machine
  local pre=build-cuda/Release/diffvit.node
  if [ -f .gpu/build-cuda/diffvit.node.xz ]; then
    if [ "$(cat .gpu/build-cuda/native.stamp 2>/dev/null)" != "$stamp" ]; then
      echo ".gpu/build-cuda/diffvit.node.xz was built from other sources than these: not using it"
    elif ! { mkdir -p build-cuda/Release && xz -dc .gpu/build-cuda/diffvit.node.xz > "$pre"; }; then
      echo "could not unpack .gpu/build-cuda/diffvit.node.xz"
    elif why=$(addon_ok "$PWD/$pre" "$cc"); then
      echo "using the prebuilt $pre: $why"
      printf '%s' "$PWD/$pre" > "$WORK/addon"
      note "prebuilt by --pack --prebuild ($(echo "$why" | summary_of))"
      return 0
    else
      echo "$pre is not usable here: $why"
    fi
  fi
  # 3. build. A CMake cache configured for another checkout (carried from elsewhere) cannot be reused.
  if [ -f build/CMakeCache.txt ] && ! grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$PWD\$" build/CMakeCache.txt; then
    echo "build/CMakeCache.txt belongs to another source folder: removing the CMake cache"
    rm -rf build/CMakeCache.txt build/CMakeFiles
  fi
  local t0=$(date +%s)
  cmake-js compile --out build --CDDIFFVIT_CUDA=ON -p "$(nproc)" || { note "cmake-js compile failed"; return 1; }
  echo "--- built in $(( $(date +%s) - t0 )) s"
  why=$(addon_ok "$PWD/$addon" "$cc") || { echo "$why"; note "built, but: $why"; return 1; }
  echo "$why"
  printf '%s\n' "$stamp" > build/native.stamp
  note "built in $(( $(date +%s) - t0 )) s ($(echo "$why" | summary_of))"
}

stage_static() {
  STAGE=static
  local addon=${DIFFVIT_ADDON:-build/Release/diffvit.node}
  echo "addon: $addon"
  node scripts/check-cuda-build.mjs "$addon" > "$WORK/static.txt" 2>&1
  local rc=$?
  cat "$WORK/static.txt"
  local said
  said=$(grep -E '^check-cuda-build|kernel variants|fatal' "$WORK/static.txt" | tr '\n' ' ' | cut -c1-400)
  note "${said:-$(tail -1 "$WORK/static.txt" | cut -c1-300)}"
  return $rc
}

stage_dist() {
  STAGE=dist
  if [ -x node_modules/.bin/tsc ]; then
    tsc -p tsconfig.json || { note "tsc failed"; return 1; }
    note "dist/ built with tsc"
    return 0
  fi
  [ -f dist/lib/index.js ] || { note "dist/ is missing and tsc is not here: run scripts/gpu-check.sh --pack and carry dist"; return 1; }
  local want have
  want=$(cat .gpu/dist.stamp 2>/dev/null || echo none)
  have=$(src_stamp)
  if [ "$want" = "$have" ]; then note "tsc is not here; dist/ came along, built from these sources (stamp $have)"; return 0; fi
  note "tsc is not here and dist/ may be stale (sources $have, dist built from $want): bench and sanitizer cases run the old JS"
  return 1
}
export -f src_stamp native_stamp

stage_tests() {
  STAGE=tests
  local files
  files=$( { ls test/cuda.test.ts test/device_*.test.ts 2>/dev/null; grep -l 'describeEachBackend(' test/*.test.ts; } | sort -u | tr '\n' ' ')
  echo "files: $files"
  DIFFVIT_TEST_BACKENDS=cuda vitest run --project cpu $files \
    --reporter=default --reporter=json --outputFile.json="$OUT/vitest.json"
  local rc=$?
  [ -f "$OUT/vitest.json" ] || { note "vitest wrote no JSON report (rc $rc)"; return 1; }
  local counts
  counts=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const all = r.testResults.flatMap((f) => f.assertionResults);
    const cuda = all.filter((t) => /\[cuda/.test(t.fullName) || t.ancestorTitles.some((a) => a.startsWith("on the CUDA device")));
    const ran = (ts, s) => ts.filter((t) => t.status === s).length;
    const failed = all.filter((t) => t.status === "failed").map((t) => t.fullName).slice(0, 5);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped; on cuda: ${ran(cuda, "passed")} passed, ${ran(cuda, "failed")} failed` + (failed.length ? `; failing: ${failed.join(" | ")}` : "") + (ran(cuda, "passed") + ran(cuda, "failed") === 0 ? "; NO CUDA TEST RAN" : ""));
    process.exit(ran(cuda, "passed") + ran(cuda, "failed") === 0 ? 3 : 0);' "$OUT/vitest.json")
  local crc=$?
  echo "$counts"
  note "$counts"
  [ $rc -eq 0 ] && [ $crc -eq 0 ]
}

SANITIZER=${GPU_CHECK_SANITIZER:-$(command -v compute-sanitizer || { [ -x "$CUDA_HOME/bin/compute-sanitizer" ] && echo "$CUDA_HOME/bin/compute-sanitizer"; } || echo "")}
export SANITIZER
sanitize() {  # sanitize TOOL ARGS...: compute-sanitizer over the sanitizer cases, its log in OUT/sanitizer.log
  local tool=$1; shift
  [ -n "$SANITIZER" ] || { skip "compute-sanitizer not found"; return 0; }
  { echo; echo "================ compute-sanitizer --tool $tool ($(date -u +%H:%M:%S))"; } >> "$OUT/sanitizer.log"
  "$SANITIZER" --tool "$tool" --error-exitcode 99 --print-limit 50 node bench/gpu/sanitizer_cases.mjs "$@" > "$WORK/$tool.txt" 2>&1
  local rc=$?
  head -c 4000000 "$WORK/$tool.txt" >> "$OUT/sanitizer.log"
  grep -E '^(case|sanitizer_cases)|ERROR SUMMARY|RACECHECK SUMMARY|Program hit|Invalid|Race reported|hazard' "$WORK/$tool.txt" | head -60
  local summary
  summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$WORK/$tool.txt" | tail -1)
  local cases
  cases=$(grep -E '^sanitizer_cases: ' "$WORK/$tool.txt" | tail -1 | sed 's/^sanitizer_cases: //')
  note "${summary:-no sanitizer summary (rc $rc)}; ${cases:-the cases did not finish}"
  return $rc
}
stage_memcheck() { STAGE=memcheck; sanitize memcheck; }
stage_racecheck() { STAGE=racecheck; sanitize racecheck --only attention,edm; }
export -f sanitize

stage_bench() {
  STAGE=bench
  # the benchmark keeps to its own budget (writing its JSON after every stage), inside this stage's limit
  node bench/gpu.mjs --out-dir "$OUT" --budget "$(( STAGE_LIMIT > 40 ? STAGE_LIMIT - 20 : STAGE_LIMIT / 2 ))" $SMOKE
  local rc=$?
  local f
  f=$(ls -t "$OUT"/*.json 2>/dev/null | grep -v -e summary.json -e vitest.json | head -1)
  if [ -n "$f" ]; then
    note "$(basename "$f"): $(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const bad = r.rows.filter((x) => x.error).length;
      console.log(`${r.rows.length} rows, ${bad} failed, ${Math.round(r.seconds ?? 0)} s`);' "$f")"
  else
    note "no result file (rc $rc)"
  fi
  return $rc
}

find_nsys() {
  command -v nsys && return 0
  local c
  for c in "$CUDA_HOME"/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda*/nsight-systems*/bin/nsys \
           /opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys; do
    [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}
stage_nsys() {
  STAGE=nsys
  local nsys rep="$WORK/train" imp
  nsys=$(find_nsys) || { skip "nsys not found (not on PATH, in $CUDA_HOME/bin or /opt/nvidia)"; return 0; }
  echo "nsys: $nsys ($("$nsys" --version 2>&1 | head -1))"
  local why
  why=$(addon_ok "${DIFFVIT_ADDON:-$PWD/build/Release/diffvit.node}") || { echo "$why"; note "no usable CUDA addon to profile: $why"; return 1; }
  local trace=${GPU_CHECK_NSYS_TRACE:-cuda,nvtx} steps=${GPU_CHECK_NSYS_STEPS:-5}
  # the profile gets most of the stage; `nsys stats` the rest
  touch "$WORK/nsys.start"
  timeout -k 5 $(( STAGE_LIMIT_NSYS > 50 ? STAGE_LIMIT_NSYS - 30 : STAGE_LIMIT_NSYS / 2 )) \
    "$nsys" profile -t "$trace" -s none --force-overwrite true -o "$rep" node bench/gpu.mjs --profile-train "$steps" $SMOKE
  local rc=$?
  local qd
  qd=$(ls -t "$rep.qdstrm" $(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'nsys-report-*.qdstrm' -newer "$WORK/nsys.start" 2>/dev/null) 2>/dev/null | head -1)
  local why_not=""
  if [ ! -f "$rep.nsys-rep" ] && [ -n "$qd" ]; then  # an nsys whose importer did not run: convert by hand
    imp=$(find -L "$(dirname "$(readlink -f "$nsys")")/../.." /opt/nvidia -name QdstrmImporter -type f 2>/dev/null | head -1)
    if [ -z "$imp" ]; then why_not="; only $qd was written, and no QdstrmImporter was found to convert it"
    elif timeout 60 "$imp" -i "$qd" && [ -f "${qd%.qdstrm}.nsys-rep" ]; then mv "${qd%.qdstrm}.nsys-rep" "$rep.nsys-rep"
    else why_not="; only $qd was written, and $imp could not convert it (a profile cut short?)"
    fi
    [ -f "$rep.nsys-rep" ] || rm -f "$qd"
  fi
  [ -f "$rep.nsys-rep" ] || { note "no report (nsys rc $rc$( [ $rc = 124 ] && echo ': the profile was stopped at its limit'))$why_not"; return 1; }
  report() {  # report NAME OLD_NAME: nsys stats under the report's current name, else its pre-2023 one
    local text
    text=$("$nsys" stats --report "$1" "$rep.nsys-rep" 2>&1)
    if grep -q "could not be found" <<< "$text"; then text=$("$nsys" stats --report "$2" "$rep.nsys-rep" 2>&1); fi
    grep -v -e '^Exporting [0-9]* events' -e '^Generating SQLite' <<< "$text"
  }
  { echo "# nsys profile -t $trace -s none of: node bench/gpu.mjs --profile-train $steps $SMOKE"
    report cuda_gpu_kern_sum gpukernsum
    report nvtx_sum nvtxsum
  } > "$OUT/nsys-stats.txt"
  head -40 "$OUT/nsys-stats.txt"
  local size
  size=$(stat -c %s "$rep.nsys-rep")
  if [ "$size" -lt $((15 * 1024 * 1024)) ]; then cp "$rep.nsys-rep" "$OUT/train.nsys-rep"; fi
  note "nsys-stats.txt written; report $((size / 1024)) KiB$( [ "$size" -ge $((15 * 1024 * 1024)) ] && echo ' (too large to bring back: not copied)')"
  [ $rc -eq 0 ]
}
export -f stage_versions stage_build stage_static stage_dist stage_tests stage_memcheck stage_racecheck stage_bench stage_nsys find_nsys
export BUDGET T0 CUDA_HOME

echo "gpu-check: $ROOT -> $OUT (budget ${BUDGET} s; stages: ${STAGES_WANTED:-all}${SMOKE:+; smoke})"
#          name       cap  reserve  (reserve: seconds kept for the stages after it)
# The GPU, whichever stages run (the summary and the build's architecture check need it).
if q=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader 2>/dev/null) && [ -n "$q" ]; then
  q=$(head -1 <<< "$q")
  cut -d, -f1 <<< "$q" | sed 's/ *$//' > "$WORK/gpu.name"
  cut -d, -f2 <<< "$q" | tr -d ' ' > "$WORK/gpu.cc"
  cut -d, -f3 <<< "$q" | tr -d ' ' > "$WORK/gpu.driver"
fi
NO_GPU="" NO_ADDON=""
run_stage  versions    30   420  stage_versions
# Without a GPU the later stages would build and test nothing worth having: they are skipped
# (unless DIFFVIT_ADDON names an addon to use, e.g. the emulated one for a dry run).
if [ ! -s "$WORK/gpu.name" ] && [ -z "${DIFFVIT_ADDON:-}" ]; then
  NO_GPU="no NVIDIA GPU: nvidia-smi found none (set DIFFVIT_ADDON to run the stages on another addon, e.g. the emulated device)"
  FAILED=1
fi
run_stage  build      300   240  stage_build
# the build stage may have picked the prebuilt addon: every later stage loads it
if [ -s "$WORK/addon" ]; then export DIFFVIT_ADDON=$(cat "$WORK/addon"); echo "gpu-check: DIFFVIT_ADDON=$DIFFVIT_ADDON"; fi
# Without an addon that has a usable CUDA device, the later stages would only fail slowly (the
# static checks, which read the binary, still run).
if [ -z "$NO_GPU" ] && ! why=$(addon_ok "${DIFFVIT_ADDON:-$PWD/build/Release/diffvit.node}" 2>&1); then
  NO_ADDON="no usable CUDA addon (${DIFFVIT_ADDON:-build/Release/diffvit.node}: $why)"
  echo "gpu-check: $NO_ADDON: the later stages are skipped"
  FAILED=1
fi
run_stage  static      45   230  stage_static
run_stage  dist        90   225  stage_dist
run_stage  tests      150   195  stage_tests
run_stage  memcheck    90   165  stage_memcheck
run_stage  racecheck   90   135  stage_racecheck
# the bench's own budget: its stage limit (exported for it)
now=$(date +%s); left=$((BUDGET - (now - T0) - 35)); cap=${GPU_CHECK_LIMIT_BENCH:-300}; export STAGE_LIMIT=$(( cap < left ? cap : left ))
run_stage  bench      300    35  stage_bench
now=$(date +%s); left=$((BUDGET - (now - T0))); cap=${GPU_CHECK_LIMIT_NSYS:-90}; export STAGE_LIMIT_NSYS=$(( cap < left ? cap : left ))
agents_before=$(pgrep -f -- 'nsys --start-agent' | sort)
run_stage  nsys        90     0  stage_nsys
# nsys leaves its agent running in a session of its own (beyond timeout's reach) when a profile is
# cut short: end the agents this stage started, by process id.
for pid in $(comm -13 <(echo "$agents_before") <(pgrep -f -- 'nsys --start-agent' | sort)); do
  echo "gpu-check: ending the nsys agent $pid left by the profile"; kill "$pid" 2>/dev/null
done

write_summary
echo
echo "gpu-check: $( [ "$FAILED" = 0 ] && echo 'all stages ok' || echo 'SOME STAGES FAILED') in $(( $(date +%s) - T0 )) s; summary: $SUMMARY"
sed -n '/"stages"/,$p' "$SUMMARY" | grep '"name"' | sed 's/^ *//'
ls -la "$OUT"
rm -rf "$WORK"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit $FAILED
