import { afterEach, expect, test } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import { runKernel } from '../lib/backend/dispatch.js';
import * as dv from '../lib/index.js';
import {
  checkOp, type CloseOptions, describeEachBackend, describeEachLevel, deviceBuffer, expectClose, ODD_SIZES, randomValues,
  readBuffer, recordError, toF32,
} from './helpers.js';

// The table's row for GEMM-based ops (the same bounds as its default: unit-scale operands, k <= 65).
const MATMUL_TOL: CloseOptions = { dtype: 'float32', kind: 'matmul' };

/** Reference batched matmul on float64 with broadcasting over one leading batch dim. */
function refMatmul(ba: number, bb: number, m: number, k: number, n: number) {
  return (a: Float64Array, b: Float64Array) => {
    const batch = Math.max(ba, bb);
    const out = new Float64Array(batch * m * n);
    for (let t = 0; t < batch; t++) {
      const ao = (ba === 1 ? 0 : t) * m * k, bo = (bb === 1 ? 0 : t) * k * n;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[ao + i * k + p] * b[bo + p * n + j];
        out[t * m * n + i * n + j] = s;
      }
    }
    return out;
  };
}

// Every suite runs once per backend (the cpu once per kernel level); checkOp's tensors go on its device.
describeEachBackend('matmul', () => {
  const cases: [number, number, number, number, number][] = [
    [1, 1, 1, 1, 1], [1, 1, 3, 17, 5], [2, 2, 17, 3, 65], [3, 1, 5, 65, 17], [1, 2, 17, 17, 3],
  ];
  test.each(cases)('batch %i x %i, %i x %i @ %i', (ba, bb, m, k, n) => {
    checkOp('matmul', dv.matmul, refMatmul(ba, bb, m, k, n), [
      { values: randomValues(ba * m * k, 1), shape: [ba, m, k] },
      { values: randomValues(bb * k * n, 2), shape: [bb, k, n] },
    ], MATMUL_TOL);
  });
  test.each([[3, 17, 5], [65, 17, 33], [1, 3, 1]])('linear %i rows, %i -> %i', (rows, inF, outF) => {
    const ref = (x: Float64Array, w: Float64Array, b: Float64Array) => {
      const out = new Float64Array(rows * outF);
      for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
        let s = b[o];
        for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
        out[r * outF + o] = s;
      }
      return out;
    };
    checkOp('linear', dv.linear, ref, [
      { values: randomValues(rows * inF, 3), shape: [rows, inF] },
      { values: randomValues(outF * inF, 4), shape: [outF, inF] },
      { values: randomValues(outF, 5), shape: [outF] },
    ], MATMUL_TOL);
  });
  test('matmul reads transposed views', () => {
    const m = 17, k = 5, n = 3;
    const ref = refMatmul(1, 1, m, k, n);
    checkOp('matmul(aᵀ-view, bᵀ-view)', (at, bt) => dv.matmul(at.transpose(0, 1), bt.transpose(0, 1)),
      (at, bt) => {
        const a = new Float64Array(m * k), b = new Float64Array(k * n);
        for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) a[i * k + p] = at[p * m + i];
        for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) b[p * n + j] = bt[j * k + p];
        return ref(a, b);
      },
      [{ values: randomValues(k * m, 6), shape: [k, m] }, { values: randomValues(n * k, 7), shape: [n, k] }], MATMUL_TOL);
  });
});

// ---- the gemm kernel directly (runKernel on the suite's device): layouts, alpha/beta, padding, batching;
// ---- on the CPU addon only: threads, argument errors ----

interface GemmCase {
  batch: number; m: number; n: number; k: number;
  transA: boolean; transB: boolean;
  alpha: number; beta: number;
  /** Extra elements per row beyond the minimum leading dimension (lda, ldb, ldc). */
  pad?: [number, number, number];
  /** Batch stride 0: one A (or B) shared by every batch item. */
  broadcastA?: boolean; broadcastB?: boolean;
  seed: number;
}

interface GemmRun {
  c: Float32Array; // the whole C buffer after the call (offset, padding and batch gaps included)
  c0: Float64Array; // C before the call
  lda: number; ldb: number; ldc: number;
  strideA: number; strideB: number; strideC: number;
  a: Float64Array; b: Float64Array; // as stored, float32-rounded
  offA: number; offB: number; offC: number;
}

