import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { checkOp, describeEachBackend, expectClose, ODD_SIZES, randomValues, toF32 } from './helpers.js';

const map = (f: (v: number) => number) => (x: Float64Array) => x.map(f);
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

// [name, op, reference, input transform (keeps inputs in the domain)]
const UNARY: [string, (x: dv.Tensor) => dv.Tensor, (v: number) => number, (v: number) => number][] = [
  ['neg', dv.neg, (v) => -v, (v) => v],
  ['exp', dv.exp, Math.exp, (v) => v],
  ['log', dv.log, Math.log, (v) => Math.abs(v) + 0.5],
  ['sqrt', dv.sqrt, Math.sqrt, (v) => Math.abs(v) + 0.5],
  ['rsqrt', dv.rsqrt, (v) => 1 / Math.sqrt(v), (v) => Math.abs(v) + 0.5],
  ['silu', dv.silu, (v) => v * sigmoid(v), (v) => 3 * v],
  ['gelu', dv.gelu, gelu, (v) => 3 * v],
  ['square', dv.square, (v) => v * v, (v) => v],
  ['abs', dv.abs, Math.abs, (v) => v],
  ['relu', dv.relu, (v) => Math.max(v, 0), (v) => v],
  ['tanh', dv.tanh, Math.tanh, (v) => 2 * v],
  ['sigmoid', dv.sigmoid, sigmoid, (v) => 3 * v],
  ['reciprocal', dv.reciprocal, (v) => 1 / v, (v) => Math.abs(v) + 0.5],
  ['sin', dv.sin, Math.sin, (v) => 3 * v],
  ['cos', dv.cos, Math.cos, (v) => 3 * v],
  ['pow(2.5)', (x) => dv.pow(x, 2.5), (v) => v ** 2.5, (v) => Math.abs(v) + 0.5],
  ['affine(-1.5, 0.25)', (x) => dv.affine(x, -1.5, 0.25), (v) => -1.5 * v + 0.25, (v) => v],
];

// Every suite runs once per backend (the cpu once per kernel level); checkOp's tensors go on its device.
describeEachBackend('unary ops', () => {
  for (const [name, op, ref, domain] of UNARY) {
    test.each(ODD_SIZES)(`${name} on %i elements`, (n) => {
      // abs/relu are not differentiable at 0; random values never land there.
      checkOp(name, op, map(ref), [{ values: randomValues(n, n).map(domain), shape: [n] }], { dtype: 'float32', kind: 'unary' });
    });
  }
});

function broadcastRef(op: (a: number, b: number) => number, as: number[], bs: number[]) {
  const out = as.map((s, i) => Math.max(s, bs[i]));
  return (a: Float64Array, b: Float64Array) => {
    const n = out.reduce((p, s) => p * s, 1);
    const r = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
      for (let d = out.length - 1; d >= 0; d--) {
        const k = rem % out[d];
        rem = Math.floor(rem / out[d]);
        ia += (as[d] === 1 ? 0 : k) * sa;
        ib += (bs[d] === 1 ? 0 : k) * sb;
        sa *= as[d];
        sb *= bs[d];
      }
      r[i] = op(a[ia], b[ib]);
    }
    return r;
  };
}

const BINARY: [string, (a: dv.Tensor, b: dv.Tensor) => dv.Tensor, (a: number, b: number) => number][] = [
  ['add', dv.add, (a, b) => a + b],
  ['sub', dv.sub, (a, b) => a - b],
  ['mul', dv.mul, (a, b) => a * b],
  ['div', dv.div, (a, b) => a / b],
];
const SHAPES: [number[], number[]][] = [
  [[17], [17]],
  [[3, 65], [1, 65]],
  [[3, 1, 17], [1, 5, 17]],
  [[2, 257], [2, 1]],
  [[1], [3, 17]],
];

describeEachBackend('binary ops with broadcasting', () => {
  for (const [name, op, ref] of BINARY) {
    test.each(SHAPES)(`${name} %j x %j`, (as, bs) => {
      const rank = Math.max(as.length, bs.length);
      const pa = [...Array(rank - as.length).fill(1), ...as], pb = [...Array(rank - bs.length).fill(1), ...bs];
      const bValues = randomValues(bs.reduce((p, s) => p * s, 1), 7).map((v) => (name === 'div' ? Math.sign(v) * (Math.abs(v) + 0.5) : v));
      checkOp(name, op, broadcastRef(ref, pa, pb), [
        { values: randomValues(as.reduce((p, s) => p * s, 1), 3), shape: as },
        { values: bValues, shape: bs },
      ], { dtype: 'float32', kind: 'binary' });
    });
  }
});

