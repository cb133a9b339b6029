/**
 * Shared test tools: one tolerance rule, seeded float64 inputs, finite-difference gradients of
 * float64 references, and a loop over every CPU kernel level this machine has.
 */
import { afterAll, beforeAll, describe, expect } from 'vitest';

import * as dv from '../lib/index.js';

/** |out - ref| <= atol + rtol*|ref| elementwise; returns the max relative error seen. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: { atol?: number; rtol?: number } = {},
  label = '',
): number {
  const atol = tol.atol ?? 1e-5, rtol = tol.rtol ?? 1e-4;
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
    maxRel = Math.max(maxRel, err / Math.max(Math.abs(e), atol / rtol));
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

export function fromValues(values: ArrayLike<number>, shape: readonly number[], requiresGrad = false): dv.Tensor {
  const t = dv.tensor(Float32Array.from(values), shape);
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
  tol: { atol?: number; rtol?: number; gradAtol?: number; gradRtol?: number } = {},
): { forward: number; backward: number } {
  const xs = inputs.map((i) => toF32(i.values));
  const expected = reference(...xs);
  return dv.scope(() => {
    const ts = inputs.map((inp, k) => fromValues(xs[k], inp.shape, !inp.noGrad));
    const out = op(...ts);
    const forward = expectClose(out.data(), expected, tol, `${name} forward`);
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
        { atol: tol.gradAtol ?? 1e-4, rtol: tol.gradRtol ?? 1e-3 }, `${name} d/dinput${k}`));
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

/** The CPU kernel levels this machine can run, best first. */
export function cpuLevels(): ('avx512' | 'avx2' | 'scalar')[] {
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
