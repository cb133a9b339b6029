/**
 * Shared test tools: one tolerance table and one closeness rule, seeded float64 inputs,
 * finite-difference gradients of float64 references, and loops over every backend and every CPU
 * kernel level this machine has.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';

// ---------------------------------------------------------------------------------------------
// Tolerances
// ---------------------------------------------------------------------------------------------

/** Bounds of |out - ref| <= atol + rtol*|ref|: for values, and for gradients against a reference's. */
export interface Tolerance {
  atol: number;
  rtol: number;
  /** Gradients against central differences (h = 1e-6) or analytic gradients of the float64 reference. */
  gradAtol: number;
  gradRtol: number;
}

/**
 * The one tolerance table, keyed by the arithmetic of the result (dtype or GEMM precision) and
 * then by the kind of op; every comparison of a result with its reference goes through it
 * (`expectClose(out, ref, { dtype: 'float32', kind: 'softmax' })`). 'default' is what a kind not
 * listed gets. References are float64 computed on the float32-rounded inputs (toF32), so the
 * bounds measure the kernel's own rounding only. The op rows are 2-5x the worst error seen on
 * avx512/avx2/scalar (printed after each file by recordError).
 */
export const TOLERANCES = {
  /** float32 kernels against float64 references. */
  float32: {
    default: { atol: 1e-5, rtol: 1e-4, gradAtol: 1e-4, gradRtol: 1e-3 },
    /** Unary maps: one rounding of a float32 function (a few ulp). */
    unary: { atol: 1e-6, rtol: 2e-6, gradAtol: 1e-5, gradRtol: 1e-4 },
    /** Broadcasting add/sub/mul/div: one rounding forward, sums of broadcast gradients backward. */
    binary: { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-5, gradRtol: 1e-4 },
    softmax: { atol: 1e-7, rtol: 2e-6, gradAtol: 1e-6, gradRtol: 1e-5 },
    layerNorm: { atol: 2e-6, rtol: 1e-5, gradAtol: 2e-5, gradRtol: 1e-4 },
    /**
     * Normalising values with a large common offset (1000 ± 1): the float32 mean is only known to
     * half an ulp of 1000 (3e-5), which bounds the accuracy of x - mean.
     */
    offset: { atol: 1e-4, rtol: 1e-4, gradAtol: 2e-4, gradRtol: 1e-3 },
    /** Bit-identical (same kernel, same order of operations). */
    exact: { atol: 0, rtol: 0, gradAtol: 0, gradRtol: 0 },
  },
  /**
   * GEMMs on bf16-rounded operands (8 significant bits: 2^-9 relative per operand) with float32
   * accumulation, against the exact float64 product of the unrounded operands; for unit-scale
   * operands and inner dimensions up to ~100 (the error of a k-term sum grows as sqrt(k)).
   */
  bf16: {
    default: { atol: 3e-2, rtol: 2e-2, gradAtol: 6e-2, gradRtol: 4e-2 },
  },
  /** float64 computations against each other (a reference against another, or against exact values). */
  float64: {
    default: { atol: 1e-12, rtol: 1e-10, gradAtol: 1e-8, gradRtol: 1e-6 },
  },
} as const satisfies Record<string, { default: Tolerance } & Record<string, Tolerance>>;

export type TolDType = keyof typeof TOLERANCES;
export type TolKind = keyof (typeof TOLERANCES)['float32'];

export interface CloseOptions {
  /** The table row: the result's dtype or GEMM precision (default 'float32'). */
  dtype?: TolDType;
  /** The op kind within it (default 'default'; a kind the dtype does not list falls back to it). */
  kind?: TolKind;
  /** Compare with the gradient bounds of the row (gradAtol, gradRtol). */
  grad?: boolean;
  /** Overrides of the row's bounds for this one comparison. */
  atol?: number;
  rtol?: number;
}

/** The table's row for dtype and kind (see TOLERANCES). */
export function tolerance(dtype: TolDType = 'float32', kind: TolKind = 'default'): Tolerance {
  const row = TOLERANCES[dtype] as Record<string, Tolerance>;
  return row[kind] ?? row.default;
}

