/**
 * GEMM (native/cpu/simd/gemm.cpp) in GFLOP/s = 2·batch·m·n·k / seconds: square sizes, the
 * iuvit-t/4 linear layers at batch 32 (2048 tokens) forward and backward, and the attention-sized
 * batched products; at each CPU kernel level (avx512, avx2) with 1 thread and with all threads.
 *
 *   npx tsc -p . && node dist/bench/gemm.js
 */
import { native } from '../lib/backend/native.js';
import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import * as dv from '../lib/index.js';
import { type BenchRow, timeIt } from './common.js';

interface Shape {
  name: string;
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

const square = (s: number): Shape => ({ name: `${s}^3`, batch: 1, m: s, n: s, k: s, transA: false, transB: false });

/**
 * One nn.Linear (in -> out) over `rows` tokens, as lib/ops/matmul.ts linear() calls the GEMM:
 *   forward  y  = x Wᵀ   (rows x out, k = in)   W stored (out x in): transB
 *   backward dx = dy W   (rows x in,  k = out)
 *   backward dW = dyᵀ x  (out x in,   k = rows) dy stored (rows x out): transA
 */
function linearShapes(layer: string, rows: number, inF: number, outF: number): Shape[] {
  return [
    { name: `${layer} fwd`, batch: 1, m: rows, n: outF, k: inF, transA: false, transB: true },
    { name: `${layer} dx`, batch: 1, m: rows, n: inF, k: outF, transA: false, transB: false },
    { name: `${layer} dW`, batch: 1, m: outF, n: inF, k: rows, transA: true, transB: false },
  ];
}

// iuvit-t/4 at batch 32: 32x32 images in 4x4 patches = 64 tokens per image (2048 rows), width 256,
// MLP 1024, long-skip Linear(512 -> 256); 4 heads of 64: 128 (batch x head) products per attention
// matmul, over 65 tokens as with the time token (odd edges on every side).
const TOKENS = 32 * 64;
export const GEMM_SHAPES: readonly Shape[] = [
  ...[256, 512, 1024, 2048].map(square),
  ...linearShapes('qkv 256->768', TOKENS, 256, 768),
  ...linearShapes('proj 256->256', TOKENS, 256, 256),
  ...linearShapes('fc1 256->1024', TOKENS, 256, 1024),
  ...linearShapes('fc2 1024->256', TOKENS, 1024, 256),
  ...linearShapes('skip 512->256', TOKENS, 512, 256),
  { name: 'attn q·kᵀ', batch: 128, m: 65, n: 65, k: 64, transA: false, transB: true },
  { name: 'attn p·v', batch: 128, m: 65, n: 64, k: 65, transA: false, transB: false },
];

function describeShape(s: Shape): string {
  const layout = `${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}`;
  return `${s.name} ${s.batch > 1 ? `${s.batch}x ` : ''}${s.m}x${s.n}x${s.k} ${layout}`;
}

/** Seconds per call of C = op(A) op(B) for one shape on random operands. */
function timeShape(s: Shape, minSeconds: number): number {
  const aSize = s.batch * s.m * s.k, bSize = s.batch * s.k * s.n, cSize = s.batch * s.m * s.n;
  const bufs: NativeBuffer[] = [aSize, bSize, cSize].map((n) => new native.NativeBuffer('cpu', 'float32', n));
  const [A, B, C] = bufs;
  try {
    native.randomFill(A, 0, aSize, 'normal', 1, 0, 0, 1);
    native.randomFill(B, 0, bSize, 'normal', 2, 0, 0, 1);
    const lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n;
    return timeIt(() => native.gemm(A, 0, B, 0, C, 0, s.batch, s.m, s.n, s.k, s.transA, s.transB, 1, 0,
      s.m * s.k, s.k * s.n, s.m * s.n, lda, ldb, s.n), { minSeconds });
  } finally {
    for (const b of bufs) b.dispose();
  }
}

export interface GemmBenchOptions {
  /** CPU kernel levels to run (default: avx512 and avx2, those this CPU has). */
  levels?: ('avx512' | 'avx2' | 'scalar')[];
  /** Thread counts (default: 1 and all). */
  threads?: number[];
  shapes?: readonly Shape[];
  /** Minimum timing per case (default 0.5 s). */
  minSeconds?: number;
}

export function benchGemm(options: GemmBenchOptions = {}): BenchRow[] {
  const info = dv.runtimeInfo();
  const order = ['avx512', 'avx2', 'scalar'] as const;
  const available = order.slice(order.indexOf(info.cpuBestLevel));
  const levels = (options.levels ?? ['avx512', 'avx2']).filter((l) => available.includes(l));
  const threads = options.threads ?? [...new Set([1, info.threads])];
  const rows: BenchRow[] = [];
  try {
    for (const level of levels) {
      dv.setCpuLevel(level);
      for (const t of threads) {
        dv.setThreads(t);
        for (const s of options.shapes ?? GEMM_SHAPES) {
          const seconds = timeShape(s, options.minSeconds ?? 0.5);
          rows.push({
            bench: 'gemm',
            case: `${describeShape(s)}, ${level}, ${t} thread${t > 1 ? 's' : ''}`,
            unit: 'GFLOP/s',
            value: (2 * s.batch * s.m * s.n * s.k) / seconds / 1e9,
          });
        }
      }
    }
  } finally {
    dv.setCpuLevel(info.cpuLevel);
    dv.setThreads(info.threads);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const info = dv.runtimeInfo();
  console.log(`gemm, best cpu level ${info.cpuBestLevel}, ${info.threads} threads`);
  const rows = benchGemm();
  const width = Math.max(...rows.map((r) => r.case.length));
  for (const r of rows) console.log(`${r.case.padEnd(width)} ${r.value.toFixed(1).padStart(8)} ${r.unit}`);
}
