/**
 * bf16 matmul precision (the GEMM kernels' `precision` argument, chosen per call by
 * lib/tensor/autocast.ts: autocast scopes, else setMatmulPrecision's default; native/cpu/gemm.h): operands rounded to
 * bfloat16 as VCVTNEPS2BF16 rounds, exact products accumulated in fp32. At every CPU level —
 * AMX tiles and vdpbf16ps at avx512 on CPUs with them (each), bf16-rounded packing with the fp32
 * kernel elsewhere — against a float64 reference on the rounded operands (tight: fp32 accumulation) and
 * against the exact float64 product (bf16 accuracy); the ops (linear, matmul, conv2d) in both
 * directions; autocast, the default, its environment variable and `diffvit train --precision`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';

import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import { native, type Bf16GemmPath } from '../lib/backend/cpu/addon.js';
import { bf16Paths, setBf16PathLimit } from '../lib/backend/cpu/runtime.js';
import { runKernel } from '../lib/backend/dispatch.js';
import { trainCommand } from '../lib/cli/train.js';
import * as dv from '../lib/index.js';
import {
  describeEachBackend, describeEachLevel, deviceBuffer, expectClose, fromValues, ODD_SIZES, randomValues, readBuffer,
  recordError, tolerance, toF32,
} from './helpers.js';

/** x (a float32 value) rounded to bfloat16 exactly as VCVTNEPS2BF16 does, as a float64. */
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
function bf16(x: number): number {
  f32[0] = x;
  const v = u32[0], mag = v & 0x7fffffff;
  if (mag > 0x7f800000) u32[0] = (v | 0x00400000) & 0xffff0000; // NaN: quiet, payload truncated
  else if (mag < 0x00800000) u32[0] = v & 0x80000000; // zero and subnormals: signed zero
  else u32[0] = (v + 0x7fff + ((v >>> 16) & 1)) & 0xffff0000; // round to nearest, ties to even
  return f32[0];
}
const roundAll = (v: Float64Array) => v.map(bf16);

const UBF16 = 2 ** -8;
const envPrecision = process.env.DIFFVIT_MATMUL_PRECISION || 'float32';
const defaultThreads = dv.runtimeInfo().threads;
const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** A CPU addon buffer, for the addon's own argument checks. */
function makeBuffer(values: ArrayLike<number>): NativeBuffer {
  const buf = new native.NativeBuffer('cpu', 'float32', values.length);
  buf.write(0, Float32Array.from(values));
  return buf;
}

interface Case {
  batch: number; m: number; n: number; k: number;
  transA: boolean; transB: boolean; alpha: number; beta: number;
  pad?: [number, number, number]; // extra elements per row of A, B, C
  broadcastA?: boolean; broadcastB?: boolean;
  seed: number;
}

interface Run {
  c: Float32Array; c0: Float64Array; a: Float64Array; b: Float64Array;
  lda: number; ldb: number; ldc: number; strideA: number; strideB: number; strideC: number;
}

const OFF_A = 1, OFF_B = 2, OFF_C = 3;

/** The suite's device's gemm kernel at `precision` on seeded operands at offsets, padded rows and gapped (or broadcast) batch items. */
function runGemm(t: Case, precision: dv.MatmulPrecision): Run {
  const [pa, pb, pc] = t.pad ?? [0, 0, 0];
  const aRows = t.transA ? t.k : t.m, aCols = (t.transA ? t.m : t.k) + pa;
  const bRows = t.transB ? t.n : t.k, bCols = (t.transB ? t.k : t.n) + pb;
  const lda = aCols, ldb = bCols, ldc = t.n + pc;
  const strideA = t.broadcastA ? 0 : aRows * lda + 3, strideB = t.broadcastB ? 0 : bRows * ldb + 5;
  const strideC = t.m * ldc + 7;
  const a = toF32(randomValues(OFF_A + (t.broadcastA ? 1 : t.batch) * Math.max(strideA, aRows * lda), t.seed));
  const b = toF32(randomValues(OFF_B + (t.broadcastB ? 1 : t.batch) * Math.max(strideB, bRows * ldb), t.seed + 1));
  // beta == 0 must not read C: NaN there would poison the result.
  const c0 = t.beta === 0 ? new Float64Array(OFF_C + t.batch * strideC).fill(NaN) : toF32(randomValues(OFF_C + t.batch * strideC, t.seed + 2));
  const A = deviceBuffer(a), B = deviceBuffer(b), C = deviceBuffer(c0);
  try {
    runKernel('gemm', {
      a: A, aOffset: OFF_A, b: B, bOffset: OFF_B, c: C, cOffset: OFF_C, batch: t.batch, m: t.m, n: t.n, k: t.k,
      transA: t.transA, transB: t.transB, alpha: t.alpha, beta: t.beta, strideA, strideB, strideC, lda, ldb, ldc, precision,
    });
    return { c: readBuffer(C), c0, a, b, lda, ldb, ldc, strideA, strideB, strideC };
  } finally {
    A.dispose();
    B.dispose();
    C.dispose();
  }
}

