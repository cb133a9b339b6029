/** Shared by the benchmarks: timing with warm-up and the row format every bench returns. */
import { type Bf16GemmPath, bf16Paths } from '../lib/backend/cpu/runtime.js';

/** The bf16 GEMM kernels a benchmark times at the active CPU level: the native ones (AMX, vdpbf16ps), else the emulated one. */
export function timedBf16Paths(): Bf16GemmPath[] {
  const native16 = bf16Paths().filter((p) => p !== 'emulated');
  return native16.length ? native16 : ['emulated'];
}

export interface BenchRow {
  /** The benchmark family, e.g. "gemm" or "attention". */
  bench: string;
  /** What was measured, e.g. "1024x1024x1024" or "B=32 H=4 N=257 D=64 fwd". */
  case: string;
  /** The measured quantity, e.g. "GFLOP/s" or "ms". */
  unit: string;
  value: number;
  /** Same quantity for a named baseline measured in the same run (absent if unavailable). */
  baseline?: { name: string; value: number } | { name: string; missing: string };
  /** value relative to baseline, >1 means diffvit is better. */
  ratio?: number;
}

export interface TimingOptions {
  warmup?: number;
  minSeconds?: number;
  minRuns?: number;
}

/** Median seconds per call of fn after `warmup` calls, repeating until `minSeconds` have passed. */
export function timeIt(fn: () => void, options: TimingOptions = {}): number {
  return timeRuns(fn, options).median;
}

/** As timeIt, with the fastest call too (what a best-of peak is compared against). */
export function timeRuns(fn: () => void, options: TimingOptions = {}): { median: number; best: number } {
  const warmup = options.warmup ?? 2, minSeconds = options.minSeconds ?? 0.5, minRuns = options.minRuns ?? 5;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  const start = process.hrtime.bigint();
  while (times.length < minRuns || Number(process.hrtime.bigint() - start) / 1e9 < minSeconds) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], best: times[0] };
}

/** Median seconds per call of a and of b, timed in alternation after `warmup` calls of each. */
export function timePair(a: () => void, b: () => void, rounds = 15, warmup = 2): [number, number] {
  for (let i = 0; i < warmup; i++) {
    a();
    b();
  }
  const ta: number[] = [], tb: number[] = [];
  const time = (fn: () => void, into: number[]) => {
    const t0 = process.hrtime.bigint();
    fn();
    into.push(Number(process.hrtime.bigint() - t0) / 1e9);
  };
  for (let r = 0; r < rounds; r++) {
    time(a, ta);
    time(b, tb);
  }
  const median = (t: number[]) => t.sort((x, y) => x - y)[Math.floor(t.length / 2)];
  return [median(ta), median(tb)];
}
