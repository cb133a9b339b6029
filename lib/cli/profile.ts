/**
 * `--profile [FILE]` of `diffvit train` and `diffvit sample`: the built-in profiler (lib/profiler)
 * around the command's work, its table printed at the end and its Chrome trace written to FILE.
 */
import { existsSync, statSync } from 'node:fs';

import { usage } from './options.js';

/** The trace file of `--profile [FILE]`: FILE, or `fallback` for a bare --profile; undefined without the option. */
export function profileOption(command: string, value: string | undefined, fallback: () => string): string | undefined {
  if (value === undefined) return undefined;
  const path = value === '' ? fallback() : value;
  if (existsSync(path) && statSync(path).isDirectory()) {
    usage(command, `--profile [FILE] expected a file for the Chrome trace, received the folder '${path}'`);
  }
  return path;
}

/**
 * The training steps `--profile` records, as [first, end) step indices: after two warm-up steps
 * (the allocator's cache, first-touch page faults, JIT), the next ten; a run of one or two steps
 * is recorded whole.
 */
export function profileWindow(startStep: number, endStep: number): [number, number] {
  const n = Math.max(0, endStep - startStep);
  const warmup = n > 2 ? 2 : 0;
  return [startStep + warmup, startStep + Math.min(n, warmup + 10)];
}
