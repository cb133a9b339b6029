#!/usr/bin/env bash
# Builds the test addon in which the 'cuda' device runs on the CPU emulator of CUDA (native/cuda/emu):
# build-emu/diffvit_cuda_emu.node. Safe to run concurrently (one build at a time holds the lock).
# Load it with DIFFVIT_ADDON=$PWD/build-emu/diffvit_cuda_emu.node.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9>/tmp/diffvit-build-emu.lock
flock 9
if [ ! -f build-emu/CMakeCache.txt ]; then
  cmake -S . -B build-emu -DCMAKE_BUILD_TYPE=Release -DDIFFVIT_CUDA=OFF -DDIFFVIT_CUDA_EMULATOR=ON >/dev/null
fi
if ! cmake --build build-emu --target diffvit_cuda_emu -j "$(nproc)" >build-emu/build.log 2>&1; then
  grep -v '^\[' build-emu/build.log | tail -80
  exit 1
fi
