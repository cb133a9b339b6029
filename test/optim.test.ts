import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import { adamwUpdate, type AdamWOptions } from '../lib/ops/optim.js';
import { describeEachBackend, expectClose, fromValues, ODD_SIZES, randomValues, recordError, toF32 } from './helpers.js';

interface Hyper { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** torch.optim.AdamW's single-tensor update in float64, in place on p, m, v. */
function refAdamW(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, h: Hyper, step: number): void {
  const bc1 = 1 - h.beta1 ** step, bc2 = 1 - h.beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    p[i] -= (h.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + h.eps);
  }
}

const PYTORCH_DEFAULTS: Hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Runs 5 steps with fresh random gradients on both sides and compares p, m, v after each. */
function checkSteps(n: number, h: Hyper, options: (step: number) => AdamWOptions, seed: number, device: string): void {
  const p = toF32(randomValues(n, seed)), m = new Float64Array(n), v = new Float64Array(n);
  dv.scope(() => {
    const pt = fromValues(p, [n]), mt = dv.zeros([n], { device }), vt = dv.zeros([n], { device });
    let worst = 0;
    for (let step = 1; step <= 5; step++) {
      // Gradients of varied scale per element, so the v-normalisation matters. m = β1 m + (1-β1) g
      // can cancel, so m is held to an absolute bound of a few float32 ulps of the O(1) terms (the
      // table's adamwExpAvg row).
      const g = toF32(randomValues(n, seed * 10 + step, 1).map((x, i) => x * (i % 3 === 0 ? 1e-3 : 1)));
      refAdamW(p, g, m, v, h, step);
      adamwUpdate(pt, fromValues(g, [n]), mt, vt, options(step));
      worst = Math.max(worst,
        expectClose(pt.data(), p, { dtype: 'float32', kind: 'adamw' }, `param after step ${step}`),
        expectClose(mt.data(), m, { dtype: 'float32', kind: 'adamwExpAvg' }, `exp_avg after step ${step}`),
        expectClose(vt.data(), v, { dtype: 'float32', kind: 'adamwExpAvgSq' }, `exp_avg_sq after step ${step}`));
    }
    recordError(`adamw wd=${h.weightDecay}`, worst);
  });
}

// Every suite runs once per backend (the cpu once per kernel level); fromValues puts its tensors on the suite's device.
describeEachBackend('adamwUpdate', ({ device }) => {
  const hyper = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-6 };
  test.each([...ODD_SIZES, 40000])('%i elements, weight decay 0.1', (n) => {
    const h = { ...hyper, weightDecay: 0.1 };
    checkSteps(n, h, (step) => ({ ...h, step }), n, device);
  });
  test.each([17, 40000])('%i elements, weight decay off', (n) => {
    const h = { ...hyper, weightDecay: 0 };
    checkSteps(n, h, (step) => ({ ...h, step }), n + 1, device);
  });
  test('defaults are torch.optim.AdamW\'s (betas 0.9, 0.999, eps 1e-8, weight decay 0.01)', () => {
    checkSteps(65, PYTORCH_DEFAULTS, (step) => ({ lr: 1e-3, step }), 3, device);
  });

  test('views at different offsets (no common alignment) update exactly as fresh tensors', () => {
    const n = 1031, step = 3, opts = { lr: 0.01, weightDecay: 0.05, step };
    const p0 = randomValues(n, 21), g0 = randomValues(n, 22), m0 = randomValues(n, 23).map((x) => 0.1 * x);
    const v0 = randomValues(n, 24).map((x) => 0.01 * x * x);
    dv.scope(() => {
      const at = (values: Float64Array, offset: number) =>
        fromValues(Float64Array.from([...new Array(offset).fill(5), ...values]), [offset + n]).slice(0, offset, offset + n);
      const [p, g, m, v] = [at(p0, 1), at(g0, 2), at(m0, 3), at(v0, 0)];
      const [pa, ga, ma, va] = [p0, g0, m0, v0].map((x) => fromValues(x, [n]));
      adamwUpdate(p, g, m, v, opts);
      adamwUpdate(pa, ga, ma, va, opts);
      expect(Array.from(p.data())).toEqual(Array.from(pa.data()));
      expect(Array.from(m.data())).toEqual(Array.from(ma.data()));
      expect(Array.from(v.data())).toEqual(Array.from(va.data()));
    });
  });

  test('adamwUpdate works on any shape and leaves the gradient untouched', () => {
    dv.scope(() => {
      const g0 = toF32(randomValues(12, 5));
      const p = fromValues(randomValues(12, 4), [3, 4]), g = fromValues(g0, [3, 4]);
      const m = dv.zeros([3, 4], { device }), v = dv.zeros([3, 4], { device });
      const before = p.data();
      adamwUpdate(p, g, m, v, { lr: 0.1, weightDecay: 0, step: 1 });
      // Step 1 from zero moments moves every parameter by lr·sign(g) (up to eps).
      const after = p.data();
      expectClose(Array.from(after, (a, i) => a - before[i]), Array.from(g0, (x) => -0.1 * Math.sign(x)), { dtype: 'float32', kind: 'adamw' },
        'p after - p before');
      expect(Array.from(g.data())).toEqual(Array.from(Float32Array.from(g0)));
    });
  });
});

