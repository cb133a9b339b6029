import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import {
  checkOp, type CloseOptions, describeEachBackend, expectClose, fromValues, ODD_SIZES, randomValues, recordError, refStats, toF32,
} from './helpers.js';

// ---------------------------------------------------------------------------------------------
// float64 references
// ---------------------------------------------------------------------------------------------

const EPS = 1e-6;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));

/** LayerNorm(x) * (1 + scale[b]) + shift[b]; shift and scale are (B, D) row-major. */
function refLnModulate(B: number, N: number, D: number, eps = EPS) {
  return (x: Float64Array, shift: Float64Array, scale: Float64Array) => {
    const { mean, rstd } = refStats(x, B * N, D, eps);
    const y = new Float64Array(x.length);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let j = 0; j < D; j++) {
      const r = b * N + n, i = r * D + j;
      y[i] = (x[i] - mean[r]) * rstd[r] * (1 + scale[b * D + j]) + shift[b * D + j];
    }
    return y;
  };
}

/** Analytic gradients of refLnModulate in float64. */
function refLnModulateBackward(x: Float64Array, scale: Float64Array, dy: Float64Array, B: number, N: number, D: number) {
  const { mean, rstd } = refStats(x, B * N, D, EPS);
  const dx = new Float64Array(x.length), dshift = new Float64Array(B * D), dscale = new Float64Array(B * D);
  for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) {
    const r = b * N + n;
    let sg = 0, sgx = 0;
    for (let j = 0; j < D; j++) {
      const i = r * D + j, xh = (x[i] - mean[r]) * rstd[r], g = dy[i] * (1 + scale[b * D + j]);
      sg += g;
      sgx += g * xh;
      dshift[b * D + j] += dy[i];
      dscale[b * D + j] += dy[i] * xh;
    }
    for (let j = 0; j < D; j++) {
      const i = r * D + j, xh = (x[i] - mean[r]) * rstd[r], g = dy[i] * (1 + scale[b * D + j]);
      dx[i] = rstd[r] * (g - sg / D - xh * sgx / D);
    }
  }
  return { dx, dshift, dscale };
}

/** x + gate[b] * y; gate is (B, D) row-major. */
function refAddGated(B: number, N: number, D: number) {
  return (x: Float64Array, gate: Float64Array, y: Float64Array) => {
    const out = new Float64Array(x.length);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let j = 0; j < D; j++) {
      const i = (b * N + n) * D + j;
      out[i] = x[i] + gate[b * D + j] * y[i];
    }
    return out;
  };
}

/** gelu_tanh(x Wᵀ + b) for x (rows, in), W (out, in), b (out) or absent. */
function refLinearGelu(rows: number, inF: number, outF: number, act = true) {
  return (x: Float64Array, w: Float64Array, b?: Float64Array) => {
    const out = new Float64Array(rows * outF);
    for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      out[r * outF + o] = act ? gelu(s) : s;
    }
    return out;
  };
}

/** The columns [c * D, (c + 1) * D) of a (B, k * D) row-major array, as (B, D). */
function columns(a: Float64Array, B: number, k: number, D: number, c: number): Float64Array {
  const out = new Float64Array(B * D);
  for (let b = 0; b < B; b++) for (let j = 0; j < D; j++) out[b * D + j] = a[b * k * D + c * D + j];
  return out;
}

/** The gradient's values; the gradient tensor (kept outside every scope by autograd) is freed. */
function takeGrad(t: dv.Tensor): Float32Array {
  expect(t.grad, `tensor ${t.toString()} got no gradient`).not.toBeNull();
  const g = t.grad!.data();
  t.grad!.dispose();
  t.grad = null;
  return g;
}

// Tolerances: rows of the table in helpers.ts, a few times the worst error seen on avx512/avx2/scalar
// (the summary printed after the file lists it). The GELU's tanh is accurate to ~1e-7 absolute, its
// derivative to a few 1e-6. A fused op against its unfused composition: the 'composition' row (the
// GEMM row for linearGelu).
const LN_TOL: CloseOptions = { dtype: 'float32', kind: 'layerNorm' };
const GATE_TOL: CloseOptions = { dtype: 'float32', kind: 'addGated' };
const GELU_TOL: CloseOptions = { dtype: 'float32', kind: 'linearGelu' };
const UNFUSED_TOL: CloseOptions = { dtype: 'float32', kind: 'composition' };
const MATMUL_TOL: CloseOptions = { dtype: 'float32', kind: 'matmul' };
const grad = (tol: CloseOptions): CloseOptions => ({ ...tol, grad: true });

const FD_TOKENS = [1, 17];
// Finite differences cost (inputs)^2 reference work: the odd sizes up to 17, and 33 (> 2 avx512 vectors).
const FD_DIMS = [...ODD_SIZES.filter((d) => d <= 17), 33];
// D 1100: the block-per-row LayerNorm kernels on CUDA (one warp per row up to 1024 columns).
const BIG: [number, number, number][] = [[2, 65, 256], [3, 17, 257], [1, 1, 256], [2, 5, 1100]];