/** Runs the gemm kernel of the suite's device on seeded random operands at awkward offsets, leading dims and batch strides. */
function runGemm(t: GemmCase): GemmRun {
  const [pa, pb, pc] = t.pad ?? [0, 0, 0];
  const aRows = t.transA ? t.k : t.m, aCols = t.transA ? t.m : t.k;
  const bRows = t.transB ? t.n : t.k, bCols = t.transB ? t.k : t.n;
  const lda = aCols + pa, ldb = bCols + pb, ldc = t.n + pc;
  // Batch strides leave a gap after each item so stray reads/writes between items show up.
  const strideA = t.broadcastA ? 0 : aRows * lda + 3, strideB = t.broadcastB ? 0 : bRows * ldb + 5;
  const strideC = t.m * ldc + 7;
  const offA = 1, offB = 2, offC = 3;
  const itemsA = t.broadcastA ? 1 : t.batch, itemsB = t.broadcastB ? 1 : t.batch;
  const a = toF32(randomValues(offA + itemsA * Math.max(strideA, aRows * lda), t.seed));
  const b = toF32(randomValues(offB + itemsB * Math.max(strideB, bRows * ldb), t.seed + 1));
  // beta == 0 must not read C: fill it with NaN so any read poisons the result.
  const c0 = t.beta === 0 ? new Float64Array(offC + t.batch * strideC).fill(NaN) : toF32(randomValues(offC + t.batch * strideC, t.seed + 2));
  const A = deviceBuffer(a), B = deviceBuffer(b), C = deviceBuffer(c0);
  try {
    runKernel('gemm', {
      a: A, aOffset: offA, b: B, bOffset: offB, c: C, cOffset: offC, batch: t.batch, m: t.m, n: t.n, k: t.k,
      transA: t.transA, transB: t.transB, alpha: t.alpha, beta: t.beta, strideA, strideB, strideC, lda, ldb, ldc,
      precision: 'float32'
    });
    return { c: readBuffer(C), c0, lda, ldb, ldc, strideA, strideB, strideC, a, b, offA, offB, offC };
  } finally {
    A.dispose();
    B.dispose();
    C.dispose();
  }
}

/**
 * Compares against a float64 reference with the table's bound for a length-k float32 dot product
 * (float32 'dot', Higham & Mary): |err| <= λ·u·sqrt(k)·(|alpha|·Σ|a·b| + |beta·c|), u = 2^-24, λ = 4.
 * Everything outside the C items (offset, row padding, batch gaps) must be untouched.
 * Returns the worst error relative to sqrt(k)·(|alpha|·Σ|a·b| + |beta·c|).
 */
function checkGemm(t: GemmCase, r: GemmRun, label: string): number {
  const inside = new Uint8Array(r.c.length);
  const got: number[] = [], want: number[] = [], scale: number[] = [];
  for (let bi = 0; bi < t.batch; bi++) {
    const ao = r.offA + bi * r.strideA, bo = r.offB + bi * r.strideB;
    for (let i = 0; i < t.m; i++) {
      for (let j = 0; j < t.n; j++) {
        let s = 0, mag = 0;
        for (let p = 0; p < t.k; p++) {
          const x = r.a[ao + (t.transA ? p * r.lda + i : i * r.lda + p)];
          const y = r.b[bo + (t.transB ? j * r.ldb + p : p * r.ldb + j)];
          s += x * y;
          mag += Math.abs(x * y);
        }
        const at = r.offC + bi * r.strideC + i * r.ldc + j;
        inside[at] = 1;
        const prior = t.beta === 0 ? 0 : t.beta * r.c0[at];
        got.push(r.c[at]);
        want.push(t.alpha * s + prior);
        scale.push(Math.sqrt(Math.max(t.k, 1)) * (Math.abs(t.alpha) * mag + Math.abs(prior)));
      }
    }
  }
  const worst = expectClose(got, want, { dtype: 'float32', kind: 'dot', scale }, `${label} (C in row-major batch order)`);
  for (let i = 0; i < r.c.length; i++) {
    if (!inside[i] && !Object.is(r.c[i], Math.fround(r.c0[i]))) {
      expect.fail(`${label}: element ${i} outside C changed from ${r.c0[i]} to ${r.c[i]}`);
    }
  }
  return worst;
}

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
const defaultThreads = dv.runtimeInfo().threads;

