/** What the native addon was built with and what it is doing: `diffvit info`, memory statistics. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { NativeInfo } from './backend/kernels/core.js';
import { native, packageRoot } from './backend/native.js';
import { liveTensorCount } from './tensor/tensor.js';

export interface RuntimeInfo extends NativeInfo {
  version: string;
  node: string;
}

export function runtimeInfo(): RuntimeInfo {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, node: process.version, ...native.info() };
}

/** Live tensors (JS objects), native buffers/bytes, and bytes cached for reuse. */
export function memory(): { tensors: number; buffers: number; bytes: number; peakBytes: number; cachedBytes: number } {
  const s = native.memoryStats();
  return { tensors: liveTensorCount(), buffers: s.liveBuffers, bytes: s.liveBytes, peakBytes: s.peakBytes, cachedBytes: s.cachedBytes };
}

/** Frees the native allocator's cached blocks (they are otherwise kept for reuse). */
export function emptyCache(): void {
  native.emptyCache();
}

export function setThreads(n: number): void {
  native.setThreads(n);
}

/** Forces the CPU kernel level (tests use it to cover every level). */
export function setCpuLevel(level: 'avx512' | 'avx2' | 'scalar'): void {
  native.setCpuLevel(level);
}