/**
 * Checks a bf16 run element by element against two float64 references, with the table's bounds,
 * and returns the worst errors (relative to Σ|a·b| of the reference; vs exact also relative to
 * 2^-8·‖α·a∘b‖₂, which for unit-scale operands grows as sqrt(k)):
 *   rounded: Σ bf16(α·a)·bf16(b) + β·c (alpha is folded into A in fp32 before rounding), within
 *            the fp32 accumulation bound (float32 'dot': λ·sqrt(k)·2^-24·(Σ|products| + |β·c|)):
 *            the kernel's only rounding once the operands are bf16;
 *   exact:   α·Σ a·b + β·c, within bf16's worst case per product (bf16 'dot': 2·2^-8 + 2·2^-24
 *            of |α|·Σ|a·b|) plus that.
 * Everything outside the C items must be untouched.
 */
function checkBf16(t: Case, r: Run, label: string): { rounded: number; exact: number; exactNorm: number } {
  const f32 = tolerance('float32', 'dot'), bf = tolerance('bf16', 'dot');
  const inside = new Uint8Array(r.c.length);
  const got: number[] = [], wantR: number[] = [], scaleR: number[] = [], wantE: number[] = [], scaleE: number[] = [];
  // The kernel folds alpha into A in fp32 before rounding.
  const ar = r.a.map((x) => bf16(Math.fround(t.alpha * x))), br = r.b.map(bf16);
  let rounded = 0, exact = 0, exactNorm = 0;
  for (let bi = 0; bi < t.batch; bi++) {
    const ao = OFF_A + bi * r.strideA, bo = OFF_B + bi * r.strideB;
    for (let i = 0; i < t.m; i++) {
      for (let j = 0; j < t.n; j++) {
        let sr = 0, magR = 0, se = 0, magE = 0, sq = 0;
        for (let p = 0; p < t.k; p++) {
          const ai = ao + (t.transA ? p * r.lda + i : i * r.lda + p), bi2 = bo + (t.transB ? j * r.ldb + p : p * r.ldb + j);
          const x = r.a[ai], y = r.b[bi2], xr = ar[ai], yr = br[bi2];
          sr += xr * yr;
          magR += Math.abs(xr * yr);
          se += x * y;
          magE += Math.abs(x * y);
          sq += (t.alpha * x * y) ** 2;
        }
        const at = OFF_C + bi * r.strideC + i * r.ldc + j;
        inside[at] = 1;
        const prior = t.beta === 0 ? 0 : t.beta * r.c0[at];
        const c = r.c[at];
        got.push(c);
        // rounded: float32 'dot' of sqrt(k)·(Σ|products| + |β·c|).
        const sR = Math.sqrt(Math.max(t.k, 1)) * (magR + Math.abs(prior));
        wantR.push(sr + prior);
        scaleR.push(sR);
        // exact: bf16 'dot' of |α|·Σ|a·b|, plus the rounded bound (folded into the scale bf16 'dot' multiplies).
        const scale = Math.abs(t.alpha) * magE;
        wantE.push(t.alpha * se + prior);
        scaleE.push(scale + (f32.atol + f32.rtol * sR) / bf.rtol);
        const errR = Math.abs(c - (sr + prior)), errE = Math.abs(c - (t.alpha * se + prior));
        rounded = Math.max(rounded, errR / Math.max(magR + Math.abs(prior), 1e-30));
        exact = Math.max(exact, errE / Math.max(scale, 1e-30));
        exactNorm = Math.max(exactNorm, errE / Math.max(UBF16 * Math.sqrt(sq), 1e-30));
      }
    }
  }
  expectClose(got, wantR, { dtype: 'float32', kind: 'dot', scale: scaleR }, `${label}: C (row-major batch order) from bf16-rounded operands`);
  expectClose(got, wantE, { dtype: 'bf16', kind: 'dot', scale: scaleE }, `${label}: C (row-major batch order) within bf16 accuracy`);
  for (let i = 0; i < r.c.length; i++) {
    if (!inside[i] && !Object.is(r.c[i], Math.fround(r.c0[i]))) {
      expect.fail(`${label}: element ${i} outside C changed from ${r.c0[i]} to ${r.c[i]}`);
    }
  }
  return { rounded, exact, exactNorm };
}

function record(e: { rounded: number; exact: number; exactNorm: number }, what: string): void {
  recordError(`gemm bf16 ${what} vs rounded (err/Σ|ab|)`, e.rounded);
  recordError(`gemm bf16 ${what} vs exact (err/Σ|ab|)`, e.exact);
  recordError(`gemm bf16 ${what} vs exact (err/2^-8‖ab‖₂)`, e.exactNorm);
}

const TRANSPOSES = [[false, false], [false, true], [true, false], [true, true]] as const;

/**
 * Every (m, n, k) over the odd sizes for one transpose pair (alpha, beta, padding and a second
 * batch item cycle through the cases), checked; returns the worst errors.
 */
