/**
 * Reads the log of diffvit's NVTX recorder (native/tools/nvtx_recorder.cpp: a process run with
 * NVTX_INJECTION64_PATH=build/Release/libdiffvit_nvtx_recorder.so DIFFVIT_NVTX_LOG=<file>) into
 * a tree of ranges per thread, for tests that check what a profiler would see.
 *
 *   const log = readNvtxLog(path);
 *   const step = log.roots.find((r) => r.name === 'train_step');
 *   rangesIn(step.children, (r) => r.name === 'gemm');     // every gemm inside the step
 */
import { readFileSync } from 'node:fs';

/** One line of the log (see the recorder's header comment). */
export interface NvtxEvent {
  ev: 'init' | 'domain' | 'push' | 'pop' | 'mark' | 'start' | 'end' | 'thread';
  /** The OS thread the event happened on (for 'thread': the thread named). */
  tid: number;
  /** CLOCK_MONOTONIC, ns. */
  t: number;
  /** '' for the NVTX calls without a domain; diffvit's ranges are in 'diffvit'. */
  domain?: string;
  name?: string;
  message?: string;
  text?: string;
  category?: number;
  level?: number;
  id?: number;
  /** 'thread': the thread that named it. */
  by?: number;
  payload?: number;
  pid?: number;
}

/** A push/pop range: a kernel call ("gemm", message "batch=1 m=64 n=128 k=32") or a phase. */
export interface NvtxRange {
  name: string;
  message: string;
  /** What a profiler shows: the name, then the message after a space if there is one. */
  text: string;
  domain: string;
  tid: number;
  start: number;
  /** null: never popped. */
  end: number | null;
  children: NvtxRange[];
  parent: NvtxRange | null;
}

export interface NvtxLog {
  events: NvtxEvent[];
  /** The outermost ranges of every thread, in the order they were pushed. */
  roots: NvtxRange[];
  /** Every range, in the order they were pushed. */
  ranges: NvtxRange[];
  /** Thread names given through NVTX (diffvit's pool workers: 'diffvit-w1', ...), by OS thread id. */
  threads: Map<number, string>;
  /** The thread that loaded the recorder (the process's main thread, for Node). */
  mainTid: number | null;
  /** Pops with no open range of their thread and domain. */
  unmatchedPops: NvtxEvent[];
  /** Ranges never popped. */
  open: NvtxRange[];
}

/**
 * Parses the recorder's JSON lines into ranges nested per thread: a range's children are the
 * ranges its thread pushed while it was open (across domains). A pop closes the innermost open
 * range of its thread and domain.
 */
export function readNvtxLog(path: string): NvtxLog {
  const events = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as NvtxEvent);
  const roots: NvtxRange[] = [], ranges: NvtxRange[] = [], unmatchedPops: NvtxEvent[] = [];
  const threads = new Map<number, string>();
  const stacks = new Map<number, NvtxRange[]>();
  let mainTid: number | null = null;
  for (const e of events) {
    if (e.ev === 'init') mainTid = e.tid;
    if (e.ev === 'thread') threads.set(e.tid, e.name ?? '');
    if (e.ev === 'push') {
      const stack = stacks.get(e.tid) ?? [];
      stacks.set(e.tid, stack);
      const parent = stack.length > 0 ? stack[stack.length - 1] : null;
      const range: NvtxRange = {
        name: e.name ?? '', message: e.message ?? '', text: e.text ?? e.name ?? '', domain: e.domain ?? '',
        tid: e.tid, start: e.t, end: null, children: [], parent,
      };
      (parent ? parent.children : roots).push(range);
      ranges.push(range);
      stack.push(range);
    }
    if (e.ev === 'pop') {
      const stack = stacks.get(e.tid) ?? [];
      let i = stack.length - 1;
      while (i >= 0 && stack[i].domain !== (e.domain ?? '')) i--;
      if (i < 0) {
        unmatchedPops.push(e);
        continue;
      }
      stack[i].end = e.t;
      stack.splice(i, 1);
    }
  }
  return { events, roots, ranges, threads, mainTid, unmatchedPops, open: ranges.filter((r) => r.end === null) };
}

/** Every range in `ranges` and below them (depth first, in push order) that `keep` accepts. */
export function rangesIn(ranges: NvtxRange[], keep: (r: NvtxRange) => boolean = () => true): NvtxRange[] {
  const out: NvtxRange[] = [];
  const visit = (r: NvtxRange) => {
    if (keep(r)) out.push(r);
    r.children.forEach(visit);
  };
  ranges.forEach(visit);
  return out;
}

/** The message's "key=value" sizes: { m: 64, n: 128, k: 32 }, { shape: [2, 3, 4] }. */
export function sizesOf(range: NvtxRange): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  for (const m of range.message.matchAll(/(\w+)=(\[[^\]]*\]|-?\d+)/g)) {
    out[m[1]] = m[2].startsWith('[') ? m[2].slice(1, -1).split(',').filter((v) => /^-?\d+$/.test(v)).map(Number) : Number(m[2]);
  }
  return out;
}
