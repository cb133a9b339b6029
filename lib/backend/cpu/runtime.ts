/** The CPU backend's own controls and facts, beyond the Backend interface: threads, kernel level, GEMM peaks, mapped files. */
import { native, type CpuLevel, type NativeInfo } from './addon.js';
import type { MatmulPrecision } from '../kernels/gemm.js';

export type { CpuLevel, NativeInfo } from './addon.js';

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
export function bf16GemmPath(): { path: 'avx512bf16' | 'emulated'; description: string } {
  return native.bf16GemmPath();
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
