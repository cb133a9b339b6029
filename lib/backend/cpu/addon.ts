/**
 * Loads the native addon once: the CPU backend's kernel table (native/addon/kernels.def, each
 * kernel called with one object of named arguments) and its runtime functions.
 * DIFFVIT_ADDON=/path/to/diffvit.node loads another build (e.g. a debug or sanitizer build).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { packageRoot } from '../../package_root.js';
import type { NativeBuffer, NativeDType } from '../kernels/core.js';
import type { MatmulPrecision } from '../kernels/gemm.js';
import type { KernelTable } from '../kernel_names.js';
import type { MemoryStats } from '../backend.js';

export type CpuLevel = 'avx512' | 'avx2' | 'scalar';
/** The kernel of bf16 GEMMs: AMX tiles, vdpbf16ps, or operands rounded to bf16 for the fp32 kernel. */
export type Bf16GemmPath = 'amx' | 'avx512bf16' | 'emulated';

export interface NativeInfo {
  cpuFeatures: Record<string, boolean>;
  cpuLevel: CpuLevel;
  cpuBestLevel: CpuLevel;
  cpuLevelNote: string;
  threads: number;
  /** The addon has the CUDA backend compiled in (real or emulated). */
  cudaBuilt: boolean;
  /** A CUDA device is usable in this process. */
  cudaAvailable: boolean;
  /** The device and the architectures built, or why no CUDA device is usable. */
  cudaStatus: string;
  buildFlags: string;
}

/** NVTX in this build of the addon (native/core/trace.h). */
export interface ProfilerInfo {
  /** NVTX3 ranges are compiled in (CMake found nvtx3/nvToolsExt.h; DIFFVIT_NVTX=AUTO|ON|OFF). */
  nvtx: boolean;
  /**
   * A profiler takes the ranges: an NVTX tool was loaded through NVTX_INJECTION64_PATH (Nsight
   * Systems, or build/Release/libdiffvit_nvtx_recorder.so) when the addon loaded. Fixed for the
   * process; when false, every range is a no-op.
   */
  attached: boolean;
}

/** The addon's functions that are not kernels (native/addon/bind_runtime.cpp, bind_peak.cpp, bind_file.cpp, bind_trace.cpp). */
export interface AddonRuntime {
  NativeBuffer: new (device: 'cpu' | 'cuda', dtype: NativeDType, numel: number) => NativeBuffer;
  info(): NativeInfo;
  memoryStats(): MemoryStats;
  /** Returns the caching allocator's free blocks to the system. */
  emptyCache(): void;
  setThreads(threads: number): void;
  setCpuLevel(level: CpuLevel): void;
  /** Every kernel of kernels.def with its argument names, in order. */
  kernelTable(): Record<string, string[]>;
  /** The kernel bf16 GEMMs run on at the active CPU level. */
  bf16GemmPath(): { path: Bf16GemmPath; description: string };
  /** bf16 GEMMs run on the first path from `first` on that this CPU allows (process-wide; tests and benchmarks). */
  setBf16PathLimit(first: Bf16GemmPath): void;
  /**
   * Measured GFLOP/s of independent multiply-add chains at the active CPU level: fp32 FMAs
   * ('float32') or vdpbf16ps ('bf16'; AVX512_BF16 at the avx512 level only), on the calling
   * thread or on every pool thread.
   */
  fmaPeak(kind: MatmulPrecision, allThreads: boolean): number;
  /**
   * The whole file at `path`, memory-mapped, as an ArrayBuffer whose pages are read when first
   * touched; the mapping is released when the ArrayBuffer is garbage-collected. The file is opened
   * read-only and mapped copy-on-write, so writes through a view change this process's copy, never
   * the file. An empty file gives an empty ArrayBuffer. Errors name the file and the reason
   * ("diffvit.mapFile: <path>: cannot open (No such file or directory)").
   */
  mapFile(path: string): ArrayBuffer;
  /**
   * Opens an NVTX range named `name` on the calling thread, in the "diffvit" domain where every
   * kernel call opens its own range (named after the kernel, its sizes as the message: "gemm m=64
   * n=128 k=32"). A no-op unless profilerInfo().attached; a name that is not a string throws.
   */
  profilerRangePush(name: string): void;
  /** Closes the calling thread's innermost range opened by profilerRangePush. */
  profilerRangePop(): void;
  profilerInfo(): ProfilerInfo;
}