function checkOddSizes(transA: boolean, transB: boolean, label: string): { rounded: number; exact: number; exactNorm: number } {
  const ALPHAS = [1, -0.75, 2.5], BETAS = [0, 1, -0.5, 0];
  let worst = { rounded: 0, exact: 0, exactNorm: 0 }, n = 0;
  for (const m of ODD_SIZES) for (const nn of ODD_SIZES) for (const k of ODD_SIZES) {
    const t: Case = {
      batch: 1 + (n % 5 === 0 ? 1 : 0), m, n: nn, k, transA, transB, alpha: ALPHAS[n % 3], beta: BETAS[n % 4],
      pad: [n % 3, (n * 7) % 5, n % 2 === 0 ? 0 : 19], seed: 300 + n,
    };
    const e = checkBf16(t, runGemm(t, 'bf16'), `${label} ${JSON.stringify(t)}`);
    worst = { rounded: Math.max(worst.rounded, e.rounded), exact: Math.max(worst.exact, e.exact), exactNorm: Math.max(worst.exactNorm, e.exactNorm) };
    n++;
  }
  return worst;
}

/** Several K blocks, odd and even (a K block that ends mid-pair or mid-tile), partial tiles, thread splits. */
const LARGE_K: Case[] = [
  { batch: 1, m: 65, n: 47, k: 2051, transA: false, transB: true, alpha: 1, beta: 0, pad: [5, 0, 3], seed: 17 },
  { batch: 2, m: 40, n: 70, k: 1100, transA: true, transB: false, alpha: -1, beta: 0.5, pad: [5, 0, 3], seed: 17 },
  { batch: 1, m: 100, n: 33, k: 1537, transA: true, transB: true, alpha: 0.5, beta: 1, pad: [5, 0, 3], seed: 17 },
  { batch: 1, m: 64, n: 64, k: 1024, transA: false, transB: false, alpha: 1, beta: 0, pad: [5, 0, 3], seed: 17 },
];

/** A valid 2 x 3 @ 3 x 2 GEMM's arguments on fresh buffers (dispose with disposeArgs). */
function gemmArgs(precision: unknown): Record<string, unknown> {
  return {
    a: makeBuffer([1, 2, 3, 4, 5, 6]), aOffset: 0, b: makeBuffer([1, 2, 3, 4, 5, 6]), bOffset: 0, c: makeBuffer([0, 0, 0, 0]),
    cOffset: 0, batch: 1, m: 2, n: 2, k: 3, transA: false, transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0,
    strideC: 0, lda: 3, ldb: 2, ldc: 2, precision,
  };
}
const disposeArgs = (args: Record<string, unknown>) => {
  for (const v of Object.values(args)) if (v instanceof native.NativeBuffer) v.dispose();
};

