/**
 * What a recording found: per-kernel statistics (report.kernels, report.table()), the ranges with
 * the kernel time inside each (report.ranges), and the whole timeline as a Chrome trace
 * (report.writeChromeTrace(path): open it in chrome://tracing or https://ui.perfetto.dev).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { ProfileEvent } from './recorder.js';

/**
 * How kernel calls are grouped into rows: by kernel name ('kernel', one row per runKernel name),
 * by name and the call's op / activation / precision ('op': binary(mul), linearAct(gelu_tanh,bf16)),
 * or by name and every recorded argument ('shape', the dims of each call: needs recordShapes).
 */
export type GroupBy = 'kernel' | 'op' | 'shape';

export interface KernelStats {
  /** The kernel's name (with the op or the shape, by groupBy). */
  name: string;
  count: number;
  totalMs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  /** Share of the recording's kernel time, in percent. */
  percent: number;
  /** Floating-point operations of all the calls, where the kernel's count is known (GEMMs, attention). */
  flops?: number;
  /** Bytes read and written by all the calls, where known. */
  bytes?: number;
  /** flops / time, in GFLOP/s. */
  gflops?: number;
  /** bytes / time, in GB/s. */
  gbps?: number;
}

export interface RangeStats {
  /** The range and the ranges around it, outermost first: 'train_step/forward'. Trailing step numbers read '*' ('sample/step *'). */
  path: string;
  name: string;
  /** 0 for a range inside no other. */
  depth: number;
  count: number;
  totalMs: number;
  meanMs: number;
  /** Time in kernels inside the range (the rest is host work: op logic, autograd, allocation, reads). */
  kernelMs: number;
  /** Kernel calls inside the range. */
  kernelCalls: number;
}

/** A trace event of the Chrome trace-event format ('X': a complete event; 'M': metadata). Times in µs. */
export interface ChromeTraceEvent {
  name: string;
  cat?: string;
  ph: 'X' | 'M';
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  displayTimeUnit: 'ms' | 'ns';
  otherData: Record<string, string | number>;
}

const MAIN_TID = 1;

/** 'step 12' -> 'step *': one table row for every step of a loop. */
const rowName = (name: string): string => name.replace(/ \d+$/, ' *');

function opKey(e: ProfileEvent): string {
  const a = e.args;
  if (!a) return e.name;
  const parts = [a.op, a.act !== 'none' ? a.act : undefined, a.distribution, a.precision].filter((p) => typeof p === 'string');
  return parts.length ? `${e.name}(${parts.join(',')})` : e.name;
}

function shapeKey(e: ProfileEvent): string {
  if (!e.args) return e.name;
  return `${e.name}(${Object.entries(e.args).map(([k, v]) => `${k}=${v}`).join(' ')})`;
}

const fixed = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '');

export class ProfileReport {
  /** Every kernel call and range, ordered by start time (a range before what it contains). */
  readonly events: readonly ProfileEvent[];
  /** performance.now() when the recording started and stopped. */
  readonly startTime: number;
  readonly stopTime: number;
  private kernelRows?: KernelStats[];
  private rangeRows?: RangeStats[];

  /** `events` in start order, a range before what it contains (as the recorder keeps them); ranges never closed are left out. */
  constructor(events: readonly ProfileEvent[], startTime: number, stopTime: number) {
    this.events = events.filter((e) => !Number.isNaN(e.end));
    this.startTime = startTime;
    this.stopTime = stopTime;
  }

  /** Milliseconds from start to stop. */
  get wallMs(): number {
    return this.stopTime - this.startTime;
  }

  /** Milliseconds spent in kernels (the sum over every call). */
  get kernelMs(): number {
    let ms = 0;
    for (const e of this.events) if (e.cat === 'kernel') ms += e.end - e.start;
    return ms;
  }

  /** Kernel calls recorded. */
  get kernelCalls(): number {
    let n = 0;
    for (const e of this.events) if (e.cat === 'kernel') n++;
    return n;
  }

  /** One row per kernel name, by total time (largest first). */
  get kernels(): KernelStats[] {
    return (this.kernelRows ??= this.summary('kernel'));
  }

