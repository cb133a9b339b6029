import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native kernels use every core already; files run one at a time so timings and memory stay sane.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Child processes (not worker threads): a native crash takes down one worker, not the runner,
    // and `gc()` is exposed so the FinalizationRegistry and leak tests can force collections.
    pool: 'forks',
    execArgv: ['--expose-gc'],
  },
});
