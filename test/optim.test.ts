import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import { adamwUpdate, adamwUpdateControlled, type AdamWOptions, emaUpdateControlled, STEP_CONTROL, trainStepControl } from '../lib/ops/optim.js';
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

// ---------------------------------------------------------------------------------------------
// The kernels of a training step captured whole in a CUDA graph: the decisions and scalars the
// eager step passes as arguments come from a control block in device memory instead.

/** A control block with the AdamW scalars of (lr, weightDecay, step), rounded as the eager binding rounds them. */
function controlValues(o: { lr: number; weightDecay: number; step: number; beta1?: number; beta2?: number; emaBeta?: number; enabled?: boolean }): Float32Array {
  const { beta1 = 0.9, beta2 = 0.999, emaBeta = 0.75 } = o;
  const c = new Float32Array(STEP_CONTROL.size);
  c[STEP_CONTROL.enabled] = o.enabled === false ? 0 : 1;
  c[STEP_CONTROL.apply] = 1;
  c[STEP_CONTROL.gradScale] = 1;
  c[STEP_CONTROL.decay] = 1 - o.lr * o.weightDecay;
  c[STEP_CONTROL.stepSize] = o.lr / (1 - beta1 ** o.step);
  c[STEP_CONTROL.invSqrtBc2] = 1 / Math.sqrt(1 - beta2 ** o.step);
  c[STEP_CONTROL.emaBeta] = emaBeta;
  c[STEP_CONTROL.emaOneMinusBeta] = 1 - emaBeta;
  return c;
}

describeEachBackend('the controlled step kernels', ({ device }) => {
  test('trainStepControl decides as the eager step: finite loss and norm, clipping above gradClip (float64 reference)', () => {
    const cases: [loss: number, sumSquares: number, gradClip: number | null, enabled: boolean][] = [
      [0.37, 2.25, 1, true], [0.37, 0.81, 1, true], [1.5, 7.3e5, 0.5, true], [0.2, 3.1, null, true],
      [NaN, 1, 1, true], [0.5, Infinity, 1, true], [Infinity, 0.5, null, true], [0.4, 1e38, 2, true], [0.3, 9, 1, false], [0.1, 0, 1, true],
    ];
    dv.scope(() => {
      for (const [loss, sumSquares, gradClip, enabled] of cases) {
        const stats = fromValues([loss, sumSquares], [2]);
        const control = fromValues(controlValues({ lr: 1e-3, weightDecay: 0, step: 1, enabled }), [STEP_CONTROL.size]);
        trainStepControl(stats, control, gradClip);
        const got = control.data();
        // The host's decision in float64 (lib/train/trainer.ts, eager): on the float32 stats.
        const l = Math.fround(loss), norm = Math.sqrt(Math.fround(sumSquares));
        const apply = enabled && Number.isFinite(l) && Number.isFinite(norm);
        const scale = gradClip !== null && norm > gradClip ? Math.fround(gradClip / (norm + 1e-6)) : 1;
        const what = `loss ${loss}, sum of squares ${sumSquares}, gradClip ${gradClip}, enabled ${enabled}`;
        expect(got[STEP_CONTROL.apply], what).toBe(apply ? 1 : 0);
        expect(got[STEP_CONTROL.gradScale], what).toBe(scale);
        // the host-written slots are left alone
        expect(got[STEP_CONTROL.enabled], what).toBe(enabled ? 1 : 0);
        expect(got[STEP_CONTROL.emaBeta], what).toBe(0.75);
      }
    });
  });

  test.each([1, 7, 33, 1031])('adamwUpdateControlled equals the eager clipping (axpby_) and adamwUpdate bit for bit (%i elements)', (n) => {
    dv.scope(() => {
      const h = { lr: 0.02, weightDecay: 0.1, beta1: 0.85, beta2: 0.98, eps: 1e-6 };
      const init = [randomValues(n, n + 1), randomValues(n, n + 2).map((x) => 0.1 * x), randomValues(n, n + 3).map((x) => 0.01 * x * x)];
      const [pe, me, ve] = init.map((x) => fromValues(x, [n]));
      const [pc, mc, vc] = init.map((x) => fromValues(x, [n]));
      for (let step = 1; step <= 3; step++) {
        const g = fromValues(randomValues(n, 10 * n + step), [n]);
        const scale = step === 2 ? 0.37 : 1; // the second step clipped
        // eager: the host scales the gradients (axpby_), then the update
        const clipped = dv.clone(g);
        if (scale !== 1) dv.axpby_(clipped, clipped, scale, 0);
        adamwUpdate(pe, clipped, me, ve, { ...h, step });
        const control = controlValues({ ...h, step });
        control[STEP_CONTROL.gradScale] = scale;
        adamwUpdateControlled(pc, g, mc, vc, fromValues(control, [STEP_CONTROL.size]), h);
        for (const [a, b, name] of [[pc, pe, 'param'], [mc, me, 'expAvg'], [vc, ve, 'expAvgSq']] as const) {
          expect(Array.from(a.data()), `${name} after step ${step}`).toEqual(Array.from(b.data()));
        }
        expect(Array.from(g.data())).toEqual(Array.from(Float32Array.from(randomValues(n, 10 * n + step)))); // read, never written
      }
      // A step that does not apply changes nothing.
      const control = controlValues({ ...h, step: 4 });
      control[STEP_CONTROL.apply] = 0;
      const before = [pc, mc, vc].map((t) => Array.from(t.data()));
      adamwUpdateControlled(pc, fromValues(randomValues(n, 99), [n]), mc, vc, fromValues(control, [STEP_CONTROL.size]), h);
      expect([pc, mc, vc].map((t) => Array.from(t.data()))).toEqual(before);
    });
  });

  test.each([1, 19, 4099])('emaUpdateControlled equals axpby_(shadow, param, β, 1-β) bit for bit, and nothing when the step does not apply (%i elements)', (n) => {
    dv.scope(() => {
      const beta = 0.5 ** (8 / 37);
      const shadow = fromValues(randomValues(n, 3 * n), [n]), param = fromValues(randomValues(n, 3 * n + 1), [n]);
      const eager = dv.clone(shadow);
      dv.axpby_(eager, param, beta, 1 - beta);
      const control = controlValues({ lr: 0, weightDecay: 0, step: 1, emaBeta: beta });
      const off = Float32Array.from(control);
      off[STEP_CONTROL.apply] = 0;
      emaUpdateControlled(shadow, param, fromValues(off, [STEP_CONTROL.size]));
      expect(Array.from(shadow.data())).toEqual(Array.from(Float32Array.from(randomValues(n, 3 * n))));
      emaUpdateControlled(shadow, param, fromValues(control, [STEP_CONTROL.size]));
      expect(Array.from(shadow.data())).toEqual(Array.from(eager.data()));
      // against float64
      const ref = Array.from(Float32Array.from(randomValues(n, 3 * n)), (s, i) => beta * s + (1 - beta) * Math.fround(randomValues(n, 3 * n + 1)[i]));
      expectClose(shadow.data(), ref, { dtype: 'float32', kind: 'binary' }, 'ema vs float64');
    });
  });
});

