/** What the native addon was built with and what it is doing: `diffvit info`, memory statistics. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { NativeInfo } from './backend/kernels/core.js';
import type { MatmulPrecision } from './backend/kernels/gemm.js';
import { native, packageRoot } from './backend/native.js';
import { liveTensorCount } from './tensor/tensor.js';

export type { MatmulPrecision } from './backend/kernels/gemm.js';

export interface RuntimeInfo extends NativeInfo {
  version: string;
  node: string;
  matmulPrecision: MatmulPrecision;
  /** The kernel bf16 GEMMs run on at the active CPU level. */
  bf16Path: { path: 'avx512bf16' | 'emulated'; description: string };
}

export function runtimeInfo(): RuntimeInfo {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, node: process.version, ...native.info(), matmulPrecision: native.getMatmulPrecision(), bf16Path: native.bf16GemmPath() };
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

/**
 * The precision of every GEMM diffvit runs — linear, matmul, conv (im2col) — in both directions,
 * like torch.set_float32_matmul_precision: 'float32' (the default) or 'bf16', which rounds both
 * operands to bfloat16 and accumulates their products in fp32 (AVX512_BF16's vdpbf16ps where
 * the CPU has it, else the same rounding in front of the fp32 kernel). The fused attention kernel
 * always computes in fp32. Process-wide; DIFFVIT_MATMUL_PRECISION sets the initial value.
 */
export function setMatmulPrecision(precision: MatmulPrecision): void {
  native.setMatmulPrecision(precision);
}

/** The precision set by setMatmulPrecision (initially DIFFVIT_MATMUL_PRECISION, else 'float32'). */
export function getMatmulPrecision(): MatmulPrecision {
  return native.getMatmulPrecision();
}
