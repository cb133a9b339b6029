/**
 * GroupNorm (groupNorm, groupNormAct: the native groupNorm kernels) and nearest upsampling
 * (upsampleNearest2d: views and one copy) against float64 references, with every gradient checked
 * by central differences of the reference, on every backend; errors name the op and the argument.
 */
import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { runKernel } from '../lib/backend/dispatch.js';
import { groupNorm, groupNormAct } from '../lib/ops/group_norm.js';
import { upsampleNearest2d } from '../lib/ops/upsample.js';
import { checkOp, type CloseOptions, describeEachBackend, expectClose, fromValues, randomValues, toF32 } from './helpers.js';

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// float64 references
// ---------------------------------------------------------------------------------------------

/** How a scale/shift argument is laid out: absent, one (C) row for all images, or (N, C). */
type Affine = 'none' | 'channel' | 'image';

/**
 * act(xh · scale + shift) with xh normalised over each group's channels and positions (biased
 * variance); the inputs are (x, [scale], [shift]) as flagged.
 */
function refGroupNorm(shape: number[], groups: number, eps: number, scale: Affine, shift: Affine, silu: boolean) {
  const [N, C] = shape, S = prod(shape.slice(2)), cpg = C / groups, n = cpg * S;
  return (...a: Float64Array[]) => {
    const x = a[0];
    let k = 1;
    const sc = scale === 'none' ? null : a[k++], sh = shift === 'none' ? null : a[k++];
    const at = (v: Float64Array | null, mode: Affine, b: number, c: number, dflt: number) =>
      v === null ? dflt : mode === 'channel' ? v[c] : v[b * C + c];
    const y = new Float64Array(x.length);
    for (let b = 0; b < N; b++) for (let g = 0; g < groups; g++) {
      const base = (b * C + g * cpg) * S;
      let s = 0;
      for (let i = 0; i < n; i++) s += x[base + i];
      const mu = s / n;
      let q = 0;
      for (let i = 0; i < n; i++) q += (x[base + i] - mu) ** 2;
      const rstd = 1 / Math.sqrt(q / n + eps);
      for (let i = 0; i < n; i++) {
        const c = g * cpg + Math.floor(i / S);
        const p = (x[base + i] - mu) * rstd * at(sc, scale, b, c, 1) + at(sh, shift, b, c, 0);
        y[base + i] = silu ? p / (1 + Math.exp(-p)) : p;
      }
    }
    return y;
  };
}

/** Nearest upsampling by `s` of (N, C, H, W). */
function refUpsample(shape: number[], s: number) {
  const [N, C, H, W] = shape;
  return (x: Float64Array) => {
    const y = new Float64Array(N * C * H * s * W * s);
    for (let p = 0; p < N * C; p++) for (let i = 0; i < H * s; i++) for (let j = 0; j < W * s; j++) {
      y[(p * H * s + i) * W * s + j] = x[(p * H + Math.floor(i / s)) * W + Math.floor(j / s)];
    }
    return y;
  };
}

// The layerNorm row of the tolerance table: GroupNorm has the same statistics and the same backward
// formula over runs of up to a few hundred floats; SiLU adds one vectorised exp (~1e-7).
const GN_TOL: CloseOptions = { dtype: 'float32', kind: 'layerNorm' };
const EPS = 1e-5;

/** (shape, groups): odd channel counts, spatial sizes 1 and > one vector, rank 2 to 5. */
const SHAPES: [number[], number][] = [
  [[2, 6, 5, 3], 3], [[3, 4, 1, 7], 2], [[1, 9, 17], 9], [[2, 8, 4, 4], 1], [[3, 5], 5], [[1, 6, 3, 2, 5], 2],
  [[2, 3, 9, 9], 3],
];