describeEachBackend('strided operands', ({ device }) => {
  test('binary ops read transposed and sliced views', () => {
    dv.scope(() => {
      const a = dv.tensor(Float32Array.from(randomValues(6 * 17, 1)), [6, 17], { device });
      const b = dv.tensor(Float32Array.from(randomValues(17 * 6, 2)), [17, 6], { device });
      const bt = b.transpose(0, 1).slice(0, 1, 5);
      const out = dv.mul(a.slice(0, 1, 5), bt);
      expect(out.device).toBe(device);
      const av = a.toArray(), bv = b.toArray();
      const expected: number[] = [];
      for (let i = 1; i < 5; i++) for (let j = 0; j < 17; j++) expected.push(Math.fround(av[i * 17 + j] * bv[j * 6 + i]));
      expectClose(out.data(), expected, { dtype: 'float32', kind: 'exact' }, 'strided mul');
    });
  });

  test('unary ops and their gradients read strided views; results stay on the device', () => {
    dv.scope(() => {
      const x = dv.tensor(Float32Array.from(randomValues(6 * 17, 3)), [6, 17], { device });
      x.requiresGrad = true;
      const v = x.transpose(0, 1).slice(0, 2, 9);
      const y = dv.exp(v);
      expect(y.device).toBe(device);
      const xv = x.toArray();
      const expected: number[] = [];
      for (let i = 2; i < 9; i++) for (let j = 0; j < 6; j++) expected.push(Math.exp(xv[j * 17 + i]));
      expectClose(y.data(), expected, { dtype: 'float32', kind: 'unary' }, 'exp of a strided view');
      dv.sum(y).backward();
      expect(x.grad!.device).toBe(device);
      // d(sum exp(v))/dx: exp(x) inside the slice, 0 outside it.
      const want = Array.from(xv, (val, at) => (at % 17 >= 2 && at % 17 < 9 ? Math.exp(val) : 0));
      expectClose(x.grad!.data(), want, { dtype: 'float32', kind: 'unary' }, 'd exp / dx through the view');
      x.grad!.dispose();
    });
  });
});

test('random draws depend only on (seed, counter), never on thread count', () => {
  const draw = () => dv.scope(() => dv.randn([1000], { generator: new dv.Generator(7) }).data());
  const a = draw();
  dv.setThreads(1);
  const b = draw();
  dv.setThreads(2);
  expect(Array.from(b)).toEqual(Array.from(a));
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
  expect(Math.abs(mean)).toBeLessThan(0.1);
  expect(Math.abs(variance - 1)).toBeLessThan(0.15);
  const u = dv.scope(() => dv.rand([1000], { generator: new dv.Generator(7), low: -2, high: 3 }).data());
  expect(Math.min(...u)).toBeGreaterThan(-2);
  expect(Math.max(...u)).toBeLessThanOrEqual(3);
});

const bitsOf = (values: Float32Array | Int32Array) => Array.from(new Uint32Array(values.slice().buffer));

// Seeded draws are a function of (seed, counter) only: every backend gives the CPU's bits.
describeEachBackend('seeded random fills', ({ device }) => {
  const draw = (on: string, kind: 'normal' | 'uniform', n: number, counter: number) => dv.scope(() => {
    const generator = new dv.Generator(7, counter);
    const t = kind === 'normal'
      ? dv.randn([n], { device: on, generator, mean: 0.5, std: 2 })
      : dv.rand([n], { device: on, generator, low: -2, high: 3 });
    expect(t.device).toBe(on);
    return bitsOf(t.data() as Float32Array);
  });

  test.each([[1, 0], [1, 1], [2, 3], [5, 1], [17, 4], [65, 5], [4099, 7], [20007, 10]])(
    'randn and rand of %i values from counter %i equal the CPU bit for bit', (n, counter) => {
      expect(draw(device, 'normal', n, counter)).toEqual(draw('cpu', 'normal', n, counter));
      expect(draw(device, 'uniform', n, counter)).toEqual(draw('cpu', 'uniform', n, counter));
    });

  test('normal_ and uniform_ into a slice at an odd offset leave the rest alone', () => {
    const fillPart = (on: string) => dv.scope(() => {
      const t = dv.full([2, 1003], -7, { device: on });
      const row = t.slice(0, 1, 2).reshape([1003]);
      const parts = [row.slice(0, 1, 500), row.slice(0, 500, 1003)];
      dv.normal_(parts[0], 1, 3, new dv.Generator(11, 3));
      dv.uniform_(parts[1], 2, 4, new dv.Generator(12, 1));
      return bitsOf(t.data() as Float32Array);
    });
    const got = fillPart(device);
    expect(got).toEqual(fillPart('cpu'));
    const minus7 = bitsOf(Float32Array.of(-7))[0];
    expect(got.slice(0, 1003).every((b) => b === minus7)).toBe(true);
  });
});