test('the controlled step kernels validate their control block, stats and gradClip', () => {
  dv.scope(() => {
    const p = dv.ones([4]), g = dv.ones([4]), m = dv.zeros([4]), v = dv.zeros([4]);
    const control = dv.tensor(controlValues({ lr: 1e-3, weightDecay: 0, step: 1 }), [STEP_CONTROL.size]);
    expect(() => adamwUpdateControlled(p, g, m, v, dv.zeros([7]))).toThrow("diffvit.adamwUpdateControlled: argument 'control' expected a contiguous float32 tensor of 8 values (STEP_CONTROL), received shape [7]");
    expect(() => emaUpdateControlled(p, dv.ones([5]), control)).toThrow(/emaUpdateControlled: argument 'param' expected shape \[4\] \(the shape of shadow\)/);
    expect(() => trainStepControl(dv.zeros([3]), control, 1)).toThrow(/trainStepControl: argument 'stats' expected a contiguous tensor of 2 values/);
    expect(() => trainStepControl(dv.zeros([2]), control, 0)).toThrow("diffvit.trainStepControl: argument 'gradClip' expected a number > 0 or null (no clipping), received 0");
    expect(() => adamwUpdateControlled(p, g, m, v, control, { beta1: 1 })).toThrow(/adamwUpdateControlled: argument 'options.beta1' expected a number in \[0, 1\)/);
    expect(() => adamwUpdateControlled(p, g, m, m, control)).toThrow(/diffvit\.adamwControlled: argument 'expAvgSq' expected memory not overlapping 'expAvg'/);
    expect(() => emaUpdateControlled(p, p, control)).toThrow(/diffvit\.emaControlled: argument 'param' expected memory not overlapping 'shadow'/);
    expect(Array.from(p.data())).toEqual([1, 1, 1, 1]);
  });
});

