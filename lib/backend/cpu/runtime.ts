/** The CPU backend's own controls and facts, beyond the Backend interface: threads, kernel level, GEMM peaks, mapped files. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { addonPath, native, type Bf16GemmPath, type CpuLevel, type NativeInfo, type ProfilerInfo } from './addon.js';
import type { MatmulPrecision } from '../kernels/gemm.js';

export type { Bf16GemmPath, CpuLevel, NativeInfo, ProfilerInfo } from './addon.js';

/** CPU features, kernel levels, threads, CUDA build status and build flags of the addon. */
export function nativeInfo(): NativeInfo {
  return native.info();
}

export function setThreads(n: number): void {
  native.setThreads(n);
}

/** Forces the CPU kernel level (tests use it to cover every level). */
export function setCpuLevel(level: CpuLevel): void {
  native.setCpuLevel(level);
}

/** The kernel bf16 GEMMs run on at the active CPU level. */
export function bf16GemmPath(): { path: Bf16GemmPath; description: string } {
  return native.bf16GemmPath();
}

/**
 * Makes bf16 GEMMs run on the first of amx, avx512bf16, emulated from `first` on that the CPU
 * allows at the active level (process-wide; 'amx', the fastest there is, until set): tests and
 * benchmarks use it to run each bf16 kernel on one machine.
 */
export function setBf16PathLimit(first: Bf16GemmPath): void {
  native.setBf16PathLimit(first);
}

/**
 * The bf16 GEMM kernels of the active CPU level, fastest first: AMX and vdpbf16ps where the CPU
 * (and for AMX the OS) has them, then the emulated one (found by setting each limit in turn; the
 * limit is left at 'amx').
 */
export function bf16Paths(): Bf16GemmPath[] {
  const paths = (['amx', 'avx512bf16', 'emulated'] as const).filter((path) => {
    native.setBf16PathLimit(path);
    return native.bf16GemmPath().path === path;
  });
  native.setBf16PathLimit('amx');
  return paths;
}

/** Measured GFLOP/s of independent multiply-add chains (see AddonRuntime.fmaPeak). */
export function fmaPeak(kind: MatmulPrecision, allThreads: boolean): number {
  return native.fmaPeak(kind, allThreads);
}

/** A read-only, copy-on-write memory map of the file (see AddonRuntime.mapFile). */
export function mapFile(path: string): ArrayBuffer {
  return native.mapFile(path);
}

/** Every kernel the addon exports with its argument names (native/addon/kernels.def). */
export function addonKernelTable(): Record<string, string[]> {
  return native.kernelTable();
}

/**
 * Opens an NVTX range on this thread (see AddonRuntime.profilerRangePush); close it with
 * nvtxRangePop. A no-op unless nvtxStatus().attached: callers that build names may test that once.
 */
export function nvtxRangePush(name: string): void {
  native.profilerRangePush(name);
}

/** Closes this thread's innermost range opened by nvtxRangePush. */
export function nvtxRangePop(): void {
  native.profilerRangePop();
}

export interface NvtxStatus extends ProfilerInfo {
  /**
   * diffvit's own NVTX tool, built next to the addon when NVTX is compiled in: run a process with
   * NVTX_INJECTION64_PATH=<this> DIFFVIT_NVTX_LOG=<file> (%p in it: the process id) and every range
   * and thread name goes to <file> as a JSON line. Null when absent.
   */
  recorder: string | null;
}

/** Whether NVTX is compiled in, whether a profiler is attached, and where the recorder tool is. */
export function nvtxStatus(): NvtxStatus {
  const recorder = join(dirname(addonPath), 'libdiffvit_nvtx_recorder.so');
  return { ...native.profilerInfo(), recorder: existsSync(recorder) ? recorder : null };
}