// Runs once: the precision policy is host state, and its kernel checks are the CPU addon's own argument checks.
describe('matmul precision: per call, autocast scopes, the default', () => {
  afterEach(() => dv.setMatmulPrecision(envPrecision as dv.MatmulPrecision));

  test('defaults to float32 (or DIFFVIT_MATMUL_PRECISION), round-trips, reported by runtimeInfo', () => {
    expect(dv.getMatmulPrecision()).toBe(envPrecision);
    expect(dv.matmulPrecision()).toBe(envPrecision);
    dv.setMatmulPrecision('bf16');
    expect(dv.getMatmulPrecision()).toBe('bf16');
    expect(dv.matmulPrecision()).toBe('bf16');
    expect(dv.runtimeInfo().matmulPrecision).toBe('bf16');
    dv.setMatmulPrecision('float32');
    expect(dv.getMatmulPrecision()).toBe('float32');
    expect(dv.matmulPrecision()).toBe('float32');
    expect(dv.runtimeInfo().matmulPrecision).toBe('float32');
  });

  test('autocast scopes: the innermost wins, the default is untouched, a throw restores the outer scope', () => {
    dv.setMatmulPrecision('float32');
    const seen: string[] = [];
    const result = dv.autocast('bf16', () => {
      seen.push(dv.matmulPrecision());
      dv.autocast('float32', () => {
        seen.push(dv.matmulPrecision());
        dv.autocast('bf16', () => seen.push(dv.matmulPrecision()));
        seen.push(dv.matmulPrecision());
      });
      expect(() => dv.autocast('float32', () => {
        seen.push(dv.matmulPrecision());
        throw new Error('inside');
      })).toThrow('inside');
      seen.push(dv.matmulPrecision());
      // The default is what outside-scope code gets; setting it inside a scope does not override the scope.
      expect(dv.getMatmulPrecision()).toBe('float32');
      dv.setMatmulPrecision('bf16');
      seen.push(dv.matmulPrecision());
      dv.setMatmulPrecision('float32');
      return 42;
    });
    expect(result).toBe(42);
    expect(seen).toEqual(['bf16', 'float32', 'bf16', 'float32', 'float32', 'bf16', 'bf16']);
    expect(dv.matmulPrecision()).toBe('float32');
    expect(dv.getMatmulPrecision()).toBe('float32');
    dv.setMatmulPrecision('bf16');
    expect(dv.autocast('float32', () => dv.matmulPrecision())).toBe('float32');
    expect(dv.matmulPrecision()).toBe('bf16');
  });

  test('bad values throw naming the argument and the choices, and change nothing', () => {
    dv.setMatmulPrecision('bf16');
    const set = dv.setMatmulPrecision as (p: unknown) => void;
    const expected = "diffvit.setMatmulPrecision: argument 'precision' expected one of 'float32', 'bf16', received";
    expect(() => set('fp16')).toThrow(`${expected} 'fp16'`);
    expect(() => set('BF16')).toThrow(`${expected} 'BF16'`);
    expect(() => set('highest')).toThrow(`${expected} 'highest'`);
    expect(() => set(16)).toThrow(`${expected} 16`);
    expect(() => set(undefined)).toThrow(expected);
    expect(dv.getMatmulPrecision()).toBe('bf16');

    const autocast = dv.autocast as (p: unknown, fn: () => unknown) => unknown;
    let ran = false;
    expect(() => autocast('float16', () => (ran = true)))
      .toThrow("diffvit.autocast: argument 'precision' expected one of 'float32', 'bf16', received 'float16'");
    expect(() => autocast(null, () => (ran = true))).toThrow("diffvit.autocast: argument 'precision' expected one of 'float32', 'bf16', received null");
    expect(ran).toBe(false);
    expect(dv.matmulPrecision()).toBe('bf16');
    expect(dv.autocast('float32', () => dv.matmulPrecision())).toBe('float32'); // no scope was left behind

    // The kernels check the precision they are given (every call passes one: there is no global).
    const gemm = native.gemm as (args: unknown) => void;
    for (const [value, received] of [['fp16', "'fp16'"], ['BF16', "'BF16'"], [1, '1'], [null, 'null'], [undefined, 'undefined']] as const) {
      const args = gemmArgs(value);
      try {
        expect(() => gemm(args)).toThrow(`diffvit.gemm: argument 'precision' expected one of 'float32', 'bf16', received ${received}`);
      } finally {
        disposeArgs(args);
      }
    }
    const args = gemmArgs('bf16');
    try {
      const { precision: _p, ...noPrecision } = args;
      void _p;
      expect(() => gemm(noPrecision)).toThrow("diffvit.gemm: argument 'precision' expected a value (the argument is missing), received no such key");
      gemm(args);
      expect(Array.from((args.c as NativeBuffer).read(0, 4))).toEqual([22, 28, 49, 64]);
    } finally {
      disposeArgs(args);
    }
    const linearAct = native.linearAct as (args: unknown) => void;
    const x = makeBuffer([1, 2, 3]), w = makeBuffer([1, 2, 3, 4, 5, 6]), out = makeBuffer([0, 0]);
    try {
      const lin = (precision: unknown) => ({
        x, xOffset: 0, weight: w, weightOffset: 0, weightTransposed: false, ldw: 3, bias: null, biasOffset: 0, out, outOffset: 0,
        pre: null, preOffset: 0, rows: 1, outFeatures: 2, inFeatures: 3, act: 'none', precision,
      });
      expect(() => linearAct(lin('half'))).toThrow("diffvit.linearAct: argument 'precision' expected one of 'float32', 'bf16', received 'half'");
      linearAct(lin('float32'));
      expect(Array.from(out.read(0, 2))).toEqual([14, 32]);
    } finally {
      x.dispose();
      w.dispose();
      out.dispose();
    }
  });

  // The default is read from DIFFVIT_MATMUL_PRECISION on first use (not at import). A fresh
  // instance of lib/tensor/autocast.ts (vi.resetModules) has not read it yet.
  test('DIFFVIT_MATMUL_PRECISION sets the initial precision; an invalid value errors until one is set', async () => {
    const saved = process.env.DIFFVIT_MATMUL_PRECISION;
    const fresh = async (value: string | undefined) => {
      vi.resetModules();
      delete process.env.DIFFVIT_MATMUL_PRECISION;
      const m = await import('../lib/tensor/autocast.js');
      // Set after the import: the module must read it lazily.
      if (value !== undefined) process.env.DIFFVIT_MATMUL_PRECISION = value;
      return m;
    };
    const run = async (value: string | undefined) => {
      const m = await fresh(value);
      const get = () => {
        try {
          return m.getMatmulPrecision();
        } catch (e) {
          return 'error: ' + (e as Error).message;
        }
      };
      const first = get(), again = get();
      const inScope = m.autocast('float32', () => m.matmulPrecision()); // a scope never reads the default
      m.setMatmulPrecision('float32');
      return [first, again, inScope, get(), m.matmulPrecision()];
    };
    try {
      expect(await run('bf16')).toEqual(['bf16', 'bf16', 'float32', 'float32', 'float32']);
      expect(await run('float32')).toEqual(['float32', 'float32', 'float32', 'float32', 'float32']);
      expect(await run('')).toEqual(['float32', 'float32', 'float32', 'float32', 'float32']);
      expect(await run(undefined)).toEqual(['float32', 'float32', 'float32', 'float32', 'float32']);
      const error = "error: diffvit.matmulPrecision: DIFFVIT_MATMUL_PRECISION expected 'float32' or 'bf16', received 'bfloat16'";
      expect(await run('bfloat16')).toEqual([error, error, 'float32', 'float32', 'float32']);
      // Outside a scope, a GEMM's precision (matmulPrecision()) errors too, rather than running float32.
      const m = await fresh('bfloat16');
      expect(() => m.matmulPrecision()).toThrow("DIFFVIT_MATMUL_PRECISION expected 'float32' or 'bf16', received 'bfloat16'");
      expect(m.autocast('bf16', () => m.matmulPrecision())).toBe('bf16');
      // Once read, the environment no longer matters.
      const once = await fresh('bf16');
      expect(once.getMatmulPrecision()).toBe('bf16');
      process.env.DIFFVIT_MATMUL_PRECISION = 'float32';
      expect(once.getMatmulPrecision()).toBe('bf16');
    } finally {
      if (saved === undefined) delete process.env.DIFFVIT_MATMUL_PRECISION;
      else process.env.DIFFVIT_MATMUL_PRECISION = saved;
      vi.resetModules();
    }
  });
});

