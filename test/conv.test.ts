import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import { conv2d } from '../lib/ops/conv.js';
import { checkOp, type CloseOptions, describeEachBackend, expectClose, fromValues, randomValues, recordError, toF32 } from './helpers.js';

// conv2d is im2col + GEMM: the table's GEMM row; the weight and bias gradients of the grouped case sum ~10^6 products.
const CONV_TOL: CloseOptions = { dtype: 'float32', kind: 'matmul' };
const LONG_SUM_TOL: CloseOptions = { dtype: 'float32', kind: 'longSum' };

interface Case {
  n: number; cin: number; h: number; w: number; cout: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number;
}

const outSize = (c: Case) => [Math.floor((c.h + 2 * c.ph - c.kh) / c.sh) + 1, Math.floor((c.w + 2 * c.pw - c.kw) / c.sw) + 1];

/** Direct float64 convolution (PyTorch conv2d semantics), x (N, Cin, H, W), w (Cout, Cin, kh, kw). */
function refConv(c: Case) {
  const [oh, ow] = outSize(c);
  return (x: Float64Array, w: Float64Array, b?: Float64Array): Float64Array => {
    const out = new Float64Array(c.n * c.cout * oh * ow);
    for (let n = 0; n < c.n; n++) for (let o = 0; o < c.cout; o++) for (let y = 0; y < oh; y++) for (let z = 0; z < ow; z++) {
      let s = b ? b[o] : 0;
      for (let ci = 0; ci < c.cin; ci++) for (let i = 0; i < c.kh; i++) for (let j = 0; j < c.kw; j++) {
        const ih = y * c.sh - c.ph + i, iw = z * c.sw - c.pw + j;
        if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
        s += x[((n * c.cin + ci) * c.h + ih) * c.w + iw] * w[((o * c.cin + ci) * c.kh + i) * c.kw + j];
      }
      out[((n * c.cout + o) * oh + y) * ow + z] = s;
    }
    return out;
  };
}

/** The float64 adjoints of refConv for an output gradient dy: [dx, dw, db]. */
function refConvGrads(c: Case, x: Float64Array, w: Float64Array, dy: Float64Array): Float64Array[] {
  const [oh, ow] = outSize(c);
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(c.cout);
  for (let n = 0; n < c.n; n++) for (let o = 0; o < c.cout; o++) for (let y = 0; y < oh; y++) for (let z = 0; z < ow; z++) {
    const g = dy[((n * c.cout + o) * oh + y) * ow + z];
    db[o] += g;
    for (let ci = 0; ci < c.cin; ci++) for (let i = 0; i < c.kh; i++) for (let j = 0; j < c.kw; j++) {
      const ih = y * c.sh - c.ph + i, iw = z * c.sw - c.pw + j;
      if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
      const xi = ((n * c.cin + ci) * c.h + ih) * c.w + iw, wi = ((o * c.cin + ci) * c.kh + i) * c.kw + j;
      dx[xi] += g * w[wi];
      dw[wi] += g * x[xi];
    }
  }
  return [dx, dw, db];
}

const base = { n: 2, cin: 3, h: 7, w: 7, cout: 5 };
const cases: [string, Case, boolean][] = [
  ['kernel 3, stride 1, pad 1', { ...base, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 }, true],
  ['kernel 3, stride 2, pad 0', { ...base, kh: 3, kw: 3, sh: 2, sw: 2, ph: 0, pw: 0 }, true],
  ['patchify kernel 4, stride 4 on 8×8', { ...base, h: 8, w: 8, kh: 4, kw: 4, sh: 4, sw: 4, ph: 0, pw: 0 }, true],
  ['kernel 1 (pointwise), no bias', { ...base, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0 }, false],
  ['kernel (3, 2), stride (2, 1)', { ...base, kh: 3, kw: 2, sh: 2, sw: 1, ph: 0, pw: 0 }, true],
  ['kernel (2, 3), stride (1, 3), pad (2, 1), 6×8', { ...base, h: 6, w: 8, kh: 2, kw: 3, sh: 1, sw: 3, ph: 2, pw: 1 }, true],
  ['kernel 3, pad 1, stride 1, 1×1 image', { ...base, h: 1, w: 1, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 }, true],
];