describeEachBackend('groupNorm', () => {
  for (const [shape, groups] of SHAPES) {
    test(`${JSON.stringify(shape)}, ${groups} groups, weight and bias`, () => {
      const C = shape[1];
      checkOp('groupNorm', (x, w, b) => groupNorm(x, groups, w, b, EPS), refGroupNorm(shape, groups, EPS, 'channel', 'channel', false), [
        { values: randomValues(prod(shape), prod(shape) + groups, 2), shape },
        { values: randomValues(C, 7 + C, 1), shape: [C] },
        { values: randomValues(C, 9 + C, 1), shape: [C] },
      ], GN_TOL);
    });
  }

  test('no affine, and a large common offset', () => {
    const shape = [2, 6, 7, 5];
    checkOp('groupNorm(no affine)', (x) => groupNorm(x, 2), refGroupNorm(shape, 2, EPS, 'none', 'none', false),
      [{ values: randomValues(prod(shape), 3, 1.5), shape }], GN_TOL);
    const offset = randomValues(prod(shape), 4, 1).map((v) => 1000 + v);
    checkOp('groupNorm(offset 1000)', (x) => groupNorm(x, 3), refGroupNorm(shape, 3, EPS, 'none', 'none', false),
      [{ values: offset, shape }], { dtype: 'float32', kind: 'offset' });
  });

  for (const silu of [false, true]) {
    for (const [scale, shift] of [['image', 'image'], ['image', 'none'], ['none', 'image'], ['channel', 'image']] as [Affine, Affine][]) {
      test(`groupNormAct: scale ${scale}, shift ${shift}, silu ${silu}`, () => {
        const shape = [3, 6, 5, 7], [N, C] = shape;
        const inputs = [{ values: randomValues(prod(shape), 31, 2), shape }];
        const affShape = (m: Affine) => (m === 'channel' ? [C] : [N, C]);
        if (scale !== 'none') inputs.push({ values: randomValues(prod(affShape(scale)), 32, 1), shape: affShape(scale) });
        if (shift !== 'none') inputs.push({ values: randomValues(prod(affShape(shift)), 33, 1), shape: affShape(shift) });
        checkOp(`groupNormAct(silu ${silu})`, (x, ...a) => {
          let k = 0;
          const sc = scale === 'none' ? null : a[k++], sh = shift === 'none' ? null : a[k++];
          return groupNormAct(x, 3, { scale: sc, shift: sh, silu, eps: EPS });
        }, refGroupNorm(shape, 3, EPS, scale, shift, silu), inputs, GN_TOL);
      });
    }
  }

  test('groupNormAct reads column slices of a (N, 2C) tensor in place: same values and gradients as contiguous copies', () => {
    const shape = [4, 8, 3, 5], [N, C] = shape;
    const xv = toF32(randomValues(prod(shape), 41, 1)), ev = toF32(randomValues(N * 2 * C, 42, 1));
    const dyv = toF32(randomValues(prod(shape), 43, 1));
    const run = (inPlace: boolean) => dv.scope(() => {
      const x = fromValues(xv, shape, true), e = fromValues(ev, [N, 2 * C], true);
      let [sc, sh] = dv.chunk(e, 2, 1);
      if (!inPlace) [sc, sh] = [dv.clone(sc), dv.clone(sh)];
      expect(sc.isContiguous()).toBe(!inPlace);
      const y = groupNormAct(x, 4, { scale: sc, shift: sh, silu: true });
      y.backward({ grad: fromValues(dyv, shape) });
      return { y: y.data(), dx: x.grad!.data(), de: e.grad!.data() };
    });
    const a = run(true), b = run(false);
    expectClose(a.y, Float64Array.from(b.y), { dtype: 'float32', kind: 'exact' }, 'y');
    expectClose(a.dx, Float64Array.from(b.dx), { dtype: 'float32', kind: 'exact' }, 'dx');
    expectClose(a.de, Float64Array.from(b.de), { dtype: 'float32', kind: 'exact' }, 'de');
  });

  test('groupNormAct equals the unfused composition (norm, mul, add, silu), gradients included', () => {
    const shape = [2, 6, 4, 3], [N, C] = shape;
    const xv = toF32(randomValues(prod(shape), 51, 1)), sv = toF32(randomValues(N * C, 52, 1)), hv = toF32(randomValues(N * C, 53, 1));
    const dyv = toF32(randomValues(prod(shape), 54, 1));
    const run = (fused: boolean) => dv.scope(() => {
      const x = fromValues(xv, shape, true), s = fromValues(sv, [N, C], true), h = fromValues(hv, [N, C], true);
      const y = fused ? groupNormAct(x, 2, { scale: s, shift: h, silu: true })
        : dv.silu(dv.add(dv.mul(groupNorm(x, 2), s.reshape([N, C, 1, 1])), h.reshape([N, C, 1, 1])));
      y.backward({ grad: fromValues(dyv, shape) });
      return [y.data(), x.grad!.data(), s.grad!.data(), h.grad!.data()];
    });
    const f = run(true), u = run(false);
    f.forEach((v, i) => expectClose(v, Float64Array.from(u[i]), { dtype: 'float32', kind: 'composition' }, `output ${i}`));
  });

  test('results do not depend on the thread count', () => {
    const shape = [16, 32, 8, 8];
    const xv = toF32(randomValues(prod(shape), 61, 1)), dyv = toF32(randomValues(prod(shape), 62, 1));
    const run = () => dv.scope(() => {
      const x = fromValues(xv, shape, true);
      const y = groupNormAct(x, 8, { silu: true });
      y.backward({ grad: fromValues(dyv, shape) });
      return [y.data(), x.grad!.data()];
    });
    const threads = dv.runtimeInfo().threads;
    const a = run();
    dv.setThreads(1);
    try {
      const b = run();
      a.forEach((v, i) => expectClose(v, Float64Array.from(b[i]), { dtype: 'float32', kind: 'exact' }, `output ${i}`));
    } finally {
      dv.setThreads(threads);
    }
  });
});