describeEachBackend('gemm at bf16 precision', ({ device, level: cpuLevel }) => {
  const level = cpuLevel ? `cpu ${cpuLevel}` : device;
  afterEach(() => dv.setMatmulPrecision(envPrecision as dv.MatmulPrecision));

  test.each(TRANSPOSES)('transA %s transB %s, odd sizes', (transA, transB) => {
    record(checkOddSizes(transA, transB, level), 'odd sizes');
  });

  test.each(LARGE_K.map((t) => [t.batch, t.m, t.n, t.k, t.transA, t.transB, t.alpha, t.beta, t] as const))(
    'batch %i, %i x %i x k %i, transA %s transB %s, alpha %f beta %f', (...args) => {
      const t = args[8];
      record(checkBf16(t, runGemm(t, 'bf16'), `${level} ${JSON.stringify(t)}`), 'large k');
    });

  test('batch broadcast of A or B (stride 0)', () => {
    for (const [broadcastA, broadcastB] of [[true, false], [false, true], [true, true]]) {
      const t: Case = { batch: 3, m: 17, n: 33, k: 65, transA: broadcastA, transB: !broadcastB, alpha: 1.5, beta: 0.25,
        pad: [1, 2, 3], broadcastA, broadcastB, seed: 19 };
      checkBf16(t, runGemm(t, 'bf16'), `${level} ${JSON.stringify(t)}`);
    }
  });

  // k = 1 against B = 1 returns bf16(A) itself: the rounding rule, value by value.
  test('operands are rounded as VCVTNEPS2BF16 rounds: ties to even, subnormals to zero, NaN, infinities', () => {
    const one = 1 + 2 ** -7; // 1 ulp above 1 in bf16
    const values = [
      1 + 2 ** -8, one + 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -9, 3.0000002, Math.fround(1 / 3),
      65504.5, 3.4028234663852886e38, -3.4028234663852886e38, 1e-39, -1e-40, 1.1754943508222875e-38, Infinity, -Infinity, NaN, 0, -0,
    ];
    const A = deviceBuffer(values), B = deviceBuffer([1]), C = deviceBuffer(new Float32Array(values.length));
    try {
      runKernel('gemm', {
        a: A, aOffset: 0, b: B, bOffset: 0, c: C, cOffset: 0, batch: 1, m: values.length, n: 1, k: 1, transA: false,
        transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 0, lda: 1, ldb: 1, ldc: 1,
        precision: 'bf16',
      });
      const got = Array.from(readBuffer(C));
      const want = values.map(bf16);
      expect(want.slice(0, 4)).toEqual([1, 1 + 2 ** -6, -1, one]); // the rule itself, spelled out
      // (A sum that starts at +0 cannot show -0: compared by value, NaN as NaN.)
      got.forEach((g, i) => expect(g === want[i] || (Number.isNaN(g) && Number.isNaN(want[i])), `bf16(${values[i]}) = ${g}, expected ${want[i]}`).toBe(true));
    } finally {
      A.dispose();
      B.dispose();
      C.dispose();
    }
  });

  test('bf16 results differ from float32 ones (the argument takes effect) and float32 ones are unchanged by it', () => {
    const t: Case = { batch: 1, m: 33, n: 40, k: 300, transA: false, transB: true, alpha: 1, beta: 0, seed: 23 };
    const before = runGemm(t, 'float32').c;
    const low = runGemm(t, 'bf16').c;
    // Neither the process default nor an autocast scope reaches a kernel: only its argument does.
    dv.setMatmulPrecision('bf16');
    const after = dv.autocast('bf16', () => runGemm(t, 'float32').c);
    dv.setMatmulPrecision('float32');
    const lowAgain = dv.autocast('float32', () => runGemm(t, 'bf16').c);
    expect(bits(after)).toEqual(bits(before));
    expect(bits(lowAgain)).toEqual(bits(low));
    let differ = 0;
    for (let i = 0; i < low.length; i++) if (low[i] !== before[i]) differ++;
    // bf16 rounding moves almost every dot product of 300 random terms.
    expect(differ).toBeGreaterThan(0.9 * t.m * t.n);
  });

  // Every GEMM of these ops, forward and backward, sees bf16 operands: with bf16-exact inputs and
  // output gradient the float32 run computes the same products. The emulated path is then
  // bit-identical (same fp32 kernel on the same panels); vdpbf16ps adds each k pair in its own
  // order, so only close. The precision is the default's, or an autocast scope's around the
  // forward: the backward's GEMMs run at the forward's precision wherever backward() is called.
  test('linear, linearGelu (GEMM epilogue), matmul and conv2d honour the precision in both directions', () => {
    const exactSame = cpuLevel !== null && dv.runtimeInfo().bf16Path.path === 'emulated';
    const cases: [string, number[][], (...xs: dv.Tensor[]) => dv.Tensor][] = [
      ['linear', [[17, 65], [33, 65], [33]], (x, w, b) => dv.linear(x, w, b)],
      ['linearGelu', [[17, 65], [33, 65], [33]], (x, w, b) => dv.linearGelu(x, w, b)],
      ['matmul', [[2, 17, 65], [2, 65, 3]], (a, b) => dv.matmul(a, b)],
      ['conv2d', [[2, 3, 9, 9], [5, 3, 3, 3], [5]], (x, w, b) => dv.conv2d(x, w, b, { padding: 1 })],
    ];
    cases.forEach(([name, shapes, op], ci) => {
      const inputs = shapes.map((s, i) => toF32(randomValues(s.reduce((p, d) => p * d, 1), 50 + 10 * ci + i)));
      const other = (p: dv.MatmulPrecision): dv.MatmulPrecision => (p === 'bf16' ? 'float32' : 'bf16');
      const run = (precision: dv.MatmulPrecision, xs: Float64Array[], grad: (n: number) => Float64Array, how: 'default' | 'autocast' = 'default') => {
        // 'autocast': the default is the other precision, the forward runs in autocast(precision)
        // and the backward in autocast(the other one).
        dv.setMatmulPrecision(how === 'default' ? precision : other(precision));
        return dv.scope(() => {
          const ts = xs.map((v, i) => fromValues(v, shapes[i], true));
          const y = how === 'default' ? op(...ts) : dv.autocast(precision, () => op(...ts));
          const backward = () => y.backward({ grad: fromValues(grad(y.size), y.shape) });
          if (how === 'default') backward();
          else dv.autocast(other(precision), backward);
          return [y.data(), ...ts.map((t) => t.grad!.data())];
        });
      };
      const g = (n: number) => roundAll(toF32(randomValues(n, 99)));
      const low = run('bf16', inputs, g);
      // The first two inputs are the GEMM operands; a bias is added in fp32 at either precision.
      const ref = run('float32', inputs.map((v, i) => (i < 2 ? roundAll(v) : v)), g);
      const plain = run('float32', inputs, g);
      const same = (a: ArrayLike<number>[], b: ArrayLike<number>[], what: string) =>
        a.forEach((v, i) => expect(bits(Float32Array.from(v)), `${name} ${what} output ${i}`).toEqual(bits(Float32Array.from(b[i]))));
      same(run('bf16', inputs, g, 'autocast'), low, 'bf16 by autocast vs by default');
      same(run('float32', inputs, g, 'autocast'), plain, 'float32 by autocast vs by default');
      low.forEach((v, i) => {
        const what = `${name} ${i === 0 ? 'forward' : `d/dinput${i - 1}`}`;
        if (name === 'linearGelu' && i > 0) {
          // Its backward GEMMs read dh = dout·gelu'(h), computed inside the op, which bf16 rounds
          // and the pre-rounded float32 reference does not: close at bf16 accuracy only (of the largest gradient).
          const scale = ref[i].reduce((m, r) => Math.max(m, Math.abs(r)), 0);
          expectClose(v, ref[i], { dtype: 'bf16', kind: 'epilogue', grad: true, scale: new Float64Array(v.length).fill(scale) }, what);
        } else if (exactSame) {
          expect(bits(Float32Array.from(v)), what).toEqual(bits(Float32Array.from(ref[i])));
        } else {
          expectClose(v, ref[i], { dtype: 'bf16', kind: 'order', grad: i > 0 }, what);
        }
        // The bias gradient is a sum, not a GEMM: it may equal float32's; GEMM outputs may not.
        const biasGrad = shapes.length === 3 && i === 3;
        if (!biasGrad) expect(bits(Float32Array.from(v)), `${what} differs from float32`).not.toEqual(bits(Float32Array.from(plain[i])));
      });
    });
  });
});