const options = (c: Case) => ({ stride: [c.sh, c.sw] as [number, number], padding: [c.ph, c.pw] as [number, number] });

// Every suite runs once per backend (the cpu once per kernel level); fromValues and checkOp put their
// tensors on the suite's device.
describeEachBackend('conv2d', ({ device }) => {
  test.each(cases)('%s', (_name, c, withBias) => {
    const inputs = [
      { values: randomValues(c.n * c.cin * c.h * c.w, 11), shape: [c.n, c.cin, c.h, c.w] },
      { values: randomValues(c.cout * c.cin * c.kh * c.kw, 12, 0.3), shape: [c.cout, c.cin, c.kh, c.kw] },
    ];
    if (withBias) inputs.push({ values: randomValues(c.cout, 13), shape: [c.cout] });
    checkOp('conv2d', (x, w, b) => conv2d(x, w, b ?? null, options(c)), refConv(c), inputs, CONV_TOL);
  });

  test('reads a channels-last (permuted) input view', () => {
    const c: Case = { ...base, kh: 3, kw: 3, sh: 1, sw: 2, ph: 1, pw: 0 };
    const ref = refConv(c);
    checkOp('conv2d(NHWC view)', (xNhwc, w, b) => conv2d(dv.permute(xNhwc, [0, 3, 1, 2]), w, b, options(c)),
      (xNhwc, w, b) => {
        const x = new Float64Array(xNhwc.length);
        for (let n = 0; n < c.n; n++) for (let ci = 0; ci < c.cin; ci++) for (let y = 0; y < c.h; y++) for (let z = 0; z < c.w; z++) {
          x[((n * c.cin + ci) * c.h + y) * c.w + z] = xNhwc[((n * c.h + y) * c.w + z) * c.cin + ci];
        }
        return ref(x, w, b);
      },
      [
        { values: randomValues(c.n * c.h * c.w * c.cin, 21), shape: [c.n, c.h, c.w, c.cin] },
        { values: randomValues(c.cout * c.cin * 9, 22, 0.3), shape: [c.cout, c.cin, 3, 3] },
        { values: randomValues(c.cout, 23), shape: [c.cout] },
      ], CONV_TOL);
  });

  test('patch embedding at model size: batch 4, 3 -> 64 channels, 32×32, patch 4 (forward)', () => {
    const c: Case = { n: 4, cin: 3, h: 32, w: 32, cout: 64, kh: 4, kw: 4, sh: 4, sw: 4, ph: 0, pw: 0 };
    const x = toF32(randomValues(c.n * c.cin * c.h * c.w, 31));
    const w = toF32(randomValues(c.cout * c.cin * 16, 32, 0.1));
    const b = toF32(randomValues(c.cout, 33));
    const expected = refConv(c)(x, w, b);
    dv.scope(() => {
      const y = conv2d(fromValues(x, [c.n, c.cin, c.h, c.w]), fromValues(w, [c.cout, c.cin, 4, 4]), fromValues(b, [c.cout]), { stride: 4 });
      expect(y.shape).toEqual([4, 64, 8, 8]);
      recordError('conv2d patch 4 (4x3x32x32 -> 64)', expectClose(y.data(), expected, CONV_TOL, 'patch embed'));
    });
  });

  // Cin·kh·kw · OH·OW = 9 · 10^6 floats of columns per image exceeds the op's 2^23-float workspace,
  // so every image is its own group: the grouped forward, col2im and the cross-group weight-gradient
  // accumulation are compared with the float64 adjoint (computed once, for every suite).
  test('images processed in several workspace groups (1 -> 2 channels, 1000×1000, kernel 3, pad 1)', () => {
    const { c, x, w, b, dyv, expected, dxRef, dwRef, dbRef } = groupedCase();
    dv.scope(() => {
      const xt = fromValues(x, [c.n, 1, c.h, c.w], true), wt = fromValues(w, [c.cout, 1, 3, 3], true), bt = fromValues(b, [c.cout], true);
      const y = conv2d(xt, wt, bt, { padding: 1 });
      expect(y.device).toBe(device);
      const fwd = expectClose(y.data(), expected, CONV_TOL, 'grouped forward');
      y.backward({ grad: fromValues(dyv, y.shape) });
      // dw and db sum 2·10^6 float32 products: allow for the accumulated rounding.
      const bwd = Math.max(
        expectClose(xt.grad!.data(), dxRef, CONV_TOL, 'grouped dx'),
        expectClose(wt.grad!.data(), dwRef, LONG_SUM_TOL, 'grouped dw'),
        expectClose(bt.grad!.data(), dbRef, LONG_SUM_TOL, 'grouped db'),
      );
      recordError('conv2d grouped (2x1x1000x1000)', fwd, bwd);
    });
  });

  test('conv2d on an empty batch gives an empty output and zero weight and bias gradients', () => {
    dv.scope(() => {
      const x = fromValues(new Float64Array(0), [0, 3, 8, 8], true);
      const w = fromValues(randomValues(5 * 3 * 9, 61), [5, 3, 3, 3], true), b = fromValues(randomValues(5, 62), [5], true);
      const y = conv2d(x, w, b, { padding: 1 });
      expect(y.shape).toEqual([0, 5, 8, 8]);
      y.backward({ grad: dv.zeros(y.shape, { device }) });
      expect(x.grad!.shape).toEqual([0, 3, 8, 8]);
      expect(Array.from(w.grad!.data())).toEqual(new Array(5 * 3 * 9).fill(0));
      expect(Array.from(b.grad!.data())).toEqual(new Array(5).fill(0));
    });
  });
});

