/**
 * Reductions on every backend: sum and mean over any axes (the reduceSum kernel's row sums, column
 * sums and the split paths for long rows or few columns) and sumSquares over many tensors at once,
 * against float64 references.
 */
import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { checkOp, describeEachBackend, expectClose, fromValues, randomValues, toF32 } from './helpers.js';

/** float64 sum of x (shape) over `axes`, keeping the other axes in order. */
function sumRef(shape: number[], axes: number[]) {
  return (x: Float64Array): Float64Array => {
    const outShape = shape.filter((_, d) => !axes.includes(d));
    const out = new Float64Array(outShape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < x.length; i++) {
      let rem = i, o = 0, stride = 1;
      for (let d = shape.length - 1; d >= 0; d--) {
        const k = rem % shape[d];
        rem = Math.floor(rem / shape[d]);
        if (!axes.includes(d)) {
          o += k * stride;
          stride *= shape[d];
        }
      }
      out[o] += x[i];
    }
    return out;
  };
}

// [shape, axes]: short and long rows (inner 1), column sums with many or few columns (the split
// over r), middle axes, and empty reductions.
const SUMS: [number[], number[]][] = [
  [[17], [0]],
  [[3, 5], [1]],
  [[65, 3], [0]],
  [[4, 257], [1]],
  [[2, 9000], [1]],
  [[1, 70000], [1]],
  [[5000, 40], [0]],
  [[3, 700, 65], [1]],
  [[2, 3, 4, 5], [0, 2]],
  [[7, 0, 3], [1]],
];

describeEachBackend('sum and mean', ({ device }) => {
  test.each(SUMS)('sum of %j over axes %j', (shape, axes) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = randomValues(n, n + 1);
    if (n <= 2000) {
      // Values and the gradient (against central differences of the reference).
      checkOp('sum', (x) => dv.sum(x, axes), sumRef(shape, axes), [{ values, shape }], { dtype: 'float32' });
      return;
    }
    dv.scope(() => {
      const out = dv.sum(fromValues(toF32(values), shape), axes);
      expect(out.device).toBe(device);
      expectClose(out.data(), sumRef(shape, axes)(toF32(values)), { dtype: 'float32', kind: 'longSum' }, 'sum');
    });
  });

  test('mean over all axes and over the last one, keepDims', () => {
    const x = toF32(randomValues(6 * 33, 5));
    dv.scope(() => {
      const t = fromValues(x, [6, 33]);
      expectClose(dv.mean(t).data(), [x.reduce((a, b) => a + b, 0) / x.length], { dtype: 'float32' }, 'mean()');
      const m = dv.mean(t, -1, true);
      expect(m.shape).toEqual([6, 1]);
      expect(m.device).toBe(device);
      const want = Array.from({ length: 6 }, (_, r) => x.slice(r * 33, r * 33 + 33).reduce((a, b) => a + b, 0) / 33);
      expectClose(m.data(), want, { dtype: 'float32' }, 'mean(-1)');
    });
  });

  test('sums are the same bits run after run, and a sum over an empty axis is zeros', () => {
    dv.scope(() => {
      const t = fromValues(randomValues(3 * 50000, 9), [3, 50000]);
      const a = dv.sum(t, 1).data(), b = dv.sum(t, 1).data();
      expect(Array.from(b)).toEqual(Array.from(a));
      const c = dv.sum(dv.transpose(t, 0, 1), 0).data();
      expectClose(c, a, { dtype: 'float32', kind: 'longSum' }, 'sum over a transposed view');
      expect(Array.from(dv.sum(dv.zeros([4, 0, 2], { device }), 1).data())).toEqual(new Array(8).fill(0));
    });
  });
});

describeEachBackend('sumSquares', ({ device }) => {
  const sq = (values: Float64Array) => values.reduce((a, v) => a + v * v, 0);

  test('many tensors in one call: empty, scalar, strided and large (several chunks), float64 accumulation', () => {
    dv.scope(() => {
      const a = toF32(randomValues(40000, 1)), b = toF32(randomValues(3 * 7, 2)), c = toF32(randomValues(1, 3));
      const ta = fromValues(a, [40000]), tb = fromValues(b, [3, 7]), tc = fromValues(c, []);
      const empty = dv.zeros([0, 5], { device });
      const out = dv.sumSquares([ta, empty, dv.transpose(tb, 0, 1), tc, ta.slice(0, 1, 39999)]);
      expect(out.device).toBe(device);
      expect(out.shape).toEqual([]);
      const want = sq(a) + sq(b) + sq(c) + sq(a.subarray(1, 39999));
      // The CPU squares and adds each vector lane in float32 within a chunk (its scalar level: one
      // lane over 40000 terms, 2.4e-6 off) before float64 takes over; CUDA is float64 throughout.
      expectClose(out.data(), [want], { dtype: 'float32', atol: 0, rtol: 1e-5 }, 'sumSquares');
      expect(Array.from(dv.sumSquares([]).data())).toEqual([0]);
      expect(Array.from(dv.sumSquares([empty]).data())).toEqual([0]);
    });
  });

  test('NaN or Inf anywhere makes the result non-finite', () => {
    dv.scope(() => {
      const values = randomValues(20000, 4);
      values[17001] = Number.POSITIVE_INFINITY;
      expect(dv.sumSquares([fromValues(randomValues(5, 5), [5]), fromValues(values, [20000])]).data()[0]).toBe(Number.POSITIVE_INFINITY);
      values[3] = Number.NaN;
      expect(Number.isNaN(dv.sumSquares([fromValues(values, [20000])]).data()[0])).toBe(true);
    });
  });
});