  /** Kernel rows grouped as `groupBy` says, by total time (largest first). */
  summary(groupBy: GroupBy = 'kernel'): KernelStats[] {
    const key = groupBy === 'kernel' ? (e: ProfileEvent) => e.name : groupBy === 'op' ? opKey : shapeKey;
    const rows = new Map<string, KernelStats>();
    let total = 0;
    for (const e of this.events) {
      if (e.cat !== 'kernel') continue;
      const ms = e.end - e.start, k = key(e);
      total += ms;
      let r = rows.get(k);
      if (!r) rows.set(k, (r = { name: k, count: 0, totalMs: 0, meanMs: 0, minMs: Infinity, maxMs: 0, percent: 0 }));
      r.count++;
      r.totalMs += ms;
      r.minMs = Math.min(r.minMs, ms);
      r.maxMs = Math.max(r.maxMs, ms);
      if (e.flops !== undefined) r.flops = (r.flops ?? 0) + e.flops;
      if (e.bytes !== undefined) r.bytes = (r.bytes ?? 0) + e.bytes;
    }
    const out = [...rows.values()];
    for (const r of out) {
      r.meanMs = r.totalMs / r.count;
      r.percent = total > 0 ? (100 * r.totalMs) / total : 0;
      if (r.flops !== undefined && r.totalMs > 0) r.gflops = r.flops / (r.totalMs * 1e6);
      if (r.bytes !== undefined && r.totalMs > 0) r.gbps = r.bytes / (r.totalMs * 1e6);
    }
    return out.sort((a, b) => b.totalMs - a.totalMs);
  }

  /** One row per range path (train_step/forward, sample/step *), outer ranges before their contents. */
  get ranges(): RangeStats[] {
    if (this.rangeRows) return this.rangeRows;
    const rows = new Map<string, RangeStats>();
    const stack: { end: number; row: RangeStats }[] = [];
    for (const e of this.events) {
      // Events nest (everything here is synchronous): e lies inside every range on the stack that ends after it.
      while (stack.length && stack[stack.length - 1].end < e.end) stack.pop();
      if (e.cat === 'kernel') {
        for (const s of stack) {
          s.row.kernelMs += e.end - e.start;
          s.row.kernelCalls++;
        }
        continue;
      }
      const name = rowName(e.name);
      const path = stack.length ? `${stack[stack.length - 1].row.path}/${name}` : name;
      let row = rows.get(path);
      if (!row) rows.set(path, (row = { path, name, depth: stack.length, count: 0, totalMs: 0, meanMs: 0, kernelMs: 0, kernelCalls: 0 }));
      row.count++;
      row.totalMs += e.end - e.start;
      stack.push({ end: e.end, row });
    }
    for (const r of rows.values()) r.meanMs = r.totalMs / r.count;
    return (this.rangeRows = [...rows.values()]);
  }