describeEachBackend('upsampleNearest2d', () => {
  test.each([[[2, 3, 4, 5], 2], [[1, 1, 1, 1], 2], [[1, 2, 3, 1], 3], [[2, 5, 7, 3], 1]] as [number[], number][])('%j by %i', (shape, s) => {
    checkOp('upsampleNearest2d', (x) => upsampleNearest2d(x, s), refUpsample(shape, s),
      [{ values: randomValues(prod(shape), prod(shape) * 7 + s, 1), shape }], { dtype: 'float32', kind: 'binary' });
  });
});

test('errors name the op, the argument and what was expected', () => {
  dv.scope(() => {
    const x = dv.randn([2, 6, 4, 4]);
    expect(() => groupNorm(x, 4)).toThrow(/diffvit\.groupNorm: argument 'groups' expected a positive integer dividing the 6 channels/);
    expect(() => groupNorm(x, 0)).toThrow(/diffvit\.groupNorm: argument 'groups'/);
    expect(() => groupNorm(x, 2, dv.ones([5]))).toThrow(/diffvit\.groupNorm: argument 'weight' expected shape \[6\]/);
    expect(() => groupNorm(x, 2, null, dv.ones([2, 6]))).toThrow(/diffvit\.groupNorm: argument 'bias' expected shape \[6\]/);
    expect(() => groupNorm(x, 2, null, null, 0)).toThrow(/diffvit\.groupNorm: argument 'eps' expected a finite number > 0/);
    expect(() => groupNorm(dv.randn([6]), 2)).toThrow(/diffvit\.groupNorm: argument 'x' expected rank >= 2/);
    expect(() => groupNormAct(x, 2, { scale: dv.ones([3, 6]) })).toThrow(/diffvit\.groupNormAct: argument 'options\.scale' expected shape \[6\] or \[2, 6\]/);
    expect(() => groupNormAct(x, 2, { silu: 1 as unknown as boolean })).toThrow(/diffvit\.groupNormAct: argument 'options\.silu' expected a boolean/);
    expect(() => upsampleNearest2d(x, 0)).toThrow(/diffvit\.upsampleNearest2d: argument 'scale' expected an integer in \[1, 1024\]/);
    expect(() => upsampleNearest2d(dv.randn([2, 3, 4]), 2)).toThrow(/diffvit\.upsampleNearest2d: argument 'x'/);
    // The kernel checks its own arguments too.
    const buf = x.buffer;
    const call = (over: Record<string, unknown>) => runKernel('groupNorm', {
      x: buf, xOffset: 0, scale: null, scaleOffset: 0, scaleStride: 0, shift: null, shiftOffset: 0, shiftStride: 0,
      y: buf, yOffset: 0, mean: null, meanOffset: 0, rstd: null, rstdOffset: 0, batch: 2, channels: 6, groups: 2,
      spatial: 16, eps: 1e-5, silu: false, ...over,
    } as Parameters<typeof runKernel<'groupNorm'>>[1]);
    expect(() => call({ groups: 4 })).toThrow(/groupNorm.*'channels' expected a multiple of groups \(4\)/);
    expect(() => call({ spatial: 17 })).toThrow(/groupNorm.*'x'/);
    expect(() => call({ scale: buf, scaleStride: 1000 })).toThrow(/groupNorm.*'scale'/);
  });
});