// ---------------------------------------------------------------------------------------------
// layerNormModulate
// ---------------------------------------------------------------------------------------------

// Every suite runs once per backend (the cpu once per kernel level); fromValues and checkOp put their
// tensors on the suite's device.
describeEachBackend('layerNormModulate', () => {
  for (const N of FD_TOKENS) {
    test.each(FD_DIMS)(`B 2, N ${N}, D %i: shift/scale (B, 1, D)`, (D) => {
      const B = 2;
      checkOp('layerNormModulate', (x, sh, sc) => dv.layerNormModulate(x, sh, sc, EPS), refLnModulate(B, N, D), [
        { values: randomValues(B * N * D, N * 100 + D, 2), shape: [B, N, D] },
        { values: randomValues(B * D, D + 1, 0.5), shape: [B, 1, D] },
        { values: randomValues(B * D, D + 2, 0.5), shape: [B, 1, D] },
      ], LN_TOL);
    });
  }

  test.each([[2, 65, 3], [3, 5, 17]])('B %i, N %i, D %i: shift/scale are column slices of adaLN\'s (B, 6D) output', (B, N, D) => {
    // The Block's layout: chunk(ada(c), 6, -1) gives (B, D) views with batch stride 6D; the op reads
    // them in place and the gradient reaches the (B, 6D) tensor through chunk.
    const ref = refLnModulate(B, N, D);
    checkOp('layerNormModulate (strided views)', (x, ada) => {
      const parts = dv.chunk(ada, 6, -1);
      return dv.layerNormModulate(x, parts[3], parts[4], EPS);
    }, (x, ada) => ref(x, columns(ada, B, 6, D, 3), columns(ada, B, 6, D, 4)), [
      { values: randomValues(B * N * D, 7 + D, 3), shape: [B, N, D] },
      { values: randomValues(B * 6 * D, 8 + D, 0.5), shape: [B, 6 * D] },
    ], LN_TOL);
  });

  test('non-unit column strides are copied, non-contiguous x is read correctly', () => {
    const B = 3, N = 4, D = 5;
    const ref = refLnModulate(B, N, D);
    // shift given as the transpose of a (D, B) tensor, x as a permutation of a (N, B, D) tensor.
    checkOp('layerNormModulate (copied views)', (xt, sht, sc) => dv.layerNormModulate(xt.transpose(0, 1), sht.transpose(0, 1), sc, EPS),
      (xt, sht, sc) => {
        const x = new Float64Array(B * N * D), sh = new Float64Array(B * D);
        for (let n = 0; n < N; n++) for (let b = 0; b < B; b++) for (let j = 0; j < D; j++) x[(b * N + n) * D + j] = xt[(n * B + b) * D + j];
        for (let j = 0; j < D; j++) for (let b = 0; b < B; b++) sh[b * D + j] = sht[j * B + b];
        return ref(x, sh, sc);
      }, [
        { values: randomValues(B * N * D, 31, 2), shape: [N, B, D] },
        { values: randomValues(D * B, 32), shape: [D, B] },
        { values: randomValues(B * D, 33, 0.5), shape: [B, D] },
      ], LN_TOL);
  });

  test.each(BIG)('B %i, N %i, D %i: forward and analytic backward', (B, N, D) => {
    const x = toF32(randomValues(B * N * D, D, 2)), dy = toF32(randomValues(B * N * D, D + 1));
    const shift = toF32(randomValues(B * D, D + 2, 0.5)), scale = toF32(randomValues(B * D, D + 3, 0.5));
    const ref = refLnModulateBackward(x, scale, dy, B, N, D);
    dv.scope(() => {
      const xt = fromValues(x, [B, N, D], true), sh = fromValues(shift, [B, 1, D], true), sc = fromValues(scale, [B, D], true);
      const y = dv.layerNormModulate(xt, sh, sc, EPS);
      y.backward({ grad: fromValues(dy, [B, N, D]) });
      const fwd = expectClose(y.data(), refLnModulate(B, N, D)(x, shift, scale), LN_TOL, 'forward');
      const bwd = Math.max(expectClose(takeGrad(xt), ref.dx, grad(LN_TOL), 'dx'),
        expectClose(takeGrad(sh), ref.dshift, grad(LN_TOL), 'dshift'), expectClose(takeGrad(sc), ref.dscale, grad(LN_TOL), 'dscale'));
      recordError(`layerNormModulate ${B}x${N}x${D} (analytic)`, fwd, bwd);
    });
  });

  test('matches the unfused composition add(mul(layerNorm(x), 1 + scale), shift), gradients included', () => {
    const B = 2, N = 33, D = 64;
    const x = randomValues(B * N * D, 1, 2), shift = randomValues(B * D, 2, 0.5), scale = randomValues(B * D, 3, 0.5);
    const dy = randomValues(B * N * D, 4);
    const run = (fused: boolean) => dv.scope(() => {
      const xt = fromValues(x, [B, N, D], true), sh = fromValues(shift, [B, 1, D], true), sc = fromValues(scale, [B, 1, D], true);
      const y = fused ? dv.layerNormModulate(xt, sh, sc, EPS)
        : dv.add(dv.mul(dv.layerNorm(xt, null, null, EPS), dv.addScalar(sc, 1)), sh);
      y.backward({ grad: fromValues(dy, [B, N, D]) });
      return [y.data(), takeGrad(xt), takeGrad(sh), takeGrad(sc)];
    });
    const [a, b] = [run(true), run(false)];
    ['y', 'dx', 'dshift', 'dscale'].forEach((name, i) => expectClose(a[i], b[i], UNFUSED_TOL, `fused vs unfused ${name}`));
  });

  test('computes only the gradients asked for', () => {
    const B = 2, N = 3, D = 17;
    const x = toF32(randomValues(B * N * D, 1)), shift = toF32(randomValues(B * D, 2)), scale = toF32(randomValues(B * D, 3));
    const dy = toF32(randomValues(B * N * D, 4));
    const ref = refLnModulateBackward(x, scale, dy, B, N, D);
    dv.scope(() => {
      const xt = fromValues(x, [B, N, D]), sh = fromValues(shift, [B, D]), sc = fromValues(scale, [B, D], true);
      dv.layerNormModulate(xt, sh, sc, EPS).backward({ grad: fromValues(dy, [B, N, D]) });
      expect(xt.grad).toBeNull();
      expect(sh.grad).toBeNull();
      expectClose(takeGrad(sc), ref.dscale, grad(LN_TOL), 'dscale alone');
      const xg = fromValues(x, [B, N, D], true), sh2 = fromValues(shift, [B, D]), sc2 = fromValues(scale, [B, D]);
      dv.layerNormModulate(xg, sh2, sc2, EPS).backward({ grad: fromValues(dy, [B, N, D]) });
      expect(sc2.grad).toBeNull();
      expectClose(takeGrad(xg), ref.dx, grad(LN_TOL), 'dx alone');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// addGated
// ---------------------------------------------------------------------------------------------

describeEachBackend('addGated', () => {
  for (const N of [1, 17, 65]) {
    // (N = 65 with D = 33 would cost 1.5 s per level; the analytic cases cover N = 65 at D = 256.)
    test.each(FD_DIMS.filter((d) => N * d <= 65 * 17))(`B 2, N ${N}, D %i`, (D) => {
      const B = 2;
      checkOp('addGated', dv.addGated, refAddGated(B, N, D), [
        { values: randomValues(B * N * D, N * 100 + D), shape: [B, N, D] },
        { values: randomValues(B * D, D + 1), shape: [B, 1, D] },
        { values: randomValues(B * N * D, D + 2), shape: [B, N, D] },
      ], GATE_TOL);
    });
  }

  test('gate as a column slice of a (B, 6D) tensor, y as a transposed view', () => {
    const B = 3, N = 5, D = 17;
    const ref = refAddGated(B, N, D);
    checkOp('addGated (strided views)', (x, ada, yt) => dv.addGated(x, dv.chunk(ada, 6, -1)[2], yt.transpose(0, 1)),
      (x, ada, yt) => {
        const y = new Float64Array(B * N * D);
        for (let n = 0; n < N; n++) for (let b = 0; b < B; b++) for (let j = 0; j < D; j++) y[(b * N + n) * D + j] = yt[(n * B + b) * D + j];
        return ref(x, columns(ada, B, 6, D, 2), y);
      }, [
        { values: randomValues(B * N * D, 41), shape: [B, N, D] },
        { values: randomValues(B * 6 * D, 42), shape: [B, 6 * D] },
        { values: randomValues(B * N * D, 43), shape: [N, B, D] },
      ], GATE_TOL);
  });

  test.each(BIG)('B %i, N %i, D %i: forward and analytic backward, same as add(x, mul(gate, y))', (B, N, D) => {
    const x = randomValues(B * N * D, D), gate = randomValues(B * D, D + 1), y = randomValues(B * N * D, D + 2);
    const dout = randomValues(B * N * D, D + 3);
    const run = (fused: boolean) => dv.scope(() => {
      const xt = fromValues(x, [B, N, D], true), gt = fromValues(gate, [B, 1, D], true), yt = fromValues(y, [B, N, D], true);
      const out = fused ? dv.addGated(xt, gt, yt) : dv.add(xt, dv.mul(gt, yt));
      out.backward({ grad: fromValues(dout, [B, N, D]) });
      return [out.data(), takeGrad(xt), takeGrad(gt), takeGrad(yt)];
    });
    const got = run(true), unfused = run(false);
    const [xf, gf, yf, df] = [x, gate, y, dout].map(toF32);
    const dgate = new Float64Array(B * D), dy = new Float64Array(B * N * D);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let j = 0; j < D; j++) {
      const i = (b * N + n) * D + j;
      dgate[b * D + j] += yf[i] * df[i];
      dy[i] = gf[b * D + j] * df[i];
    }
    const fwd = expectClose(got[0], refAddGated(B, N, D)(xf, gf, yf), GATE_TOL, 'forward');
    const bwd = Math.max(expectClose(got[1], df, grad(GATE_TOL), 'dx'), expectClose(got[2], dgate, grad(GATE_TOL), 'dgate'),
      expectClose(got[3], dy, grad(GATE_TOL), 'dy'));
    recordError(`addGated ${B}x${N}x${D} (analytic)`, fwd, bwd);
    ['out', 'dx', 'dgate', 'dy'].forEach((name, i) => expectClose(got[i], unfused[i], UNFUSED_TOL, `fused vs unfused ${name}`));
  });
});

// ---------------------------------------------------------------------------------------------
// linearGelu (and linear's bias epilogue)
// ---------------------------------------------------------------------------------------------

describeEachBackend('linearGelu', ({ device }) => {
  const cases: [number, number, number][] = [[1, 1, 1], [1, 3, 17], [3, 17, 33], [17, 3, 1], [2, 33, 65], [65, 17, 3]];
  test.each(cases)('%i rows, %i -> %i', (rows, inF, outF) => {
    checkOp('linearGelu', dv.linearGelu, refLinearGelu(rows, inF, outF), [
      { values: randomValues(rows * inF, rows + inF, 0.7), shape: [rows, inF] },
      { values: randomValues(outF * inF, outF + 1, 0.7), shape: [outF, inF] },
      { values: randomValues(outF, outF + 2), shape: [outF] },
    ], GELU_TOL);
  });

  test('(B, N, in) input, no bias', () => {
    checkOp('linearGelu (no bias)', (x, w) => dv.linearGelu(x, w, null), refLinearGelu(2 * 5, 17, 9), [
      { values: randomValues(2 * 5 * 17, 51, 0.7), shape: [2, 5, 17] },
      { values: randomValues(9 * 17, 52, 0.7), shape: [9, 17] },
    ], GELU_TOL);
  });

  test('reads a transposed weight view and a strided bias', () => {
    const rows = 5, inF = 17, outF = 33;
    const ref = refLinearGelu(rows, inF, outF);
    checkOp('linearGelu (views)', (x, wt, b2) => dv.linearGelu(x, wt.transpose(0, 1), dv.chunk(b2, 2, 1)[1].reshape([outF])),
      (x, wt, b2) => {
        const w = new Float64Array(outF * inF), b = new Float64Array(outF);
        for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) w[o * inF + i] = wt[i * outF + o];
        for (let o = 0; o < outF; o++) b[o] = b2[o * 2 + 1];
        return ref(x, w, b);
      }, [
        { values: randomValues(rows * inF, 61, 0.7), shape: [rows, inF] },
        { values: randomValues(inF * outF, 62, 0.7), shape: [inF, outF] },
        { values: randomValues(outF * 2, 63), shape: [outF, 2] },
      ], GELU_TOL);
  });

  // in = 1100 spans several K blocks at every level (KC is 256 or 512): the epilogue must run once,
  // after the last block. out = 257 leaves partial tiles on every side.
  test.each([[65, 256, 257], [33, 1100, 40]])('%i rows, %i -> %i: forward and analytic backward, same as gelu(linear)', (rows, inF, outF) => {
    const x = randomValues(rows * inF, inF, 0.3), w = randomValues(outF * inF, inF + 1, 1 / Math.sqrt(inF));
    const b = randomValues(outF, inF + 2), dout = randomValues(rows * outF, inF + 3);
    const run = (fused: boolean) => dv.scope(() => {
      const xt = fromValues(x, [rows, inF], true), wt = fromValues(w, [outF, inF], true), bt = fromValues(b, [outF], true);
      const y = fused ? dv.linearGelu(xt, wt, bt) : dv.gelu(dv.linear(xt, wt, bt));
      y.backward({ grad: fromValues(dout, [rows, outF]) });
      return [y.data(), takeGrad(xt), takeGrad(wt), takeGrad(bt)];
    });
    const got = run(true), unfused = run(false);
    const [xf, wf, bf, df] = [x, w, b, dout].map(toF32);
    // Float64 analytic gradients: dh = dout * gelu'(h), dx = dh W, dW = dhᵀ x, db = sum_rows dh.
    const h = refLinearGelu(rows, inF, outF, false)(xf, wf, bf);
    const dh = h.map((v, i) => {
      const d = 1e-6;
      return df[i] * (gelu(v + d) - gelu(v - d)) / (2 * d);
    });
    const dx = new Float64Array(rows * inF), dw = new Float64Array(outF * inF), db = new Float64Array(outF);
    for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
      const g = dh[r * outF + o];
      db[o] += g;
      for (let i = 0; i < inF; i++) {
        dx[r * inF + i] += g * wf[o * inF + i];
        dw[o * inF + i] += g * xf[r * inF + i];
      }
    }
    const fwd = expectClose(got[0], refLinearGelu(rows, inF, outF)(xf, wf, bf), GELU_TOL, 'forward');
    const bwd = Math.max(expectClose(got[1], dx, grad(GELU_TOL), 'dx'), expectClose(got[2], dw, grad(GELU_TOL), 'dweight'),
      expectClose(got[3], db, grad(GELU_TOL), 'dbias'));
    recordError(`linearGelu ${rows}x${inF}->${outF} (analytic)`, fwd, bwd);
    ['y', 'dx', 'dweight', 'dbias'].forEach((name, i) => expectClose(got[i], unfused[i], MATMUL_TOL, `fused vs unfused ${name}`));
  });

  test('linear: the bias epilogue over several K blocks, and in = 0', () => {
    const rows = 9, inF = 1100, outF = 20;
    const x = toF32(randomValues(rows * inF, 71, 0.3)), w = toF32(randomValues(outF * inF, 72, 0.03)), b = toF32(randomValues(outF, 73));
    dv.scope(() => {
      const y = dv.linear(fromValues(x, [rows, inF]), fromValues(w, [outF, inF]), fromValues(b, [outF]));
      expectClose(y.data(), refLinearGelu(rows, inF, outF, false)(x, w, b), MATMUL_TOL, 'linear, 3 K blocks');
      const bias = fromValues([1.5, -2, 0.25], [3]), on = { device };
      expect(Array.from(dv.linear(dv.ones([2, 0], on), dv.ones([3, 0], on), bias).data())).toEqual([1.5, -2, 0.25, 1.5, -2, 0.25]);
      expectClose(dv.linearGelu(dv.ones([1, 0], on), dv.ones([3, 0], on), bias).data(), [1.5, -2, 0.25].map(gelu), GELU_TOL, 'linearGelu, in = 0');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// determinism, memory, edge cases, bad arguments
// ---------------------------------------------------------------------------------------------

describeEachBackend('fused ops: memory and empty shapes', ({ device }) => {
  test('ops free their temporaries; nothing is saved for backward without autograd', () => {
    const base = dv.memory(device).buffers;
    dv.scope(() => {
      // Non-contiguous inputs and gradients force the internal copies.
      const x = fromValues(randomValues(4 * 3 * 8, 1), [4, 3, 8], true);
      const ada = fromValues(randomValues(3 * 8 * 3, 2), [8, 3 * 3], true);
      const modT = dv.chunk(ada, 3, 1).map((t) => t.transpose(0, 1)); // (3, 8) with column stride 9
      const w = fromValues(randomValues(8 * 6, 3), [8, 6], true), b = fromValues(randomValues(6 * 2, 4), [6, 2], true);
      const h = dv.layerNormModulate(x.transpose(0, 1), modT[0], modT[1]);
      const a = dv.linearGelu(h, w.transpose(0, 1), dv.chunk(b, 2, 1)[0].reshape([6]));
      const out = dv.addGated(x.transpose(0, 1), modT[2], dv.linear(a, fromValues(randomValues(8 * 6, 5), [8, 6])));
      expect(out.device).toBe(device);
      out.backward({ grad: fromValues(randomValues(4 * 3 * 8, 6), [4, 3, 8]).transpose(0, 1) });
      for (const t of [x, ada, w, b]) {
        expect(t.grad!.device).toBe(device);
        takeGrad(t);
      }
    });
    expect(dv.memory(device).buffers).toBe(base);
    dv.scope(() => {
      const x = fromValues(randomValues(2 * 3 * 8, 1), [2, 3, 8], true);
      const m = fromValues(randomValues(2 * 8, 2), [2, 8], true);
      const w = fromValues(randomValues(5 * 8, 3), [5, 8], true);
      const inside = dv.memory(device).buffers;
      dv.noGrad(() => dv.layerNormModulate(x, m, m));
      dv.noGrad(() => dv.addGated(x, m, x));
      dv.noGrad(() => dv.linearGelu(x, w, null));
      expect(dv.memory(device).buffers).toBe(inside + 3); // the outputs only: no statistics, no pre-activation
    });
    expect(dv.memory(device).buffers).toBe(base);
  });

  test('empty shapes', () => {
    dv.scope(() => {
      const on = { device };
      expect(dv.layerNormModulate(dv.zeros([0, 3, 4], on), dv.zeros([0, 4], on), dv.zeros([0, 4], on)).shape).toEqual([0, 3, 4]);
      expect(dv.addGated(dv.zeros([2, 0, 4], on), dv.zeros([2, 4], on), dv.zeros([2, 0, 4], on)).shape).toEqual([2, 0, 4]);
      expect(dv.linearGelu(dv.zeros([0, 4], on), dv.ones([3, 4], on), null).shape).toEqual([0, 3]);
      // No tokens: the modulation and gate gradients are zeros of their shapes.
      const sh = fromValues([1, 2, 3, 4], [2, 1, 2], true), sc = fromValues([1, 2, 3, 4], [2, 2], true);
      dv.layerNormModulate(dv.zeros([2, 0, 2], on), sh, sc).backward({ grad: dv.zeros([2, 0, 2], on) });
      expect(Array.from(takeGrad(sh))).toEqual([0, 0, 0, 0]);
      expect(Array.from(takeGrad(sc))).toEqual([0, 0, 0, 0]);
      const g = fromValues([1, 2], [1, 2], true);
      dv.addGated(dv.zeros([1, 0, 2], on), g, dv.zeros([1, 0, 2], on)).backward({ grad: dv.zeros([1, 0, 2], on) });
      expect(Array.from(takeGrad(g))).toEqual([0, 0]);
      const b = fromValues([1, 2, 3], [3], true);
      dv.linearGelu(dv.zeros([0, 4], on), dv.ones([3, 4], on), b).backward({ grad: dv.zeros([0, 3], on) });
      expect(Array.from(takeGrad(b))).toEqual([0, 0, 0]);
      // One feature: LN(x) = 0, so the output is the shift.
      expect(Array.from(dv.layerNormModulate(fromValues([3, -2], [1, 2, 1]), fromValues([0.5], [1, 1]), fromValues([2], [1, 1])).data()))
        .toEqual([0.5, 0.5]);
    });
  });
});

// Thread counts are the CPU backend's: run once, on the cpu.
test('results are bit-identical for 1 and 2 threads', () => {
  const before = dv.runtimeInfo().threads;
  // N = 600 tokens of 64: 3 runs of 256 rows per batch item, so dshift/dscale/dgate/dbias really
  // add several partials.
  const B = 2, N = 600, D = 64, H = 96;
  const x = randomValues(B * N * D, 1), ada = randomValues(B * 6 * D, 2, 0.5), dy = randomValues(B * N * D, 3);
  const w = randomValues(H * D, 4, 0.2), bias = randomValues(H, 5), w2 = randomValues(D * H, 6, 0.2);
  const run = () => dv.scope(() => {
    const xt = fromValues(x, [B, N, D], true), at = fromValues(ada, [B, 6 * D], true);
    const wt = fromValues(w, [H, D], true), bt = fromValues(bias, [H], true), w2t = fromValues(w2, [D, H], true);
    const [sh, sc, g] = dv.chunk(at, 6, -1);
    const h = dv.linearGelu(dv.layerNormModulate(xt, sh, sc, EPS), wt, bt);
    const out = dv.addGated(xt, g, dv.linear(h, w2t, null));
    out.backward({ grad: fromValues(dy, [B, N, D]) });
    return [out.data(), takeGrad(xt), takeGrad(at), takeGrad(wt), takeGrad(bt), takeGrad(w2t)].map((a) => Buffer.from(a.buffer));
  });
  try {
    dv.setThreads(1);
    const one = run();
    dv.setThreads(2);
    const two = run();
    one.forEach((a, i) => expect(a.equals(two[i]), `output ${i}`).toBe(true));
  } finally {
    dv.setThreads(before);
  }
});

// The ops' argument checks run before any kernel, whatever the device: run once, on the cpu.
test('ops reject bad arguments with clear errors', () => {
  dv.scope(() => {
    const x = dv.ones([2, 3, 4]), m = dv.ones([2, 1, 4]);
    const gone = dv.ones([2, 4]);
    gone.dispose();
    const ints = dv.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4], 'int32');
    const lnm = 'diffvit.layerNormModulate: argument';
    expect(() => dv.layerNormModulate(dv.ones([3, 4]), m, m)).toThrow(`${lnm} 'x' expected rank 3 (batch, tokens, features), received shape [3, 4]`);
    expect(() => dv.layerNormModulate('x' as unknown as dv.Tensor, m, m)).toThrow(`${lnm} 'x' expected a Tensor, received 'x'`);
    expect(() => dv.layerNormModulate(x, dv.ones([2, 4, 1]), m)).toThrow(`${lnm} 'shift' expected shape [2, 1, 4] or [2, 4] (x is [2, 3, 4]), received shape [2, 4, 1]`);
    expect(() => dv.layerNormModulate(x, m, dv.ones([1, 4]))).toThrow(`${lnm} 'scale' expected shape [2, 1, 4] or [2, 4]`);
    expect(() => dv.layerNormModulate(x, m, gone)).toThrow(`${lnm} 'scale' expected a live tensor`);
    expect(() => dv.layerNormModulate(x, ints, m)).toThrow(`${lnm} 'shift' expected dtype float32, received int32`);
    for (const eps of [0, -1e-5, NaN, Infinity, 1e-50, 1e300]) {
      expect(() => dv.layerNormModulate(x, m, m, eps)).toThrow(`${lnm} 'eps' expected a finite number > 0`);
    }
    const ag = 'diffvit.addGated: argument';
    expect(() => dv.addGated(x, m, dv.ones([2, 3, 5]))).toThrow(`${ag} 'y' expected shape [2, 3, 4] (the shape of x), received shape [2, 3, 5]`);
    expect(() => dv.addGated(x, dv.ones([2, 3, 4]), x)).toThrow(`${ag} 'gate' expected shape [2, 1, 4] or [2, 4] (x is [2, 3, 4]), received shape [2, 3, 4]`);
    expect(() => dv.addGated(x, gone, x)).toThrow(`${ag} 'gate' expected a live tensor`);
    expect(() => dv.addGated(dv.ones([4]), m, x)).toThrow(`${ag} 'x' expected rank 3`);
    expect(() => dv.addGated(x, m, ints)).toThrow(`${ag} 'y' expected dtype float32, received int32`);
    const lg = 'diffvit.linearGelu: argument';
    expect(() => dv.linearGelu(x, dv.ones([5, 3]))).toThrow(`${lg} 'x' expected last dim 3 (weight is [5, 3]), received shape [2, 3, 4]`);
    expect(() => dv.linearGelu(x, dv.ones([5, 4, 1]))).toThrow(`${lg} 'weight' expected rank 2, received shape [5, 4, 1]`);
    expect(() => dv.linearGelu(x, dv.ones([5, 4]), dv.ones([4]))).toThrow(`${lg} 'bias' expected shape [5], received [4]`);
    expect(() => dv.linearGelu(x, gone)).toThrow(`${lg} 'weight' expected a live tensor`);
    expect(() => dv.linearGelu(ints, dv.ones([5, 4]))).toThrow(`${lg} 'x' expected dtype float32, received int32`);
  });
});

// The CPU addon's own argument checks (native calls): CPU only.
test('native entry points validate every argument', () => {
  const bufs: NativeBuffer[] = [];
  const buf = (n: number, dtype: 'float32' | 'int32' = 'float32') => {
    const b = new native.NativeBuffer('cpu', dtype, n);
    bufs.push(b);
    return b;
  };
  // Cases are written by argument position; kernels take one object keyed by kernels.def's names.
  const table = native.kernelTable();
  const call = (fn: unknown, base: unknown[], over: [number, unknown][]) => {
    const args = [...base];
    for (const [i, v] of over) args[i] = v;
    const names = table[(fn as { name: string }).name];
    expect(names).toHaveLength(args.length);
    return () => (fn as (a: unknown) => void)(Object.fromEntries(names.map((n, i) => [n, args[i]])));
  };
  try {
    // batch 2, tokens 3, cols 4; shift/scale rows 24 apart (a (2, 24) buffer's column slices).
    const x = buf(24), y = buf(24), mod = buf(48), stats = buf(6), short = buf(5), ints = buf(24, 'int32');
    const lnBase = [x, 0, mod, 0, 24, mod, 4, 24, y, 0, stats, 0, stats, 0, 2, 3, 4, 1e-6];
    const ln = (...over: [number, unknown][]) => call(native.layerNormModulate, lnBase, over);
    expect(ln()).not.toThrow();
    expect(ln([10, null], [12, null])).not.toThrow();
    const e = 'diffvit.layerNormModulate: argument';
    expect(ln([0, short])).toThrow(`${e} 'x' expected at least 24 float32 elements`);
    expect(ln([1, 1])).toThrow(`${e} 'x' expected at least 25 float32 elements (offset 1 + 24)`);
    expect(ln([6, 21])).toThrow(`${e} 'scale' expected at least 49 float32 elements (offset 21 + 28)`);
    expect(ln([4, 45])).toThrow(`${e} 'shift' expected at least 49`);
    expect(ln([8, short])).toThrow(`${e} 'y' expected at least 24`);
    expect(ln([10, short])).toThrow(`${e} 'mean' expected at least 6`);
    expect(ln([13, 1])).toThrow(`${e} 'rstd' expected at least 7`);
    expect(ln([0, ints])).toThrow(`${e} 'x' expected dtype float32, received int32`);
    expect(ln([2, 'm'])).toThrow(`${e} 'shift' expected a float32 NativeBuffer, received a string`);
    expect(ln([4, -1])).toThrow(`${e} 'shiftStride' expected an integer in [0,`);
    expect(ln([15, 2.5])).toThrow(`${e} 'tokens' expected an integer, received 2.5`);
    for (const eps of [0, -1, NaN, Infinity, 1e-50, 1e40]) expect(ln([17, eps])).toThrow(`${e} 'eps' expected a finite number`);
    expect(() => (native.layerNormModulate as (...a: unknown[]) => void)(x, 0)).toThrow(`${e} '(arguments)' expected one object { x, xOffset, shift,`);

    const lnbBase = [x, 0, mod, 0, 24, stats, 0, stats, 0, y, 0, buf(24), 0, buf(8), 0, buf(8), 0, 2, 3, 4];
    const lnb = (...over: [number, unknown][]) => call(native.layerNormModulateBackward, lnbBase, over);
    const eb = 'diffvit.layerNormModulateBackward: argument';
    expect(lnb()).not.toThrow();
    expect(lnb([11, null], [13, null], [15, null])).not.toThrow();
    expect(lnb([5, short])).toThrow(`${eb} 'mean' expected at least 6`);
    expect(lnb([8, 1])).toThrow(`${eb} 'rstd' expected at least 7`);
    expect(lnb([9, short])).toThrow(`${eb} 'dy' expected at least 24`);
    expect(lnb([11, short])).toThrow(`${eb} 'dx' expected at least 24`);
    expect(lnb([13, short])).toThrow(`${eb} 'dshift' expected at least 8`);
    expect(lnb([16, 1])).toThrow(`${eb} 'dscale' expected at least 9`);
    expect(lnb([4, 45])).toThrow(`${eb} 'scale' expected at least 49`);
    expect(lnb([19, -4])).toThrow(`${eb} 'cols' expected an integer in [0,`);

    const agBase = [x, 0, mod, 8, 24, y, 0, buf(24), 0, 2, 3, 4];
    const ag = (...over: [number, unknown][]) => call(native.addGated, agBase, over);
    const ea = 'diffvit.addGated: argument';
    expect(ag()).not.toThrow();
    expect(ag([3, 21])).toThrow(`${ea} 'gate' expected at least 49`);
    expect(ag([5, short])).toThrow(`${ea} 'y' expected at least 24`);
    expect(ag([7, short])).toThrow(`${ea} 'out' expected at least 24`);
    expect(ag([0, ints])).toThrow(`${ea} 'x' expected dtype float32`);
    expect(ag([4, 1.5])).toThrow(`${ea} 'gateStride' expected an integer, received 1.5`);

    const agbBase = [mod, 8, 24, y, 0, x, 0, buf(24), 0, buf(8), 0, 2, 3, 4];
    const agb = (...over: [number, unknown][]) => call(native.addGatedBackward, agbBase, over);
    const eab = 'diffvit.addGatedBackward: argument';
    expect(agb()).not.toThrow();
    expect(agb([7, null], [9, null])).not.toThrow();
    expect(agb([5, short])).toThrow(`${eab} 'dout' expected at least 24`);
    expect(agb([7, short])).toThrow(`${eab} 'dy' expected at least 24`);
    expect(agb([9, short])).toThrow(`${eab} 'dgate' expected at least 8`);
    expect(agb([1, 25])).toThrow(`${eab} 'gate' expected at least 53`);

    // x (6, 4) -> out (6, 5): W stored (5, 4), or (4, 5) when transposed.
    const w = buf(20), bias = buf(5), out = buf(30), pre = buf(30);
    const laBase = [x, 0, w, 0, false, 4, bias, 0, out, 0, pre, 0, 6, 5, 4, 'gelu_tanh', 'float32'];
    const la = (...over: [number, unknown][]) => call(native.linearAct, laBase, over);
    const el = 'diffvit.linearAct: argument';
    expect(la()).not.toThrow();
    expect(la([4, true], [5, 5], [6, null], [10, null], [15, 'none'])).not.toThrow();
    expect(la([5, 3])).toThrow(`${el} 'ldw' expected ldw >= 4, received 3`);
    expect(la([4, true])).toThrow(`${el} 'ldw' expected ldw >= 5, received 4`);
    expect(la([5, 5])).toThrow(`${el} 'weight' expected at least 24`);
    expect(la([0, short])).toThrow(`${el} 'x' expected at least 24`);
    expect(la([6, short], [7, 1])).toThrow(`${el} 'bias' expected at least 6`);
    expect(la([8, short])).toThrow(`${el} 'out' expected at least 30`);
    expect(la([11, 1])).toThrow(`${el} 'pre' expected at least 31`);
    expect(la([15, 'relu'])).toThrow(`${el} 'act' expected one of`);
    expect(la([4, 1])).toThrow(`${el} 'weightTransposed' expected a boolean`);
    expect(la([16, 'bf16'])).not.toThrow();
    expect(la([16, 'fp16'])).toThrow(`${el} 'precision' expected one of 'float32', 'bf16'`);

    const gbBase = [y, 0, x, 0, buf(24), 0, buf(4), 0, 6, 4];
    const gb = (...over: [number, unknown][]) => call(native.geluBackwardBias, gbBase, over);
    const eg = 'diffvit.geluBackwardBias: argument';
    expect(gb()).not.toThrow();
    expect(gb([6, null])).not.toThrow();
    expect(gb([0, short])).toThrow(`${eg} 'h' expected at least 24`);
    expect(gb([3, 1])).toThrow(`${eg} 'dout' expected at least 25`);
    expect(gb([4, short])).toThrow(`${eg} 'dh' expected at least 24`);
    expect(gb([6, short], [7, 2])).toThrow(`${eg} 'dbias' expected at least 6`);
  } finally {
    for (const b of bufs) b.dispose();
  }
});
