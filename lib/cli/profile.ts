/**
 * `--profile [FILE]` of `diffvit train` and `diffvit sample`: the built-in profiler (lib/profiler)
 * around the command's work, its table printed at the end and its Chrome trace written to FILE.
 */
import { existsSync, statSync } from 'node:fs';

/**
 * util.parseArgs has no options with an optional value: a bare `--name` (the last argument, or
 * followed by another option) becomes `--name=`, which it reads as the empty string.
 */
export function optionalValue(argv: string[], name: string): string[] {
  const flag = `--${name}`;
  const end = argv.indexOf('--');
  return argv.map((a, i) => (a === flag && (end === -1 || i < end) && (i + 1 >= argv.length || argv[i + 1].startsWith('-')) ? `${flag}=` : a));
}

/** A usage mistake found after parsing: main.ts reports it like a parseArgs error (exit code 2). */
export function usageError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' });
}

/** The trace file of `--profile [FILE]`: FILE, or `fallback` for a bare --profile; undefined without the option. */
export function profileOption(value: string | undefined, fallback: () => string): string | undefined {
  if (value === undefined) return undefined;
  const path = value === '' ? fallback() : value;
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw usageError(`option '--profile [FILE]' expected a file for the Chrome trace, received the directory '${path}'`);
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