  /**
   * The kernel table (sorted by total time; GFLOP/s where the FLOPs are known) and the range
   * table (the kernel time inside each range beside its total: the difference is host work).
   * `limit` keeps the first rows of the kernel table.
   */
  table(options: { groupBy?: GroupBy; limit?: number } = {}): string {
    const rows = options.groupBy && options.groupBy !== 'kernel' ? this.summary(options.groupBy) : this.kernels;
    const shown = options.limit !== undefined ? rows.slice(0, options.limit) : rows;
    const kernelMs = this.kernelMs, calls = this.kernelCalls;
    const width = Math.max(24, ...shown.map((r) => r.name.length + 2), ...this.ranges.map((r) => 2 * r.depth + r.name.length + 2));
    const lines: string[] = [];
    lines.push(`${calls} kernel calls, ${kernelMs.toFixed(3)} ms in kernels of ${this.wallMs.toFixed(3)} ms recorded ` +
      `(${this.wallMs > 0 ? ((100 * kernelMs) / this.wallMs).toFixed(1) : '0.0'} %; the rest is host work between kernels)`);
    lines.push('');
    lines.push(`${'kernel'.padEnd(width)}${'calls'.padStart(8)}${'total ms'.padStart(11)}${'%'.padStart(7)}${'mean µs'.padStart(11)}` +
      `${'max µs'.padStart(11)}${'GFLOP'.padStart(10)}${'GFLOP/s'.padStart(10)}${'GB/s'.padStart(9)}`);
    for (const r of shown) {
      lines.push(`${r.name.padEnd(width)}${String(r.count).padStart(8)}${fixed(r.totalMs, 3).padStart(11)}${fixed(r.percent, 1).padStart(7)}` +
        `${fixed(r.meanMs * 1000, 1).padStart(11)}${fixed(r.maxMs * 1000, 1).padStart(11)}` +
        `${(r.flops !== undefined ? fixed(r.flops / 1e9, 3) : '').padStart(10)}${(r.gflops !== undefined ? fixed(r.gflops, 1) : '').padStart(10)}` +
        `${(r.gbps !== undefined ? fixed(r.gbps, 1) : '').padStart(9)}`);
    }
    if (shown.length < rows.length) lines.push(`(${rows.length - shown.length} more rows)`);
    const flops = rows.reduce((s, r) => s + (r.flops ?? 0), 0);
    lines.push(`${'total'.padEnd(width)}${String(calls).padStart(8)}${fixed(kernelMs, 3).padStart(11)}${'100.0'.padStart(7)}${''.padStart(22)}` +
      `${(flops ? fixed(flops / 1e9, 3) : '').padStart(10)}${(flops && kernelMs > 0 ? fixed(flops / (kernelMs * 1e6), 1) : '').padStart(10)}`);
    if (this.ranges.length) {
      lines.push('');
      lines.push(`${'range'.padEnd(width)}${'calls'.padStart(8)}${'total ms'.padStart(11)}${'mean ms'.padStart(11)}${'kernel ms'.padStart(11)}${'kernel %'.padStart(10)}`);
      for (const r of this.ranges) {
        lines.push(`${('  '.repeat(r.depth) + r.name).padEnd(width)}${String(r.count).padStart(8)}${fixed(r.totalMs, 3).padStart(11)}` +
          `${fixed(r.meanMs, 3).padStart(11)}${fixed(r.kernelMs, 3).padStart(11)}${(r.totalMs > 0 ? fixed((100 * r.kernelMs) / r.totalMs, 1) : '').padStart(10)}`);
      }
    }
    return lines.join('\n');
  }

  /**
   * The recording in the Chrome trace-event format: one complete ('X') event per kernel call
   * (args: its dims, flops, bytes) and per range, ts and dur in µs from the start of the
   * recording, on one thread — ranges enclose their kernels as NVTX ranges do in nsys.
   */
  toChromeTrace(): ChromeTrace {
    const pid = process.pid;
    const t0 = this.startTime;
    const ns = (t: number) => Math.round((t - t0) * 1e6);
    const traceEvents: ChromeTraceEvent[] = [
      { name: 'process_name', ph: 'M', ts: 0, pid, tid: MAIN_TID, args: { name: 'diffvit' } },
      { name: 'thread_name', ph: 'M', ts: 0, pid, tid: MAIN_TID, args: { name: 'main thread (kernels and ranges)' } },
    ];
    for (const e of this.events) {
      const start = ns(e.start), end = ns(e.end);
      const ev: ChromeTraceEvent = { name: e.name, cat: e.cat, ph: 'X', ts: start / 1000, dur: (end - start) / 1000, pid, tid: MAIN_TID };
      if (e.cat === 'kernel') {
        const args: Record<string, unknown> = { ...e.args };
        if (e.flops !== undefined) args.flops = e.flops;
        if (e.bytes !== undefined) args.bytes = e.bytes;
        ev.args = args;
      }
      traceEvents.push(ev);
    }
    return {
      traceEvents,
      displayTimeUnit: 'ms',
      otherData: { producer: 'diffvit profiler', kernelCalls: this.kernelCalls, recordedMs: this.wallMs, kernelMs: this.kernelMs },
    };
  }

  /** Writes toChromeTrace() as JSON to `path` (folders made as needed). */
  writeChromeTrace(path: string): void {
    mkdirSync(dirname(path) || '.', { recursive: true });
    writeFileSync(path, JSON.stringify(this.toChromeTrace()));
  }
}