/**
 * |actual - expected| <= atol + rtol*|expected| elementwise, atol and rtol from the tolerance
 * table (options.dtype, options.kind, options.grad) unless given; a NaN on either side fails.
 * Returns the max relative error seen (relative to max(|expected|, atol / rtol)).
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: CloseOptions = {},
  label = '',
): number {
  const row = tolerance(options.dtype, options.kind);
  const atol = options.atol ?? (options.grad ? row.gradAtol : row.atol);
  const rtol = options.rtol ?? (options.grad ? row.gradRtol : row.rtol);
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = 0, worstAt = -1, maxRel = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const err = Math.abs(a - e);
    const excess = err - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worstAt < 0 || excess > worst || Number.isNaN(excess))) {
      worst = excess;
      worstAt = i;
    }
    if (err > 0) maxRel = Math.max(maxRel, err / Math.max(Math.abs(e), rtol > 0 ? atol / rtol : 0, Number.MIN_VALUE));
  }
  if (worstAt >= 0) {
    expect.fail(`${label}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (atol ${atol}, rtol ${rtol})`);
  }
  return maxRel;
}

/** Deterministic float64 values in roughly N(0, scale) (never zeros). */
export function randomValues(n: number, seed: number, scale = 1): Float64Array {
  let s = (seed * 2654435761 + 0x9e3779b9) >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

/** Rounds through float32, so the float64 reference sees exactly what the kernel sees. */
export function toF32(values: Float64Array): Float64Array {
  return Float64Array.from(Float32Array.from(values));
}

/** The device of the running describeEachBackend suite (see testDevice). */
let currentDevice = 'cpu';

/** A float32 tensor of the values on `device` (default: the device of the running describeEachBackend suite, else 'cpu'). */
export function fromValues(values: ArrayLike<number>, shape: readonly number[], requiresGrad = false,
  device: string = currentDevice): dv.Tensor {
  const t = dv.tensor(Float32Array.from(values), shape, { device });
  t.requiresGrad = requiresGrad;
  return t;
}

export interface GradInput {
  values: Float64Array;
  shape: number[];
  /** Skip the gradient check for this input (e.g. integer-like or not differentiable). */
  noGrad?: boolean;
}

/**
 * Checks an op against its float64 reference: forward values, then every input's gradient
 * against central finite differences of the *reference* (float64, h = 1e-6) for the loss
 * sum(w * f(inputs)) with random weights w. Returns the worst relative errors.
 */
export function checkOp(
  name: string,
  op: (...xs: dv.Tensor[]) => dv.Tensor,
  reference: (...xs: Float64Array[]) => Float64Array,
  inputs: GradInput[],
  tol: CloseOptions & { gradAtol?: number; gradRtol?: number } = {},
): { forward: number; backward: number } {
  const { dtype, kind } = tol;
  const xs = inputs.map((i) => toF32(i.values));
  const expected = reference(...xs);
  return dv.scope(() => {
    const ts = inputs.map((inp, k) => fromValues(xs[k], inp.shape, !inp.noGrad));
    const out = op(...ts);
    const forward = expectClose(out.data(), expected, { dtype, kind, atol: tol.atol, rtol: tol.rtol }, `${name} forward`);
    const weights = toF32(randomValues(out.size, 4242));
    out.backward({ grad: fromValues(weights, out.shape) });
    let backward = 0;
    const loss = (...a: Float64Array[]) => {
      const y = reference(...a);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += weights[i] * y[i];
      return s;
    };
    inputs.forEach((inp, k) => {
      if (inp.noGrad) return;
      const numeric = new Float64Array(xs[k].length);
      const h = 1e-6;
      for (let i = 0; i < xs[k].length; i++) {
        const saved = xs[k][i];
        xs[k][i] = saved + h;
        const up = loss(...xs);
        xs[k][i] = saved - h;
        const down = loss(...xs);
        xs[k][i] = saved;
        numeric[i] = (up - down) / (2 * h);
      }
      const grad = ts[k].grad;
      expect(grad, `${name}: input ${k} got no gradient`).not.toBeNull();
      backward = Math.max(backward, expectClose(grad!.data(), numeric,
        { dtype, kind, grad: true, atol: tol.gradAtol, rtol: tol.gradRtol }, `${name} d/dinput${k}`));
    });
    recordError(name, forward, backward);
    return { forward, backward };
  });
}

const errors = new Map<string, { forward: number; backward: number }>();
/** Keeps the worst error per op for the summary printed after each test file. */
export function recordError(name: string, forward: number, backward = 0): void {
  const e = errors.get(name) ?? { forward: 0, backward: 0 };
  errors.set(name, { forward: Math.max(e.forward, forward), backward: Math.max(e.backward, backward) });
}
afterAll(() => {
  if (!errors.size) return;
  const rows = [...errors].map(([op, e]) => `  ${op.padEnd(36)} fwd ${e.forward.toExponential(2)}  bwd ${e.backward.toExponential(2)}`);
  console.log(`max relative error vs float64 (worst over every cpu level run):\n${rows.join('\n')}`);
  errors.clear();
});

// ---------------------------------------------------------------------------------------------
// Backends and CPU levels
// ---------------------------------------------------------------------------------------------

export type CpuLevel = 'avx512' | 'avx2' | 'scalar';

/** The CPU kernel levels this machine can run, best first. */
export function cpuLevels(): CpuLevel[] {
  const all = ['avx512', 'avx2', 'scalar'] as const;
  const best = dv.runtimeInfo().cpuBestLevel;
  return all.slice(all.indexOf(best));
}

/** Runs the same tests once per CPU kernel level (the "backends" of the CPU). */
export function describeEachLevel(title: string, body: (level: 'avx512' | 'avx2' | 'scalar') => void): void {
  for (const level of cpuLevels()) {
    describe(`${title} [cpu ${level}]`, () => {
      // Levels are switched when the block's first test runs, and restored after its last.
      let previous: 'avx512' | 'avx2' | 'scalar';
      beforeAll(() => {
        previous = dv.runtimeInfo().cpuLevel;
        dv.setCpuLevel(level);
      });
      afterAll(() => dv.setCpuLevel(previous));
      body(level);
    });
  }
}

/** Where a describeEachBackend suite runs. */
export interface BackendCase {
  /** The canonical device its tensors go on: 'cpu', 'cuda:0', 'toy'... (fromValues and checkOp default to it). */
  device: string;
  /** The registered backend's name. */
  backend: string;
  /** The CPU kernel level, for the cpu backend; null for the others. */
  level: CpuLevel | null;
}

/** The device of the describeEachBackend suite running now ('cpu' outside one). */
export function testDevice(): string {
  return currentDevice;
}

/**
 * Runs the same tests once per backend registered when the file is collected — the cpu once per
 * kernel level this machine has (avx512, avx2, scalar) — each in a suite titled
 * `${title} [cpu avx2]`, `${title} [cuda:0]`... The body gets the suite's device; fromValues and
 * checkOp put their tensors there by default. Without a CUDA backend a skipped `${title} [cuda]`
 * suite records why (the addon's cudaStatus), so the report shows what did not run.
 */
export function describeEachBackend(title: string, body: (c: BackendCase) => void): void {
  const suite = (name: string, c: BackendCase) => describe(name, () => {
    // Device and level are switched when the block's first test runs, and restored after its last.
    let previousDevice = 'cpu', previousLevel: CpuLevel | null = null;
    beforeAll(() => {
      previousDevice = currentDevice;
      currentDevice = c.device;
      if (c.level) {
        previousLevel = dv.runtimeInfo().cpuLevel;
        dv.setCpuLevel(c.level);
      }
    });
    afterAll(() => {
      currentDevice = previousDevice;
      if (previousLevel) dv.setCpuLevel(previousLevel);
    });
    body(c);
  });
  const backends = dv.registeredBackends();
  for (const backend of backends) {
    if (backend === 'cpu') {
      for (const level of cpuLevels()) suite(`${title} [cpu ${level}]`, { device: 'cpu', backend, level });
    } else {
      const { device } = dv.resolveDevice(backend);
      suite(`${title} [${device}]`, { device, backend, level: null });
    }
  }
  if (!backends.includes('cuda')) {
    const reason = dv.runtimeInfo().cudaStatus;
    describe.skip(`${title} [cuda]`, () => {
      test(`no CUDA backend: ${reason}`, () => {});
    });
  }
}

/** Awkward sizes every op is tried on. */
export const ODD_SIZES = [1, 3, 17, 65, 257];

/** Row statistics of (rows, cols) x: mean and 1/sqrt(biased var + eps). */
export function refStats(x: Float64Array, rows: number, cols: number, eps: number) {
  const mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[r * cols + j];
    const mu = s / cols;
    let q = 0;
    for (let j = 0; j < cols; j++) q += (x[r * cols + j] - mu) ** 2;
    mean[r] = mu;
    rstd[r] = 1 / Math.sqrt(q / cols + eps);
  }
  return { mean, rstd };
}
