/**
 * The built-in profiler's recording state, read by runKernel (lib/backend/dispatch.ts) on every
 * kernel call. With no recorder active that read is the whole cost: `profilerState.on` is false and
 * runKernel calls the kernel directly (no closure, no allocation, no clock read). With one active,
 * runKernel hands the call to recordKernel, which times it and keeps one event.
 *
 * Timing is host time (performance.now()) around the kernel call. CPU kernels run to completion on
 * the calling thread's pool before they return, so that is the kernel's own time. A CUDA backend's
 * kernels return once queued: it will need device-side timing (cudaEventRecord before and after
 * each kernel on the stream, read when the recording stops) — host time there measures the launch.
 */
import type { KernelArgs, KernelName, KernelResult } from '../backend/kernel_names.js';
import { kernelCost, kernelShape } from './kernel_costs.js';

/** One kernel call or one range, times in performance.now() milliseconds; events are kept in start order. */
export interface ProfileEvent {
  name: string;
  cat: 'kernel' | 'range';
  start: number;
  end: number;
  /** Kernels: the call's non-buffer arguments (dims, op, precision, ...); undefined with recordShapes off. */
  args?: Record<string, string | number | boolean>;
  /** Kernels: floating-point operations, where the kernel's count is known. */
  flops?: number;
  /** Kernels: bytes read and written (float32 elements x 4), where known. */
  bytes?: number;
}

/** Read by runKernel on every call: the one check the profiler costs when it is off. */
export const profilerState = { on: false };

let active: Recorder | null = null;

/** The events of one recording, from start() to stop(). */
export class Recorder {
  readonly events: ProfileEvent[] = [];
  startTime = 0;
  stopTime = Number.NaN;
  constructor(readonly recordShapes = true) {}

  get recording(): boolean {
    return active === this;
  }

  start(): void {
    if (active) throw new Error('diffvit.profile: a profiler is already recording (stop it first; recordings do not nest)');
    this.startTime = performance.now();
    active = this;
    profilerState.on = true;
  }

  stop(): void {
    if (active !== this) return;
    active = null;
    profilerState.on = false;
    this.stopTime = performance.now();
  }
}

/** The recorder now recording, or null. */
export function activeRecorder(): Recorder | null {
  return active;
}

/** Runs one kernel call, timed, and records it (runKernel calls this only while recording). */
export function recordKernel<K extends KernelName>(name: K, args: KernelArgs<K>, kernel: (a: KernelArgs<K>) => KernelResult<K>): KernelResult<K> {
  const rec = active;
  const start = performance.now();
  try {
    return kernel(args);
  } finally {
    const end = performance.now();
    if (rec) {
      const cost = kernelCost(name, args);
      rec.events.push({ name, cat: 'kernel', start, end, args: rec.recordShapes ? kernelShape(name, args) : undefined, flops: cost.flops, bytes: cost.bytes });
    }
  }
}

/**
 * Opens a range event (lib/profiler/range.ts) on the active recorder, in start order before the
 * kernels it will contain (its end is NaN until closeRange); null when nothing records.
 */
export function openRange(name: string): ProfileEvent | null {
  if (!active) return null;
  const event: ProfileEvent = { name, cat: 'range', start: performance.now(), end: Number.NaN };
  active.events.push(event);
  return event;
}

/** Closes a range event of openRange. A range still open when its recording stopped is left out of the report. */
export function closeRange(event: ProfileEvent): void {
  event.end = performance.now();
}
