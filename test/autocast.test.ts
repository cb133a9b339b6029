/**
 * GEMM precision is captured when the forward runs (like torch.autocast): the backward GEMMs of
 * matmul, linear, linearGelu and conv2d use the precision their forward saw, wherever backward()
 * is called.
 */
import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { describeEachBackend, expectClose, fromValues, randomValues, toF32 } from './helpers.js';

type Mode = 'bf16 inside' | 'bf16 forward only' | 'float32' | 'float32 forward inside bf16';

interface Case {
  name: string;
  shapes: number[][];
  run: (t: dv.Tensor[]) => dv.Tensor;
  /** Inputs whose gradient goes through a GEMM (bias gradients may not). */
  gemmGrads: number[];
}

const CASES: Case[] = [
  { name: 'matmul', shapes: [[3, 40], [40, 5]], run: ([a, b]) => dv.matmul(a, b), gemmGrads: [0, 1] },
  { name: 'matmul (batched, transposed b)', shapes: [[2, 3, 40], [5, 40]], run: ([a, b]) => dv.matmul(a, b.transpose(0, 1)), gemmGrads: [0, 1] },
  { name: 'linear', shapes: [[4, 40], [6, 40], [6]], run: ([x, w, b]) => dv.linear(x, w, b), gemmGrads: [0, 1] },
  { name: 'linearGelu', shapes: [[4, 40], [6, 40], [6]], run: ([x, w, b]) => dv.linearGelu(x, w, b), gemmGrads: [0, 1, 2] },
  { name: 'conv2d', shapes: [[2, 3, 6, 6], [4, 3, 3, 3], [4]], run: ([x, w, b]) => dv.conv2d(x, w, b, { padding: 1 }), gemmGrads: [0, 1] },
  { name: 'conv2d (pointwise)', shapes: [[2, 8, 4, 4], [5, 8, 1, 1]], run: ([x, w]) => dv.conv2d(x, w), gemmGrads: [0, 1] },
];

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** The inputs' gradients (as bit patterns) for the backward of sum(dy * op(inputs)), the precision scoped as `mode` says. */
function gradients(c: Case, mode: Mode): number[][] {
  return dv.scope(() => {
    const inputs = c.shapes.map((s, i) => fromValues(randomValues(size(s), 10 + i), s, true));
    const forward = () => c.run(inputs);
    const backward = (y: dv.Tensor) => y.backward({ grad: fromValues(randomValues(y.size, 99), y.shape) });
    if (mode === 'bf16 inside') dv.autocast('bf16', () => backward(forward()));
    else if (mode === 'bf16 forward only') backward(dv.autocast('bf16', forward));
    else if (mode === 'float32') dv.autocast('float32', () => backward(forward()));
    else dv.autocast('bf16', () => backward(dv.autocast('float32', forward)));
    return inputs.map((t) => {
      const g = t.grad!;
      t.grad = null;
      const bits = Array.from(new Uint32Array(g.data().buffer));
      g.dispose();
      return bits;
    });
  });
}

describeEachBackend('backward GEMMs run at the precision of their forward', () => {
  for (const c of CASES) {
    test(`${c.name}: backward() outside autocast('bf16') gives the gradients of running both inside`, () => {
      const inside = gradients(c, 'bf16 inside');
      expect(gradients(c, 'bf16 forward only')).toEqual(inside);
      // bf16 rounding of the operands shows in every gradient that goes through a GEMM.
      const fp32 = gradients(c, 'float32');
      for (const i of c.gemmGrads) expect(inside[i], `input ${i}: bf16 and float32 gradients`).not.toEqual(fp32[i]);
    });

    test(`${c.name}: a float32 forward inside a bf16 scope keeps float32 for its backward`, () => {
      expect(gradients(c, 'float32 forward inside bf16')).toEqual(gradients(c, 'float32'));
    });
  }
});

test('bf16 gradients of matmul stay within the bf16 row of the tolerance table of the exact float64 ones', () => {
  const [m, k, n] = [3, 40, 5];
  const a = toF32(randomValues(m * k, 1)), b = toF32(randomValues(k * n, 2)), dy = toF32(randomValues(m * n, 3));
  const [da, db] = dv.scope(() => {
    const at = fromValues(a, [m, k], true), bt = fromValues(b, [k, n], true);
    dv.autocast('bf16', () => dv.matmul(at, bt)).backward({ grad: fromValues(dy, [m, n]) });
    const out = [at.grad!.data(), bt.grad!.data()];
    at.grad!.dispose();
    bt.grad!.dispose();
    return out;
  });
  // dA = dy Bᵀ, dB = Aᵀ dy in float64.
  const refA = new Float64Array(m * k), refB = new Float64Array(k * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) {
    refA[i * k + p] += dy[i * n + j] * b[p * n + j];
    refB[p * n + j] += a[i * k + p] * dy[i * n + j];
  }
  expectClose(da, refA, { dtype: 'bf16', grad: true }, 'dA (bf16)');
  expectClose(db, refB, { dtype: 'bf16', grad: true }, 'dB (bf16)');
});
