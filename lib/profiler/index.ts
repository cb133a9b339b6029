/**
 * diffvit's profiler, in two halves:
 *
 * - Ranges (`range(name, fn)`): named phases — the library's own are `train_step` › `forward`,
 *   `backward`, `metrics`, `optimizer`, `ema` and `sample` › `step <i>` — pushed as NVTX ranges
 *   through the addon, so `nsys profile node ...` shows them over the native kernels, and recorded
 *   by the built-in profiler when it runs.
 * - The built-in profiler (`profile(fn)`, or `new Profiler()` with start/stop) for machines without
 *   nsys: every runKernel call timed with its FLOPs and bytes, a table like torch.profiler's
 *   key_averages().table(), and a Chrome trace (chrome://tracing, Perfetto) with the same ranges.
 *
 * ```js
 * const { result, report } = dv.profile(() => trainer.trainStep());
 * console.log(report.table());
 * report.writeChromeTrace('step.trace.json');
 * ```
 *
 * Off (the default), the only cost in runKernel is one boolean check; ranges cost two no-op calls
 * (or two NVTX calls with an NVTX build).
 */
import { nvtxStatus } from './nvtx.js';
import { Recorder, activeRecorder } from './recorder.js';
import { ProfileReport } from './report.js';

export { range } from './range.js';
export { nvtxStatus, type NvtxStatus } from './nvtx.js';
export { ProfileReport, type ChromeTrace, type ChromeTraceEvent, type GroupBy, type KernelStats, type RangeStats } from './report.js';
export type { ProfileEvent } from './recorder.js';

export interface ProfileOptions {
  /** Keep each kernel call's dims (trace args, groupBy 'shape'); default true. Off: a little less overhead per call. */
  recordShapes?: boolean;
}

/**
 * A recording you start and stop yourself (profile(fn) wraps one around a function). One records
 * at a time, process-wide; ranges opened before start() are not in the report.
 */
export class Profiler {
  private readonly recorder: Recorder;
  private started = false;
  private report?: ProfileReport;

  constructor(options: ProfileOptions = {}) {
    this.recorder = new Recorder(options.recordShapes ?? true);
  }

  /** Whether this profiler is recording now. */
  get recording(): boolean {
    return this.recorder.recording;
  }

  /** Starts recording; throws if a profiler is already recording. A profiler records once. */
  start(): this {
    if (this.started) throw new Error('diffvit.Profiler: this profiler has already recorded (make a new one)');
    this.recorder.start();
    this.started = true;
    return this;
  }

  /** Stops recording (ranges still open are left out) and returns the report; later calls return the same one. */
  stop(): ProfileReport {
    if (!this.report) {
      if (!this.started) throw new Error('diffvit.Profiler: stop() before start()');
      this.recorder.stop();
      this.report = new ProfileReport(this.recorder.events, this.recorder.startTime, this.recorder.stopTime);
    }
    return this.report;
  }
}

export interface ProfileResult<T> {
  result: T;
  report: ProfileReport;
}

/**
 * Runs fn with the built-in profiler recording and returns its result with the report. fn may be
 * async: then the result is a Promise and the recording lasts until fn's Promise settles. If fn
 * throws (or rejects), the recording stops and the error propagates.
 */
export function profile<T>(fn: () => Promise<T>, options?: ProfileOptions): Promise<ProfileResult<T>>;
export function profile<T>(fn: () => T, options?: ProfileOptions): ProfileResult<T>;
export function profile<T>(fn: () => T | Promise<T>, options: ProfileOptions = {}): ProfileResult<T> | Promise<ProfileResult<T>> {
  const profiler = new Profiler(options).start();
  let result: T | Promise<T>;
  try {
    result = fn();
  } catch (e) {
    profiler.stop();
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (value) => ({ result: value, report: profiler.stop() }),
      (e: unknown) => {
        profiler.stop();
        throw e;
      },
    );
  }
  return { result, report: profiler.stop() };
}

/** Whether the built-in profiler is recording, and what NVTX can do in this build. */
export function status(): { recording: boolean } & ReturnType<typeof nvtxStatus> {
  return { recording: activeRecorder() !== null, ...nvtxStatus() };
}