// Which bf16 micro-kernel runs, and thread counts, are the CPU backend's: per CPU level, not per backend.
describeEachLevel('gemm at bf16 precision on the CPU', (level) => {
  afterEach(() => {
    dv.setThreads(defaultThreads);
    dv.setMatmulPrecision(envPrecision as dv.MatmulPrecision);
  });

  test('runs on AMX, else vdpbf16ps, exactly where the level and the CPU allow it', () => {
    const info = dv.runtimeInfo(), f = info.cpuFeatures;
    const expected = level !== 'avx512' || !f.avx512bf16 ? 'emulated' : f.amxTile && f.amxBf16 ? 'amx' : 'avx512bf16';
    expect(info.bf16Path.path).toBe(expected);
    expect(native.bf16GemmPath().path).toBe(expected);
  });

  test('results do not depend on the thread count', () => {
    const cases: Case[] = [
      { batch: 1, m: 130, n: 100, k: 1101, transA: false, transB: true, alpha: 1, beta: 0, seed: 29 },
      { batch: 3, m: 65, n: 64, k: 65, transA: false, transB: false, alpha: 0.5, beta: 1, pad: [0, 3, 1], seed: 31 },
      { batch: 1, m: 64, n: 1000, k: 300, transA: true, transB: false, alpha: 1, beta: 0, seed: 37 },
      // M parts sharing one packed B over 2 column blocks (n > NC) and 2 K blocks
      { batch: 1, m: 230, n: 3100, k: 1030, transA: false, transB: true, alpha: 1, beta: 0.5, seed: 41 },
    ];
    for (const t of cases) {
      dv.setThreads(1);
      const run = runGemm(t, 'bf16'), one = bits(run.c);
      checkBf16(t, run, `${level} ${JSON.stringify(t)} with 1 thread`);
      for (const threads of [2, 3]) {
        dv.setThreads(threads);
        const many = bits(runGemm(t, 'bf16').c);
        expect(many.findIndex((v, i) => v !== one[i]), `${JSON.stringify(t)}: first element that differs with ${threads} threads`).toBe(-1);
      }
    }
  });
});