/** The grouped case's float32 inputs and float64 results, computed on first use. */
let grouped: ReturnType<typeof makeGroupedCase> | null = null;
const groupedCase = () => (grouped ??= makeGroupedCase());
function makeGroupedCase() {
  const c: Case = { n: 2, cin: 1, h: 1000, w: 1000, cout: 2, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 };
  const x = toF32(randomValues(c.n * c.h * c.w, 41));
  const w = toF32(randomValues(c.cout * 9, 42, 0.3));
  const b = toF32(randomValues(c.cout, 43));
  const dyv = toF32(randomValues(c.n * c.cout * c.h * c.w, 44));
  const expected = refConv(c)(x, w, b);
  const [dxRef, dwRef, dbRef] = refConvGrads(c, x, w, dyv);
  return { c, x, w, b, dyv, expected, dxRef, dwRef, dbRef };
}

// Thread counts are the CPU backend's: run once, on the cpu.
test('conv2d results are bitwise identical for any thread count', () => {
  const c: Case = { n: 3, cin: 4, h: 20, w: 20, cout: 6, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 };
  const threads = dv.runtimeInfo().threads;
  const run = (t: number) => {
    dv.setThreads(t);
    return dv.scope(() => {
      const x = fromValues(randomValues(c.n * c.cin * c.h * c.w, 51), [c.n, c.cin, c.h, c.w], true);
      const w = fromValues(randomValues(c.cout * c.cin * 9, 52), [c.cout, c.cin, 3, 3], true);
      const b = fromValues(randomValues(c.cout, 53), [c.cout], true);
      const y = conv2d(x, w, b, { padding: 1 });
      y.backward({ grad: fromValues(randomValues(y.size, 54), y.shape) });
      return [y.data(), x.grad!.data(), w.grad!.data(), b.grad!.data()];
    });
  };
  try {
    const one = run(1), many = run(3);
    one.forEach((v, i) => expect(many[i]).toEqual(v));
  } finally {
    dv.setThreads(threads);
  }
});

test('the weight gradient from the columns kept by the forward equals the one that rebuilds them (scope ended, retainGraph)', () => {
  const [n, cin, h, w, cout] = [5, 3, 9, 7, 4];
  const xv = randomValues(n * cin * h * w, 61), wv = randomValues(cout * cin * 9, 62), gv = randomValues(n * cout * h * w, 63);
  const grads = (mode: 'kept' | 'scope' | 'twice') => dv.scope(() => {
    const x = fromValues(xv, [n, cin, h, w], true), wt = fromValues(wv, [cout, cin, 3, 3], true);
    // 'scope': the forward's scope ends before the backward, taking the kept columns with it.
    const y = mode === 'scope' ? dv.scope(() => conv2d(x, wt, null, { padding: 1 })) : conv2d(x, wt, null, { padding: 1 });
    const dy = fromValues(gv, y.shape);
    if (mode === 'twice') {
      y.backward({ grad: dy, retainGraph: true });
      for (const t of [x, wt]) {
        t.grad!.dispose();
        t.grad = null;
      }
    }
    y.backward({ grad: dy });
    return [x.grad!.data(), wt.grad!.data()];
  });
  const kept = grads('kept');
  for (const mode of ['scope', 'twice'] as const) grads(mode).forEach((v, i) => expect(v, `${mode} ${i}`).toEqual(kept[i]));
});

