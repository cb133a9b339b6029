import { test } from 'vitest';

import * as dv from '../lib/index.js';
import { checkOp, describeEachLevel, randomValues } from './helpers.js';

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

describeEachLevel('matmul', () => {
  const cases: [number, number, number, number, number][] = [
    [1, 1, 1, 1, 1], [1, 1, 3, 17, 5], [2, 2, 17, 3, 65], [3, 1, 5, 65, 17], [1, 2, 17, 17, 3],
  ];
  test.each(cases)('batch %i x %i, %i x %i @ %i', (ba, bb, m, k, n) => {
    checkOp('matmul', dv.matmul, refMatmul(ba, bb, m, k, n), [
      { values: randomValues(ba * m * k, 1), shape: [ba, m, k] },
      { values: randomValues(bb * k * n, 2), shape: [bb, k, n] },
    ], { atol: 1e-5, rtol: 1e-4 });
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
    ], { atol: 1e-5, rtol: 1e-4 });
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
      [{ values: randomValues(k * m, 6), shape: [k, m] }, { values: randomValues(n * k, 7), shape: [n, k] }]);
  });
});