describeEachBackend('fill, axpby and strided copies', ({ device }) => {
  test.each([1, 3, 17, 65, 1027])('fill_ of float32 and int32 tensors (%i elements), whole and from an offset', (n) => {
    dv.scope(() => {
      const f = dv.full([n + 3], 2.5, { device });
      dv.fill_(f.slice(0, 3, n + 3), -1.25);
      expect(Array.from(f.data())).toEqual([2.5, 2.5, 2.5, ...new Array(n).fill(-1.25)]);
      const i = dv.full([n + 1], 7, { device, dtype: 'int32' });
      dv.fill_(i.slice(0, 1, n + 1), -2147483648);
      expect(Array.from(i.toArray())).toEqual([7, ...new Array(n).fill(-2147483648)]);
    });
  });

  test.each([1, 5, 64, 1029])('axpby_ on %i elements, aligned and at offsets', (n) => {
    dv.scope(() => {
      for (const [dOff, sOff] of [[0, 0], [1, 1], [2, 3]]) {
        const d = toF32(randomValues(n + dOff, n + dOff)), s = toF32(randomValues(n + sOff, 2 * n + sOff));
        const dst = dv.tensor(Float32Array.from(d), [n + dOff], { device }), src = dv.tensor(Float32Array.from(s), [n + sOff], { device });
        dv.axpby_(dst.slice(0, dOff, n + dOff), src.slice(0, sOff, n + sOff), 0.75, -1.5);
        const want = Array.from(d, (v, i) => (i < dOff ? v : 0.75 * v - 1.5 * s[i - dOff + sOff]));
        expectClose(dst.data(), want, { dtype: 'float32', kind: 'binary' }, `axpby offsets ${dOff}, ${sOff}`);
      }
    });
  });

  // [shape, permutation, slice (dim, start, end) applied after it]
  const VIEWS: [number[], number[], [number, number, number] | null][] = [
    [[37], [0], [0, 3, 37]],
    [[6, 17], [1, 0], null],
    [[45, 67], [1, 0], [1, 2, 40]],
    [[2, 33, 40], [0, 2, 1], null],
    [[3, 4, 5, 6], [3, 1, 0, 2], [2, 1, 3]],
    [[2, 3, 2, 3, 2, 3, 2, 3], [7, 6, 5, 4, 3, 2, 1, 0], null],
    [[5, 1, 64, 9], [2, 1, 3, 0], [0, 7, 50]],
  ];
  test.each(VIEWS)('contiguous() of %j permuted by %j, sliced %j: float32 and int32 values exactly', (shape, perm, cut) => {
    dv.scope(() => {
      const n = shape.reduce((a, b) => a * b, 1);
      const values = Float32Array.from(randomValues(n, n));
      const ints = Int32Array.from({ length: n }, (_, i) => i * 7 - 3);
      const view = (t: dv.Tensor) => {
        const p = dv.permute(t, perm);
        return cut ? dv.slice(p, ...cut) : p;
      };
      for (const [data, dtype] of [[values, 'float32'], [ints, 'int32']] as const) {
        const onDevice = view(dv.tensor(data, shape, { device, dtype }));
        const onCpu = view(dv.tensor(data, shape, { dtype }));
        const c = dv.contiguous(onDevice);
        expect(c.isContiguous()).toBe(true);
        expect(c.device).toBe(device);
        expect(bitsOf(c.toArray())).toEqual(bitsOf(dv.contiguous(onCpu).toArray()));
      }
    });
  });

  test('copies from broadcast (zero-stride) sources and into strided destinations', () => {
    dv.scope(() => {
      const row = dv.tensor(Float32Array.from([1, 2, 3, 4, 5]), [1, 5], { device });
      const wide = dv.contiguous(dv.expand(row, [3, 5]));
      expect(Array.from(wide.data())).toEqual([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
      const dst = dv.zeros([5, 3], { device });
      dv.copy_(dv.transpose(dst, 0, 1), wide);
      expect(Array.from(dst.data())).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]);
      const scalar = dv.tensor(Float32Array.from([9]), [], { device });
      const out = dv.zeros([], { device });
      dv.copy_(out, scalar);
      expect(Array.from(out.data())).toEqual([9]);
    });
  });
});