// The op's argument checks run before any kernel, whatever the device: run once, on the cpu.
test('conv2d validates its arguments', () => {
  dv.scope(() => {
    const x = dv.ones([2, 3, 8, 8]), w = dv.ones([5, 3, 3, 3]), b = dv.ones([5]);
    expect(() => conv2d(dv.ones([3, 8, 8]), w)).toThrow(/diffvit\.conv2d: argument 'x' expected rank 4, received shape \[3, 8, 8\]/);
    expect(() => conv2d(x, dv.ones([5, 2, 3, 3]))).toThrow(/argument 'weight' expected shape \[Cout, 3, kh, kw\]/);
    expect(() => conv2d(x, w, dv.ones([4]))).toThrow(/argument 'bias' expected shape \[5\]/);
    expect(() => conv2d(x, w, b, { stride: 0 })).toThrow(/argument 'options.stride' expected an integer >= 1 or a pair/);
    expect(() => conv2d(x, w, b, { padding: [1, -1] })).toThrow(/argument 'options.padding' expected an integer >= 0/);
    expect(() => conv2d(x, w, b, { stride: 1.5 })).toThrow(/options.stride/);
    expect(() => conv2d(x, dv.ones([5, 3, 9, 3]))).toThrow(/argument 'weight' expected a kernel no larger than the padded input 8×8, received kernel 9×3/);
    expect(() => conv2d(x, dv.ones([5, 3, 3, 3], 'int32'))).toThrow(/argument 'weight' expected dtype float32, received int32/);
    const dead = dv.ones([2, 3, 8, 8]);
    dead.dispose();
    expect(() => conv2d(dead, w)).toThrow(/argument 'x' expected a live tensor/);
  });
});

// The CPU addon's own argument checks (native calls): CPU only.
test('im2col / col2im bindings check buffer extents and geometry', () => {
  const x = new native.NativeBuffer('cpu', 'float32', 2 * 3 * 8 * 8);
  const cols = new native.NativeBuffer('cpu', 'float32', 10);
  try {
    expect(() => native.im2col({
      x, xOffset: 0, cols, colsOffset: 0, batch: 2, channels: 3, height: 8, width: 8, kernelH: 3, kernelW: 3,
      strideH: 1, strideW: 1, padH: 1, padW: 1
    }))
      .toThrow(/diffvit\.im2col: argument 'cols' expected at least 3456 float32 elements/);
    expect(() => native.col2im({
      cols, colsOffset: 0, x, xOffset: 0, batch: 2, channels: 3, height: 8, width: 8, kernelH: 3, kernelW: 3,
      strideH: 1, strideW: 1, padH: 1, padW: 1
    }))
      .toThrow(/diffvit\.col2im: argument 'cols' expected at least 3456 float32 elements/);
    expect(() => native.im2col({
      x, xOffset: 0, cols, colsOffset: 0, batch: 2, channels: 3, height: 8, width: 8, kernelH: 11, kernelW: 3,
      strideH: 1, strideW: 1, padH: 1, padW: 1
    }))
      .toThrow(/argument 'kernelH' expected at most height \+ 2\*padH = 10, received 11/);
    expect(() => native.im2col({
      x, xOffset: 0, cols, colsOffset: 0, batch: 2, channels: 3, height: 8, width: 8, kernelH: 3, kernelW: 3,
      strideH: 0, strideW: 1, padH: 1, padW: 1
    })).toThrow(/argument 'strideH' expected an integer in \[1,/);
  } finally {
    x.dispose();
    cols.dispose();
  }
});