// Each native kernel where the CPU has two (AMX and vdpbf16ps): the GEMM cases above on each, and
// the limit's own behaviour.
describe.each(dv.runtimeInfo().cpuLevel === 'avx512' ? bf16Paths().filter((p) => p !== 'emulated') : [])('gemm at bf16 precision on %s [cpu avx512]', (path) => {
  beforeAll(() => setBf16PathLimit(path));
  afterAll(() => {
    setBf16PathLimit('amx');
    dv.setThreads(defaultThreads);
  });

  test('the limit selects it, and the emulated path below it', () => {
    expect(native.bf16GemmPath().path).toBe(path);
    setBf16PathLimit('emulated');
    expect(native.bf16GemmPath().path).toBe('emulated');
    setBf16PathLimit(path);
    expect(() => native.setBf16PathLimit('fp8' as Bf16GemmPath)).toThrow(/setBf16PathLimit.*first.*'amx', 'avx512bf16', 'emulated'/);
  });

  test.each(TRANSPOSES)('transA %s transB %s, odd sizes', (transA, transB) => {
    record(checkOddSizes(transA, transB, path), `${path} odd sizes`);
  });

  test('large k, and the same bits on 1, 2 and 3 threads', () => {
    for (const t of LARGE_K) {
      dv.setThreads(1);
      const run = runGemm(t, 'bf16'), one = bits(run.c);
      record(checkBf16(t, run, `${path} ${JSON.stringify(t)}`), `${path} large k`);
      for (const threads of [2, 3]) {
        dv.setThreads(threads);
        expect(bits(runGemm(t, 'bf16').c).findIndex((v, i) => v !== one[i]), `${path} ${JSON.stringify(t)}: first element that differs with ${threads} threads`).toBe(-1);
      }
    }
  });
});

/** The matmulPrecision of the train config stored in a checkpoint's safetensors header. */
function storedPrecision(ckpt: string): string | undefined {
  // The safetensors header: 8-byte little-endian length, then JSON with the __metadata__ strings.
  const bytes = readFileSync(ckpt), len = Number(bytes.readBigUInt64LE(0));
  const meta = (JSON.parse(bytes.subarray(8, 8 + len).toString('utf8')) as { __metadata__: { train_config: string } }).__metadata__;
  return (JSON.parse(meta.train_config) as dv.TrainConfig).matmulPrecision;
}