// The multi-tensor updates AdamW.update and EMA.update run: one kernel call for a model's tensors.
describeEachBackend('adamwUpdateMany and axpbyMany_', ({ device }) => {
  // Awkward sizes, an empty tensor, and totals that cross the CPU's 16 384-element chunks inside tensors.
  const SIZES = [17, 1, 0, 16_385, 3, 40_000, 64, 257];
  const values = (n: number, seed: number, scale = 1) => fromValues(randomValues(n, seed, scale), [n]);

  test('adamwUpdateMany equals adamwUpdate on each tensor bit for bit, over three steps (views at odd offsets too)', () => {
    dv.scope(() => {
      const make = () => SIZES.map((n, i) => ({
        // Every other parameter a view into a larger buffer, at an offset of no common alignment.
        p: i % 2 ? dv.slice(values(n + i + 1, 10 * i), 0, i + 1, i + 1 + n) : values(n, 10 * i),
        m: values(n, 10 * i + 1, 0.1), v: dv.square(values(n, 10 * i + 2, 0.1)),
      }));
      const many = make(), single = make();
      for (let step = 1; step <= 3; step++) {
        const grads = SIZES.map((n, i) => values(n, 100 * step + i));
        const options = { lr: 0.01, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.05, step };
        dv.adamwUpdateMany(many.map((t) => t.p), grads, many.map((t) => t.m), many.map((t) => t.v), options);
        single.forEach((t, i) => adamwUpdate(t.p, grads[i], t.m, t.v, options));
      }
      many.forEach((t, i) => {
        for (const key of ['p', 'm', 'v'] as const) expect(Array.from(t[key].data()), `${key} of tensor ${i} (${SIZES[i]} elements)`).toEqual(Array.from(single[i][key].data()));
      });
      // and it moved them
      expect(Array.from(many[5].p.data())).not.toEqual(Array.from(values(40_000, 50).data()));
    });
  });

  test('axpbyMany_ equals axpby_ on each pair bit for bit (strided sources too)', () => {
    dv.scope(() => {
      const beta = 0.5 ** (32 / 2500);
      const make = () => SIZES.map((n, i) => values(n, 7 * i));
      const srcs = SIZES.map((n, i) => (i === 3 ? dv.transpose(fromValues(randomValues(n, 7 * i + 3), [1, n]), 0, 1).reshape([n]) : values(n, 7 * i + 3)));
      const many = make(), single = make();
      dv.axpbyMany_(many, srcs, beta, 1 - beta);
      single.forEach((d, i) => dv.axpby_(d, srcs[i], beta, 1 - beta));
      many.forEach((d, i) => expect(Array.from(d.data()), `pair ${i} (${SIZES[i]} elements)`).toEqual(Array.from(single[i].data())));
      const ref = Array.from(Float32Array.from(randomValues(257, 49)), (d, i) => beta * d + (1 - beta) * Math.fround(randomValues(257, 52)[i]));
      expectClose(many[7].data(), ref, { dtype: 'float32', kind: 'binary' }, 'axpbyMany_ vs float64');
    });
  });
});

test('adamwUpdateMany and axpbyMany_ check their lists, each tensor, and shared memory', () => {
  dv.scope(() => {
    const [a, b, c, d, e, f] = [3, 3, 3, 3, 3, 3].map((n) => dv.ones([n]));
    const ok = { lr: 1e-3, step: 1 };
    expect(() => dv.adamwUpdateMany([a, b], [c], [d, e], [f, dv.ones([3])], ok)).toThrow("diffvit.adamwUpdateMany: argument 'grads' expected an array of 2 tensors (one per param), received");
    expect(() => dv.adamwUpdateMany([a], [dv.ones([4])], [d], [f], ok)).toThrow("diffvit.adamwUpdateMany: argument 'grads[0]' expected shape [3] (the shape of params[0]), received shape [4]");
    expect(() => dv.adamwUpdateMany([a], [c], [d], [f], { lr: -1, step: 1 })).toThrow(/adamwUpdateMany: argument 'options.lr' expected a finite number >= 0/);
    // A tensor updated twice in one pass, or state shared between tensors, would race.
    expect(() => dv.adamwUpdateMany([a, a], [b, c], [d, e], [f, dv.ones([3])], ok)).toThrow(/diffvit\.adamwMany: argument 'params\[1\]' expected memory not overlapping 'params\[0\]'/);
    expect(() => dv.adamwUpdateMany([a, b], [c, d], [e, f], [f, dv.ones([3])], ok)).toThrow(/diffvit\.adamwMany: argument '\w+\[\d\]' expected memory not overlapping '\w+\[\d\]'/);
    // Gradients are only read: two parameters may share one.
    const x = dv.zeros([3]), y = dv.zeros([3]);
    dv.adamwUpdateMany([a, b], [c, c], [d, e], [x, y], ok);
    expect(Array.from(a.data())).toEqual(Array.from(b.data()));
    const disposed = dv.ones([3]);
    disposed.dispose();
    expect(() => dv.axpbyMany_([a, disposed], [b, c], 0.5, 0.5)).toThrow(/axpbyMany_: argument 'dsts\[1\]'/);
    expect(() => dv.axpbyMany_([a], [b, c], 0.5, 0.5)).toThrow("diffvit.axpbyMany_: argument 'srcs' expected an array of 1 tensors (one per dst), received");
    expect(() => dv.axpbyMany_([a, b], [c, a], 0.5, 0.5)).toThrow(/diffvit\.axpbyMany: argument 'dsts\[0\]' expected memory not overlapping 'srcs\[1\]'|argument 'srcs\[1\]' expected memory not overlapping 'dsts\[0\]'/);
    dv.axpbyMany_([], [], 0.5, 0.5); // nothing to do
  });
});