/** The CUDA device as the addon sees it (native/addon/bind_cuda.cpp). */
export interface CudaDeviceInfo {
  usable: boolean;
  /** Why no device is usable ('' when one is). */
  reason: string;
  name: string;
  computeCapability: string;
  totalMemory: number;
  multiprocessors: number;
  runtimeVersion: number;
  driverVersion: number;
  /** The device is the project's CPU emulator of CUDA (the test build, build-emu/diffvit_cuda_emu.node). */
  emulated: boolean;
  /** The device code this build carries, e.g. 'sm_80, sm_90a (+ compute_80 PTX)'. */
  architectures: string;
  /** How GEMMs run: 'cuBLASLt 13.x.y' or the own tensor-core kernel and why. */
  gemm: string;
}

/** The addon's CUDA functions, present when it was built with the CUDA backend (info().cudaBuilt). */
export interface AddonCuda {
  cudaInfo(): CudaDeviceInfo;
  cudaSynchronize(): void;
  cudaMemoryStats(): MemoryStats & { deviceFreeBytes: number; deviceTotalBytes: number };
  cudaEmptyCache(): void;
  cudaGraphBegin(): number;
  cudaGraphEnd(): number;
  cudaGraphReplay(graph: number): void;
  cudaGraphDestroy(graph: number): void;
  cudaGraphCount(): number;
  /** Milliseconds of device time the work queued by fn took (CUDA events). */
  cudaTime(fn: () => void): number;
  /** The emulated build only: the device memory cudaMalloc may hand out, in bytes. */
  cudaEmulatorSetMemoryLimit?(bytes: number): void;
}

export type NativeAddon = KernelTable & AddonRuntime & Partial<AddonCuda>;

/** The addon file that was loaded. */
export let addonPath = '';

/**
 * The addon files tried in order: DIFFVIT_ADDON alone when set; else the source build (build/, made
 * by the install script where no prebuilt addon loads, or in a source checkout), then the prebuilt
 * addon the package ships for this platform (prebuilds/<platform>-<arch>/, scripts/prebuild.mjs).
 */
function addonCandidates(): string[] {
  if (process.env.DIFFVIT_ADDON) return [process.env.DIFFVIT_ADDON];
  const root = packageRoot();
  return [
    join(root, 'build', 'Release', 'diffvit.node'),
    join(root, 'build', 'diffvit.node'),
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'diffvit.napi.node'),
  ];
}

function loadAddon(): NativeAddon {
  const require = createRequire(import.meta.url);
  const candidates = addonCandidates();
  // Every path with why it was passed over: a file that exists but does not load (another
  // platform's binary, too new a glibc) falls through to the next.
  const why: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      why.push('not found');
      continue;
    }
    try {
      const addon = require(path) as NativeAddon;
      addonPath = path;
      return addon;
    } catch (e) {
      why.push((e as Error).message.split('\n')[0]);
    }
  }
  if (process.env.DIFFVIT_ADDON) {
    throw new Error(`diffvit: DIFFVIT_ADDON=${candidates[0]} cannot be loaded (${why[0]}); unset it to load the addon npm install made`);
  }
  const tried = candidates.map((path, i) => `${path} (${why[i]})`);
  throw new Error(
    `diffvit: no native addon loads (tried ${tried.join(', ')}). ` +
      'Run `npm rebuild diffvit` (it uses the prebuilt addon for this platform, else builds from source with a C++ compiler and CMake; ' +
      'DIFFVIT_BUILD_FROM_SOURCE=1 forces the source build), or `npm run build:native` in a source checkout.',
  );
}

export const native: NativeAddon = loadAddon();
