/**
 * GEMM (native/cpu/simd/gemm.cpp) in GFLOP/s = 2·batch·m·n·k / seconds: square sizes, the
 * iuvit-t/4 linear layers at batch 32 (2048 tokens) forward and backward, and the attention-sized
 * batched products; at each CPU kernel level (avx512, avx2) with 1 thread and with all threads.
 *
 * Next to each number, measured in the same run:
 *   - OpenBLAS sgemm (bench/openblas/sgemm_bench.c, compiled here against the system's
 *     libopenblas) on kernels for the same instruction set: OPENBLAS_CORETYPE=SkylakeX (its
 *     AVX-512 sgemm) for the avx512 rows, Haswell (AVX2) for the avx2 rows, whatever the
 *     environment sets. Missing compiler or library: the rows say so, with the command that
 *     installs them.
 *   - the measured peak (fmaPeak: independent FMA chains, the best of >= 5 runs), and each level's
 *     large square GEMMs as a fraction of it: their median call, and their fastest call (the
 *     like-for-like figure: best run against best run);
 *   - bf16 precision (the kernel's precision 'bf16', what autocast('bf16') passes: each of AMX and
 *     vdpbf16ps at avx512 on CPUs with them, emulated elsewhere) against diffvit's own fp32, its peak, and the error of both precisions
 *     against float64 at 1024^3.
 *
 *   npx tsc -p . && node dist/bench/gemm.js
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

// A kernel benchmark: it drives the CPU backend's addon directly (the GEMM kernel with its
// precision argument, buffers of the caching allocator), beneath the ops and autocast.
import { native } from '../lib/backend/cpu/addon.js';
import { fmaPeak, setBf16PathLimit } from '../lib/backend/cpu/runtime.js';
import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import { packageRoot } from '../lib/package_root.js';
import * as dv from '../lib/index.js';
import { type BenchRow, timedBf16Paths, timeRuns } from './common.js';

type Level = 'avx512' | 'avx2' | 'scalar';

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
  // the default model, iuvit-xs/4 (width 128, MLP 512), on every token and on the quarter a masked step keeps
  ...linearShapes('xs qkv 128->384', TOKENS, 128, 384),
  ...linearShapes('xs fc1 128->512', TOKENS, 128, 512),
  ...linearShapes('xs fc2 512->128', TOKENS, 512, 128),
  ...linearShapes('xs masked fc1 128->512', TOKENS / 4, 128, 512),
  { name: 'attn q·kᵀ', batch: 128, m: 65, n: 65, k: 64, transA: false, transB: true },
  { name: 'attn p·v', batch: 128, m: 65, n: 64, k: 65, transA: false, transB: false },
];

function describeShape(s: Shape): string {
  const layout = `${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}`;
  return `${s.name} ${s.batch > 1 ? `${s.batch}x ` : ''}${s.m}x${s.n}x${s.k} ${layout}`;
}

const gflops = (s: Shape, seconds: number) => (2 * s.batch * s.m * s.n * s.k) / seconds / 1e9;

/** Random operands for one shape, laid out as the OpenBLAS harness lays out its own. */
class Operands {
  readonly a: NativeBuffer;
  readonly b: NativeBuffer;
  readonly c: NativeBuffer;
  constructor(readonly s: Shape) {
    const aSize = s.batch * s.m * s.k, bSize = s.batch * s.k * s.n;
    this.a = new native.NativeBuffer('cpu', 'float32', aSize);
    this.b = new native.NativeBuffer('cpu', 'float32', bSize);
    this.c = new native.NativeBuffer('cpu', 'float32', s.batch * s.m * s.n);
    native.randomFill({ out: this.a, offset: 0, n: aSize, distribution: 'normal', seed: 1, counter: 0, a: 0, b: 1 });
    native.randomFill({ out: this.b, offset: 0, n: bSize, distribution: 'normal', seed: 2, counter: 0, a: 0, b: 1 });
  }
  gemm(precision: dv.MatmulPrecision): void {
    const s = this.s;
    native.gemm({
      a: this.a, aOffset: 0, b: this.b, bOffset: 0, c: this.c, cOffset: 0, batch: s.batch, m: s.m, n: s.n, k: s.k,
      transA: s.transA, transB: s.transB, alpha: 1, beta: 0, strideA: s.m * s.k, strideB: s.k * s.n, strideC: s.m * s.n,
      lda: s.transA ? s.m : s.k, ldb: s.transB ? s.k : s.n, ldc: s.n, precision,
    });
  }
  dispose(): void {
    this.a.dispose();
    this.b.dispose();
    this.c.dispose();
  }
}

/** Seconds per call at the given precision, median and fastest. */
function timeShape(ops: Operands, precision: dv.MatmulPrecision, minSeconds: number): { median: number; best: number } {
  return timeRuns(() => ops.gemm(precision), { minSeconds });
}

// ---- OpenBLAS ----