describe('diffvit train --precision', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'diffvit-bf16-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    dv.setMatmulPrecision(envPrecision as dv.MatmulPrecision);
  });

  test('rejects unknown precisions', async () => {
    await expect(trainCommand(['--precision', 'fp16'])).rejects.toThrow("diffvit train: --precision P expected one of float32, bf16, received 'fp16'");
  });

  // The run's precision lives in its config (and checkpoints); the process default is never changed.
  test('applies the precision, stores it in the train config, and a resumed run keeps it', async () => {
    const config = join(dir, 'tiny.json');
    writeFileSync(config, JSON.stringify({ model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 1, heads: 1, num_classes: 4 } }));
    const out = join(dir, 'run');
    const common = ['--batch', '2', '--out', out, '--sample-every', '0', '--checkpoint-every', '1'];
    dv.setMatmulPrecision('float32');
    expect(await trainCommand(['--config', config, '--precision', 'bf16', '--steps', '1', ...common])).toBe(0);
    expect(dv.getMatmulPrecision()).toBe('float32');
    const ckpt = join(out, 'checkpoint.safetensors');
    const stored = () => storedPrecision(ckpt);
    expect(stored()).toBe('bf16');

    expect(await trainCommand(['--resume', ckpt, ...common, '--steps', '2'])).toBe(0);
    expect(dv.getMatmulPrecision()).toBe('float32');
    expect(stored()).toBe('bf16');

    dv.setMatmulPrecision('bf16');
    expect(await trainCommand(['--resume', ckpt, ...common, '--steps', '3', '--precision', 'float32'])).toBe(0);
    expect(dv.getMatmulPrecision()).toBe('bf16');
    expect(stored()).toBe('float32');
    // A resumed run without --precision keeps the stored one, not the process default.
    expect(await trainCommand(['--resume', ckpt, ...common, '--steps', '4'])).toBe(0);
    expect(stored()).toBe('float32');
    expect(dv.getMatmulPrecision()).toBe('bf16');
  });

  test('without --precision or DIFFVIT_MATMUL_PRECISION a run uses bf16 where the CPU has AMX or AVX512_BF16, else float32', async () => {
    const config = join(dir, 'tiny-default.json');
    writeFileSync(config, JSON.stringify({ model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 1, heads: 1, num_classes: 4 } }));
    const out = join(dir, 'run-default'), ckpt = join(out, 'checkpoint.safetensors');
    const saved = process.env.DIFFVIT_MATMUL_PRECISION;
    delete process.env.DIFFVIT_MATMUL_PRECISION;
    const train = async () => {
      rmSync(out, { recursive: true, force: true });
      expect(await trainCommand(['--config', config, '--steps', '1', '--batch', '2', '--out', out, '--sample-every', '0'])).toBe(0);
      return storedPrecision(ckpt);
    };
    try {
      dv.setMatmulPrecision('float32');
      const expected = dv.runtimeInfo().bf16Path.path !== 'emulated' ? 'bf16' : 'float32';
      expect(await train()).toBe(expected);
      // The process default is neither the run's source nor changed by it.
      dv.setMatmulPrecision(expected === 'bf16' ? 'float32' : 'bf16');
      expect(await train()).toBe(expected);
      expect(dv.getMatmulPrecision()).toBe(expected === 'bf16' ? 'float32' : 'bf16');
      process.env.DIFFVIT_MATMUL_PRECISION = 'float32';
      expect(await train()).toBe('float32');
      process.env.DIFFVIT_MATMUL_PRECISION = 'bf16';
      expect(await train()).toBe('bf16');
      process.env.DIFFVIT_MATMUL_PRECISION = 'bfloat16';
      await expect(train()).rejects.toThrow("DIFFVIT_MATMUL_PRECISION expected float32 or bf16, received 'bfloat16'");
    } finally {
      if (saved === undefined) delete process.env.DIFFVIT_MATMUL_PRECISION;
      else process.env.DIFFVIT_MATMUL_PRECISION = saved;
      dv.setMatmulPrecision(envPrecision as dv.MatmulPrecision);
    }
  });

  test('a library Trainer steps at its config\'s precision and leaves the process precision alone', () => {
    const model = { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 1, heads: 1, num_classes: 4 } as const;
    const loss = (matmulPrecision: dv.MatmulPrecision) => {
      const trainer = new dv.Trainer({ ...dv.DEFAULT_TRAIN_CONFIG, model, data: { kind: 'shapes' }, batchSize: 2, matmulPrecision });
      try {
        return trainer.trainStep().gradNorm; // (the loss of step 0 is GEMM-free: adaLN-Zero outputs 0)
      } finally {
        trainer.dispose();
      }
    };
    dv.setMatmulPrecision('float32');
    const low = loss('bf16');
    expect(dv.getMatmulPrecision()).toBe('float32');
    const full = loss('float32');
    expect(low).not.toBe(full);
    expectClose([low], [full], { dtype: 'bf16', kind: 'trainStep' }, 'gradient norm, bf16 vs float32');
    dv.setMatmulPrecision('bf16');
    expect(loss('float32')).toBe(full);
    expect(dv.getMatmulPrecision()).toBe('bf16');
  });
});