describeEachBackend('gemm kernel', ({ device, level: cpuLevel }) => {
  const level = cpuLevel ? `cpu ${cpuLevel}` : device;

  // Every (m, n, k) over the odd sizes, for each transpose combination; alpha, beta and padding
  // cycle through the cases so each combination meets each of them many times.
  const ALPHAS = [1, -0.75, 2.5], BETAS = [0, 1, -0.5, 0];
  test.each([[false, false], [false, true], [true, false], [true, true]])('transA %s transB %s, odd sizes', (transA, transB) => {
    let worst = 0, n = 0;
    for (const m of ODD_SIZES) for (const nn of ODD_SIZES) for (const k of ODD_SIZES) {
      const t: GemmCase = {
        batch: 1 + (n % 5 === 0 ? 1 : 0), m, n: nn, k, transA, transB, alpha: ALPHAS[n % 3], beta: BETAS[n % 4],
        pad: [n % 3, (n * 7) % 5, n % 2 === 0 ? 0 : 19], seed: 100 + n,
      };
      worst = Math.max(worst, checkGemm(t, runGemm(t), `${level} ${JSON.stringify(t)}`));
      n++;
    }
    recordError(`gemm (err / sqrt(k)·Σ|a·b|) ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, worst);
  });

  // Several K blocks (k > KC at every level), partial tiles on both edges, and multi-threaded splits.
  test.each([
    [1, 129, 97, 1100, false, true, 1, 0],
    [2, 70, 300, 600, true, false, -1, 0.5],
    [1, 300, 33, 520, true, true, 0.5, 1],
  ])('batch %i, %i x %i x k %i, transA %s transB %s, alpha %f beta %f', (batch, m, n, k, transA, transB, alpha, beta) => {
    const t: GemmCase = { batch, m, n, k, transA, transB, alpha, beta, pad: [5, 0, 3], seed: 7 };
    recordError('gemm (err / sqrt(k)·Σ|a·b|) large', checkGemm(t, runGemm(t), `${level} ${JSON.stringify(t)}`));
  });

  test('batch broadcast of A or B (stride 0)', () => {
    for (const [broadcastA, broadcastB] of [[true, false], [false, true], [true, true]]) {
      const t: GemmCase = { batch: 3, m: 17, n: 33, k: 65, transA: broadcastA, transB: !broadcastB, alpha: 1.5, beta: 0.25,
        pad: [1, 2, 3], broadcastA, broadcastB, seed: 11 };
      checkGemm(t, runGemm(t), `${level} ${JSON.stringify(t)}`);
    }
  });

  test('k = 0 and alpha = 0 give beta * C without reading A or B', () => {
    for (const [k, alpha, beta] of [[0, 1, 0], [0, 1, -2], [5, 0, 0.5]]) {
      const t: GemmCase = { batch: 2, m: 3, n: 17, k, transA: false, transB: false, alpha, beta, pad: [0, 0, 2], seed: 13 };
      const r = runGemm(t);
      for (let bi = 0; bi < 2; bi++) for (let i = 0; i < 3; i++) for (let j = 0; j < 17; j++) {
        const at = r.offC + bi * r.strideC + i * r.ldc + j;
        expect(r.c[at]).toBe(beta === 0 ? 0 : Math.fround(beta * r.c0[at]));
      }
    }
  });
});

// Thread counts and the addon's own argument checks are the CPU backend's: per CPU level, not per backend.
describeEachLevel('native gemm', (level) => {
  afterEach(() => dv.setThreads(defaultThreads));

  // Work is split over batch x M x N by thread count; K never is, so results are bit-identical.
  test('results do not depend on the thread count', () => {
    const cases: GemmCase[] = [
      { batch: 1, m: 257, n: 200, k: 1100, transA: false, transB: true, alpha: 1, beta: 0, seed: 21 },
      { batch: 3, m: 65, n: 64, k: 64, transA: false, transB: false, alpha: 0.5, beta: 1, pad: [0, 3, 1], seed: 22 },
      { batch: 1, m: 64, n: 1000, k: 300, transA: true, transB: false, alpha: 1, beta: 0, seed: 23 },
      // M parts sharing one packed B over 2 column blocks (n > NC) and 3 K blocks
      { batch: 1, m: 230, n: 3100, k: 1030, transA: false, transB: false, alpha: 1, beta: 0.5, seed: 24 },
    ];
    for (const t of cases) {
      dv.setThreads(1);
      const run = runGemm(t), one = run.c;
      checkGemm(t, run, `${level} ${JSON.stringify(t)} with 1 thread`);
      for (const threads of [2, 3]) {
        dv.setThreads(threads);
        const many = bits(runGemm(t).c), ref = bits(one);
        const differ = many.findIndex((v, i) => v !== ref[i]);
        expect(differ, `${JSON.stringify(t)}: first element that differs with ${threads} threads`).toBe(-1);
      }
    }
  });

  test('bad arguments throw with the op, the argument and what was expected', () => {
    const A = new native.NativeBuffer('cpu', 'float32', 6 * 5);
    const B = new native.NativeBuffer('cpu', 'float32', 5 * 4);
    const C = new native.NativeBuffer('cpu', 'float32', 6 * 4);
    const C2 = new native.NativeBuffer('cpu', 'float32', 2 * 6 * 4);
    const I = new native.NativeBuffer('cpu', 'int32', 6 * 5);
    try {
      // A (6 x 5) @ B (5 x 4) = C (6 x 4) with these arguments is valid:
      const ok = (over: Partial<Record<string, unknown>> = {}) => {
        const v = { a: A, aOffset: 0, b: B, bOffset: 0, c: C, cOffset: 0, batch: 1, m: 6, n: 4, k: 5, transA: false,
          transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 24, lda: 5, ldb: 4, ldc: 4, precision: 'float32',
          ...over };
        return () => (native.gemm as (args: unknown) => void)(v);
      };
      expect(ok()).not.toThrow();
      expect(ok({ aOffset: 1 })).toThrow("diffvit.gemm: argument 'a' expected at least 31 float32 elements (offset 1 + 30), received a buffer of 30");
      expect(ok({ bOffset: 3 })).toThrow("diffvit.gemm: argument 'b' expected at least 23 float32 elements (offset 3 + 20), received a buffer of 20");
      expect(ok({ ldc: 5 })).toThrow("diffvit.gemm: argument 'c' expected at least 29 float32 elements (offset 0 + 29), received a buffer of 24");
      expect(ok({ lda: 4 })).toThrow("diffvit.gemm: argument 'lda' expected lda >= 5, received 4");
      expect(ok({ transA: true })).toThrow("diffvit.gemm: argument 'lda' expected lda >= 6, received 5");
      expect(ok({ transB: true })).toThrow("diffvit.gemm: argument 'ldb' expected ldb >= 5, received 4");
      expect(ok({ ldc: 3 })).toThrow("diffvit.gemm: argument 'ldc' expected ldc >= 4, received 3");
      expect(ok({ batch: 2, c: C2, strideC: 0 })).toThrow("diffvit.gemm: argument 'strideC' expected a non-zero stride when batch > 1");
      expect(ok({ batch: 2, c: C2, strideC: 20 })).toThrow("diffvit.gemm: argument 'strideC' expected at least 24 when batch > 1 (items of C must not overlap), received 20");
      expect(ok({ m: -1 })).toThrow("diffvit.gemm: argument 'm' expected");
      expect(ok({ k: 2.5 })).toThrow("diffvit.gemm: argument 'k' expected");
      expect(ok({ alpha: NaN })).toThrow("diffvit.gemm: argument 'alpha' expected");
      expect(ok({ a: I })).toThrow("diffvit.gemm: argument 'a' expected dtype float32, received int32");
      expect(ok({ transA: 1 })).toThrow("diffvit.gemm: argument 'transA' expected");
      expect(ok({ precision: 'fp16' })).toThrow("diffvit.gemm: argument 'precision' expected one of 'float32', 'bf16', received 'fp16'");
      expect(ok({ precision: undefined })).toThrow("diffvit.gemm: argument 'precision' expected one of 'float32', 'bf16', received undefined");
      // One object holding exactly the kernel's arguments.
      expect(ok({ ldd: 4 })).toThrow("diffvit.gemm: argument 'ldd' expected no such argument (this kernel takes only the keys of kernels.def), received a value");
      const { lda: _lda, ...noLda } = { a: A, aOffset: 0, b: B, bOffset: 0, c: C, cOffset: 0, batch: 1, m: 6, n: 4, k: 5, transA: false,
        transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 24, lda: 5, ldb: 4, ldc: 4, precision: 'float32' };
      void _lda;
      expect(() => (native.gemm as (args: unknown) => void)(noLda))
        .toThrow("diffvit.gemm: argument 'lda' expected a value (the argument is missing), received no such key");
      expect(() => (native.gemm as (...args: unknown[]) => void)(A, 0, B, 0, C, 0, 1, 6, 4, 5, false, false, 1, 0, 0, 0, 24, 5, 4, 4, 'float32'))
        .toThrow("diffvit.gemm: argument '(arguments)' expected one object { a, aOffset, b, bOffset, c, cOffset, batch, m, n, k, transA, transB, alpha, beta, strideA, strideB, strideC, lda, ldb, ldc, precision }, received 21 arguments, the first a float32 NativeBuffer of 30 elements on cpu");
    } finally {
      for (const buf of [A, B, C, C2, I]) buf.dispose();
    }
    expect(() => native.gemm({
      a: A, aOffset: 0, b: B, bOffset: 0, c: C, cOffset: 0, batch: 1, m: 6, n: 4, k: 5, transA: false, transB: false,
      alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 24, lda: 5, ldb: 4, ldc: 4, precision: 'float32'
    }))
      .toThrow("diffvit.gemm: argument 'a' expected a live NativeBuffer (not disposed), received a disposed NativeBuffer");
  });
});