const OPENBLAS_INSTALL = 'apt-get install -y libopenblas-dev';

type OpenBlas = { run(coretype: string | null, threads: number, s: Shape, minSeconds: number): { name: string; seconds: number }; close(): void } | { missing: string };

/** Compiles bench/openblas/sgemm_bench.c into a temporary directory; missing tools say which. */
function openBlas(): OpenBlas {
  const source = join(packageRoot(), 'bench', 'openblas', 'sgemm_bench.c');
  if (!existsSync(source)) return { missing: `${source} is not in this installation (run the benchmark from a source checkout)` };
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-openblas-'));
  const exe = join(dir, 'sgemm_bench');
  const cc = process.env.CC ?? 'cc';
  try {
    execFileSync(cc, ['-O2', '-o', exe, source, '-lopenblas'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') return { missing: `no C compiler '${cc}' (apt-get install -y gcc libopenblas-dev)` };
    const first = (err.stderr?.toString() ?? err.message).split('\n').find((l) => /error|cannot find/.test(l)) ?? 'compile failed';
    return { missing: `not installed (${OPENBLAS_INSTALL}): ${first.trim()}` };
  }
  return {
    run(coretype, threads, s, minSeconds) {
      const env = { ...process.env };
      if (coretype) env.OPENBLAS_CORETYPE = coretype;
      const out = execFileSync(exe, [String(minSeconds), String(threads), String(s.batch), String(s.m), String(s.n), String(s.k),
        s.transA ? '1' : '0', s.transB ? '1' : '0'], { env, encoding: 'utf8' });
      const r = JSON.parse(out) as { corename: string; config: string; seconds: number[] };
      return { name: `OpenBLAS ${r.config.split(' ')[1]} ${r.corename}`, seconds: r.seconds[0] };
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- accuracy ----

/**
 * max |C − C64| / max |C64| of A (m x k) · B (k x n) on unit normals at the given precision,
 * against the float64 product of the same float32 operands.
 */
function relativeError(size: number, precision: dv.MatmulPrecision): number {
  const s = square(size), ops = new Operands(s);
  try {
    ops.gemm(precision);
    const a = Float64Array.from(ops.a.read(0, size * size)), b = Float64Array.from(ops.b.read(0, size * size));
    const c = ops.c.read(0, size * size);
    let maxErr = 0, maxRef = 0;
    const row = new Float64Array(size);
    for (let i = 0; i < size; i++) {
      row.fill(0);
      for (let p = 0; p < size; p++) {
        const x = a[i * size + p], bo = p * size;
        for (let j = 0; j < size; j++) row[j] += x * b[bo + j];
      }
      for (let j = 0; j < size; j++) {
        maxErr = Math.max(maxErr, Math.abs(c[i * size + j] - row[j]));
        maxRef = Math.max(maxRef, Math.abs(row[j]));
      }
    }
    return maxErr / maxRef;
  } finally {
    ops.dispose();
  }
}

// ---- the benchmark ----

export interface GemmBenchOptions {
  /** CPU kernel levels to run (default: avx512 and avx2, those this CPU has). */
  levels?: Level[];
  /** Thread counts (default: 1 and all). */
  threads?: number[];
  shapes?: readonly Shape[];
  /** Precisions to time (default: both). */
  precisions?: dv.MatmulPrecision[];
  /** Minimum timing per case (default 0.5 s). */
  minSeconds?: number;
  /** Compare against OpenBLAS (default true). */
  openblas?: boolean;
  /** Size of the error report's square GEMM (default 1024; 0 skips it). */
  errorSize?: number;
}

export function benchGemm(options: GemmBenchOptions = {}): BenchRow[] {
  const info = dv.runtimeInfo();
  const order: Level[] = ['avx512', 'avx2', 'scalar'];
  const available = order.slice(order.indexOf(info.cpuBestLevel));
  const levels = (options.levels ?? ['avx512', 'avx2']).filter((l) => available.includes(l));
  const threads = options.threads ?? [...new Set([1, info.threads])];
  const precisions = options.precisions ?? ['float32', 'bf16'];
  const minSeconds = options.minSeconds ?? 0.5;
  const shapes = options.shapes ?? GEMM_SHAPES;
  const blas = options.openblas === false ? null : openBlas();
  const rows: BenchRow[] = [];
  try {
    for (const level of levels) {
      dv.setCpuLevel(level);
      const paths16 = timedBf16Paths();
      const vdp = paths16.includes('avx512bf16');
      for (const t of threads) {
        dv.setThreads(t);
        const where = `${level}, ${t} thread${t > 1 ? 's' : ''}`;
        const peak = fmaPeak('float32', t > 1);
        rows.push({ bench: 'gemm', case: `FMA peak (independent fp32 FMA chains), ${where}`, unit: 'GFLOP/s', value: peak });
        const bf16Peak = vdp ? fmaPeak('bf16', t > 1) : null;
        if (bf16Peak !== null) {
          rows.push({ bench: 'gemm', case: `vdpbf16ps peak (independent chains), ${where}`, unit: 'GFLOP/s', value: bf16Peak,
            baseline: { name: 'FMA peak', value: peak }, ratio: bf16Peak / peak });
        }
        // GFLOP/s of each shape's median and fastest call (the large squares are set against the peak)
        const measured: Record<string, Record<string, { median: number; best: number }>> = { float32: {}, avx512bf16: {} };
        for (const s of shapes) {
          const ops = new Operands(s);
          try {
            let fp32: number | null = null;
            if (precisions.includes('float32')) {
              const time = timeShape(ops, 'float32', minSeconds);
              fp32 = gflops(s, time.median);
              measured.float32[s.name] = { median: fp32, best: gflops(s, time.best) };
              const row: BenchRow = { bench: 'gemm', case: `${describeShape(s)}, ${where}`, unit: 'GFLOP/s', value: fp32 };
              if (blas && 'missing' in blas) {
                row.baseline = { name: 'OpenBLAS', missing: blas.missing };
              } else if (blas) {
                const r = blas.run(level === 'avx512' ? 'SkylakeX' : level === 'avx2' ? 'Haswell' : null, t, s, minSeconds);
                const value = gflops(s, r.seconds);
                row.baseline = { name: r.name, value };
                row.ratio = fp32 / value;
              }
              rows.push(row);
            }
            for (const path of precisions.includes('bf16') ? paths16 : []) {
              setBf16PathLimit(path);
              const time = timeShape(ops, 'bf16', minSeconds);
              const bf = gflops(s, time.median);
              if (path === 'avx512bf16') measured.avx512bf16[s.name] = { median: bf, best: gflops(s, time.best) };
              rows.push({
                bench: 'gemm', case: `${describeShape(s)}, bf16 (${path}), ${where}`, unit: 'GFLOP/s', value: bf,
                ...(fp32 === null ? {} : { baseline: { name: 'diffvit fp32', value: fp32 }, ratio: bf / fp32 }),
              });
            }
            setBf16PathLimit('amx');
          } finally {
            ops.dispose();
          }
        }
        // The large square products as a fraction of the measured roof.
        for (const size of [1024, 2048]) {
          const name = `${size}^3`;
          for (const stat of ['median', 'best'] as const) {
            const call = stat === 'median' ? 'median call' : 'fastest call';
            const fp32 = measured.float32[name]?.[stat], bf = measured.avx512bf16[name]?.[stat];
            if (fp32 !== undefined) {
              rows.push({ bench: 'gemm', case: `${name} NN ${call} vs FMA peak, ${where}`, unit: 'GFLOP/s', value: fp32,
                baseline: { name: 'FMA peak', value: peak }, ratio: fp32 / peak });
            }
            if (bf !== undefined && bf16Peak !== null) {
              rows.push({ bench: 'gemm', case: `${name} NN bf16 ${call} vs vdpbf16ps peak, ${where}`, unit: 'GFLOP/s', value: bf,
                baseline: { name: 'vdpbf16ps peak', value: bf16Peak }, ratio: bf / bf16Peak });
            }
          }
        }
      }
    }
    const errorSize = options.errorSize ?? 1024;
    if (errorSize > 0) {
      dv.setCpuLevel(info.cpuLevel);
      dv.setThreads(info.threads);
      const path = dv.runtimeInfo().bf16Path.path;
      for (const precision of precisions) {
        rows.push({
          bench: 'gemm',
          case: `${errorSize}^3 NN ${precision === 'bf16' ? `bf16 (${path})` : 'fp32'} error: max |C − C64| / max |C64|, ${info.cpuLevel}`,
          unit: 'rel. error',
          value: relativeError(errorSize, precision),
        });
      }
    }
  } finally {
    if (blas && !('missing' in blas)) blas.close();
    setBf16PathLimit('amx');
    dv.setCpuLevel(info.cpuLevel);
    dv.setThreads(info.threads);
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  // (Not run.ts's formatTable: importing run.js from here would wait on this module's own evaluation.)
  const info = dv.runtimeInfo();
  console.log(`gemm, best cpu level ${info.cpuBestLevel}, ${info.threads} threads, bf16 path ${info.bf16Path.path}`);
  const rows = benchGemm();
  const width = Math.max(...rows.map((r) => r.case.length));
  const num = (v: number) => (Math.abs(v) < 1e-2 ? v.toExponential(2) : v.toFixed(1));
  for (const r of rows) {
    const base = !r.baseline ? '' : 'value' in r.baseline ? `${r.baseline.name} ${num(r.baseline.value)}` : `${r.baseline.name}: ${r.baseline.missing}`;
    console.log(`${r.case.padEnd(width)} ${num(r.value).padStart(9)} ${r.unit}  ${base}${r.ratio === undefined ? '' : `  ${r.ratio.toFixed(2)}x`}`);
  }
}
