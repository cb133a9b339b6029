/** What the native addon was built with and what it is doing: `diffvit info`, memory statistics. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { resolveDevice, type Device } from './backend/backend.js';
import './backend/index.js';
import { bf16GemmPath, type Bf16GemmPath, type CpuLevel, type NativeInfo, nativeInfo, setCpuLevel as setLevel, setThreads as setPoolThreads } from './backend/cpu/runtime.js';
import { packageRoot } from './package_root.js';
import { getMatmulPrecision, type MatmulPrecision } from './tensor/autocast.js';
import { liveTensorCount } from './tensor/tensor.js';

export type { MatmulPrecision } from './tensor/autocast.js';

export interface RuntimeInfo extends NativeInfo {
  version: string;
  node: string;
  /** The default matmul precision (outside autocast scopes). */
  matmulPrecision: MatmulPrecision;
  /** The kernel bf16 GEMMs run on at the active CPU level. */
  bf16Path: { path: Bf16GemmPath; description: string };
}

export function runtimeInfo(): RuntimeInfo {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, node: process.version, ...nativeInfo(), matmulPrecision: getMatmulPrecision(), bf16Path: bf16GemmPath() };
}

/** Live tensors (JS objects), and the device's live buffers/bytes, peak and bytes cached for reuse. */
export function memory(device: Device = 'cpu'): { tensors: number; buffers: number; bytes: number; peakBytes: number; cachedBytes: number } {
  const s = resolveDevice(device, 'memory').backend.memoryStats();
  return { tensors: liveTensorCount(), buffers: s.liveBuffers, bytes: s.liveBytes, peakBytes: s.peakBytes, cachedBytes: s.cachedBytes };
}

/** Frees the device allocator's cached blocks (they are otherwise kept for reuse). */
export function emptyCache(device: Device = 'cpu'): void {
  resolveDevice(device, 'emptyCache').backend.emptyCache();
}

/** Waits for every kernel queued on the device (a no-op on the CPU, whose kernels finish before they return). */
export function synchronize(device: Device = 'cpu'): void {
  resolveDevice(device, 'synchronize').backend.synchronize();
}

export function setThreads(n: number): void {
  setPoolThreads(n);
}

/** Forces the CPU kernel level (tests use it to cover every level). */
export function setCpuLevel(level: CpuLevel): void {
  setLevel(level);
}

export { autocast, matmulPrecision, setMatmulPrecision, getMatmulPrecision } from './tensor/autocast.js';
