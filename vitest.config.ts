import { readdirSync, readFileSync } from 'node:fs';

import { defineConfig } from 'vitest/config';

// The emulated CUDA run: test files with per-backend suites (describeEachBackend) and the CUDA and
// device tests, in a process that loads build-emu/diffvit_cuda_emu.node — the addon whose 'cuda'
// device runs the CUDA kernels on the project's CPU emulator (native/cuda/emu) — running only the
// 'cuda' suites. test/setup/build_emulator.ts builds it first.
const cudaFiles = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .filter((f) => /^(cuda|device_)/.test(f) || readFileSync(`test/${f}`, 'utf8').includes('describeEachBackend('))
  .map((f) => `test/${f}`);

export default defineConfig({
  test: {
    // Native kernels use every core already; files run one at a time so timings and memory stay sane.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Child processes (not worker threads): a native crash takes down one worker, not the runner,
    // and `gc()` is exposed so the FinalizationRegistry and leak tests can force collections.
    pool: 'forks',
    execArgv: ['--expose-gc'],
    projects: [
      // cuda_race and cuda_emulator build their own programs (TSan, the emulator's self-test): emulated run only.
      { extends: true, test: { name: 'cpu', include: ['test/**/*.test.ts'], exclude: ['test/cuda_race.test.ts', 'test/cuda_emulator.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'cuda-emulated',
          include: cudaFiles,
          globalSetup: ['test/setup/build_emulator.ts'],
          env: { DIFFVIT_ADDON: `${process.cwd()}/build-emu/diffvit_cuda_emu.node`, DIFFVIT_TEST_BACKENDS: 'cuda' },
        },
      },
    ],
  },
});
