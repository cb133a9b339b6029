/**
 * dv.cuda: the CUDA device and CUDA graphs.
 *
 *   dv.cuda.isAvailable()            a CUDA device is usable in this process
 *   dv.cuda.info()                   the device, the architectures built, how GEMMs run, or why not
 *   const g = dv.cuda.graph(() => model.forward(x))
 *   g.replay(); g.result             one launch replays every kernel fn queued while it was captured
 *
 * A graph records the kernels, not the JS: values that fn passed to kernels as numbers (a sigma, a
 * seed) are frozen into it, and the tensors it reads and writes are always the same memory. Feed a
 * replay new inputs by writing into the captured input tensors in place (x.copy_(next)); read its
 * outputs from the tensors fn returned. fn must not read tensors on the host while it is captured.
 */
import { cudaAddon, cudaDeviceInfo, cudaStatus } from './backend/cuda/backend.js';
import type { CudaDeviceInfo } from './backend/cpu/addon.js';

export type { CudaDeviceInfo } from './backend/cpu/addon.js';

/** Whether a CUDA device is usable here (false without a GPU, a driver, or a CUDA build). */
export function isAvailable(): boolean {
  return cudaStatus().available;
}

/** The CUDA device and this build's CUDA support; `reason` says why no device is usable. */
export function info(): CudaDeviceInfo {
  return cudaDeviceInfo();
}

function requireDevice(op: string): void {
  if (!isAvailable()) throw new Error(`diffvit.cuda.${op}: no CUDA device is usable: ${cudaStatus().status}`);
}

/** Milliseconds of device time the work fn queues takes, measured with CUDA events. */
export function time(fn: () => void): number {
  requireDevice('time');
  return cudaAddon().cudaTime(fn);
}

export interface GraphOptions {
  /**
   * Eager runs of fn before the capture (default 1). The warm-up lets the caching allocator hold
   * every block size fn needs and lets lazily created state (cuBLASLt plans) exist before capture.
   */
  warmup?: number;
}

/** A captured CUDA graph: replay() re-runs every kernel fn queued, in one launch. */
export class CudaGraph<T> {
  #id: number;
  /** What fn returned during the capture: its tensors are rewritten by every replay. */
  readonly result: T;
  constructor(id: number, result: T) {
    this.#id = id;
    this.result = result;
  }
  get disposed(): boolean {
    return this.#id === 0;
  }
  /** Queues the whole graph on the device's stream (returns at once; reading a tensor waits). */
  replay(): void {
    if (this.#id === 0) throw new Error('diffvit.cuda.graph.replay: the graph was disposed');
    cudaAddon().cudaGraphReplay(this.#id);
  }
  /** Frees the graph; its private memory goes back to the cache (the result tensors stay valid). */
  dispose(): void {
    if (this.#id === 0) return;
    cudaAddon().cudaGraphDestroy(this.#id);
    this.#id = 0;
  }
}

/**
 * Captures the kernels fn queues on the CUDA device into a graph (see the module comment) and runs
 * it once, so `result` holds what fn computed.
 */
export function graph<T>(fn: () => T, options: GraphOptions = {}): CudaGraph<T> {
  requireDevice('graph');
  const warmup = options.warmup ?? 1;
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new Error(`diffvit.cuda.graph: option 'warmup' expected an integer >= 0, received ${String(options.warmup)}`);
  }
  const addon = cudaAddon();
  for (let i = 0; i < warmup; i++) disposeResult(fn());
  addon.cudaSynchronize();
  addon.cudaGraphBegin();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    try {
      addon.cudaGraphDestroy(addon.cudaGraphEnd());
    } catch {
      // the capture was already invalidated by what failed; its error is the one to report
    }
    throw e;
  }
  // Capturing records the kernels without running them: run the graph once so that `result` holds
  // what fn computed, as after an eager call.
  const g = new CudaGraph(addon.cudaGraphEnd(), result);
  g.replay();
  return g;
}

/** Disposes the tensors of a warm-up run's result (a tensor, an array or an object of them). */
function disposeResult(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const v = value as { dispose?: unknown };
  if (typeof v.dispose === 'function' && 'shape' in (value as object)) {
    (v.dispose as () => void).call(value);
    return;
  }
  for (const item of Array.isArray(value) ? value : Object.values(value)) disposeResult(item);
}