// Argument checks (the op's, and the addon's overlap check behind it): run once, on the cpu.
test('adamwUpdate validates tensors and hyper-parameters', () => {
  dv.scope(() => {
    const p = dv.ones([4, 5]), g = dv.ones([4, 5]), m = dv.zeros([4, 5]), v = dv.zeros([4, 5]);
    const ok = { lr: 1e-3, step: 1 };
    expect(() => adamwUpdate(p, dv.ones([5, 4]), m, v, ok))
      .toThrow("diffvit.adamwUpdate: argument 'grad' expected shape [4, 5] (the shape of param), received shape [5, 4]");
    expect(() => adamwUpdate(p, dv.transpose(dv.ones([5, 4]), 0, 1), m, v, ok))
      .toThrow(/argument 'grad' expected a contiguous tensor, received a strided view of shape \[4, 5\]/);
    expect(() => adamwUpdate(p, g, dv.zeros([4, 5], 'int32'), v, ok)).toThrow(/argument 'expAvg' expected dtype float32, received int32/);
    expect(() => adamwUpdate(p, g, m, dv.zeros([20]), ok)).toThrow(/argument 'expAvgSq' expected shape \[4, 5\]/);
    expect(() => adamwUpdate(p, g, m, v, { lr: -1, step: 1 })).toThrow(/argument 'options.lr' expected a finite number >= 0, received -1/);
    expect(() => adamwUpdate(p, g, m, v, { lr: NaN, step: 1 })).toThrow(/argument 'options.lr'/);
    expect(() => adamwUpdate(p, g, m, v, { ...ok, beta1: 1 })).toThrow(/argument 'options.beta1' expected a number in \[0, 1\), received 1/);
    expect(() => adamwUpdate(p, g, m, v, { ...ok, beta2: -0.1 })).toThrow(/argument 'options.beta2'/);
    expect(() => adamwUpdate(p, g, m, v, { ...ok, eps: -1e-8 })).toThrow(/argument 'options.eps'/);
    expect(() => adamwUpdate(p, g, m, v, { ...ok, weightDecay: -0.1 })).toThrow(/argument 'options.weightDecay'/);
    expect(() => adamwUpdate(p, g, m, v, { lr: 1e-3, step: 0 })).toThrow(/argument 'options.step' expected an integer >= 1, received 0/);
    expect(() => adamwUpdate(p, g, m, v, { lr: 1e-3, step: 1.5 })).toThrow(/argument 'options.step'/);
    // The same tensor as param and state would be read and written in one pass.
    expect(() => adamwUpdate(p, g, m, m, ok)).toThrow(/diffvit\.adamw: argument 'expAvgSq' expected memory not overlapping 'expAvg'/);
    expect(Array.from(p.data())).toEqual(new Array(20).fill(1));
  });
});

// The CPU addon's own argument checks (native calls): CPU only.
test('adamw binding checks extents and hyper-parameters', () => {
  const b = new native.NativeBuffer('cpu', 'float32', 40);
  const c = new native.NativeBuffer('cpu', 'float32', 10);
  try {
    expect(() => native.adamw({
      param: b, paramOffset: 0, grad: b, gradOffset: 5, expAvg: b, expAvgOffset: 20, expAvgSq: c, expAvgSqOffset: 0,
      n: 10, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1
    }))
      .toThrow(/diffvit\.adamw: argument 'grad' expected memory not overlapping 'param'/);
    expect(() => native.adamw({
      param: b, paramOffset: 0, grad: b, gradOffset: 10, expAvg: b, expAvgOffset: 20, expAvgSq: c, expAvgSqOffset: 5,
      n: 10, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1
    }))
      .toThrow(/argument 'expAvgSq' expected at least 15 float32 elements/);
    expect(() => native.adamw({
      param: b, paramOffset: 0, grad: b, gradOffset: 10, expAvg: b, expAvgOffset: 20, expAvgSq: c, expAvgSqOffset: 0,
      n: 10, lr: 1e-3, beta1: 1.5, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1
    }))
      .toThrow(/argument 'beta1' expected a number in \[0, 1\), received 1.5/);
    expect(() => native.adamw({
      param: b, paramOffset: 0, grad: b, gradOffset: 10, expAvg: b, expAvgOffset: 20, expAvgSq: c, expAvgSqOffset: 0,
      n: 10, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 0
    }))
      .toThrow(/argument 'step' expected an integer in \[1,/);
  } finally {
    b.dispose();
    c.dispose();
  }
});
