/**
 * maxPool2d, avgPool2d and resizeBilinear against float64 references written from PyTorch's
 * definitions (pooling_output_shape, avg_pool2d's divisor, area_pixel_compute_source_index), at
 * every CPU level, on odd sizes; then the references themselves against PyTorch where it is
 * installed, so a misreading of PyTorch's rules cannot hide in both.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import { avgPool2d, maxPool2d, resizeBilinear } from '../lib/ops/pool.js';
import { describeEachBackend, expectClose, fromValues, ODD_SIZES, randomValues, recordError, toF32 } from './helpers.js';

interface PoolCase {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number;
  ceil: boolean;
  countIncludePad: boolean;
}

/** PyTorch's pooling_output_shape (no dilation). */
function pooled(inSize: number, k: number, s: number, p: number, ceil: boolean): number {
  let out = Math.floor((inSize + 2 * p - k + (ceil ? s - 1 : 0)) / s) + 1;
  if (ceil && (out - 1) * s >= inSize + p) out--;
  return out;
}
const outSize = (c: PoolCase): [number, number] => [pooled(c.h, c.kh, c.sh, c.ph, c.ceil), pooled(c.w, c.kw, c.sw, c.pw, c.ceil)];

/** Float64 max or average pooling of x (N, C, H, W), PyTorch's CPU kernels written plainly. */
function refPool(c: PoolCase, kind: 'max' | 'avg', x: Float64Array): Float64Array {
  const [oh, ow] = outSize(c);
  const out = new Float64Array(c.n * c.c * oh * ow);
  for (let p = 0; p < c.n * c.c; p++) for (let y = 0; y < oh; y++) for (let z = 0; z < ow; z++) {
    let hs = y * c.sh - c.ph, ws = z * c.sw - c.pw;
    let he = Math.min(hs + c.kh, c.h + c.ph), we = Math.min(ws + c.kw, c.w + c.pw);
    const poolSize = (he - hs) * (we - ws);
    hs = Math.max(hs, 0);
    ws = Math.max(ws, 0);
    he = Math.min(he, c.h);
    we = Math.min(we, c.w);
    let acc = kind === 'max' ? -Infinity : 0;
    for (let i = hs; i < he; i++) for (let j = ws; j < we; j++) {
      const v = x[(p * c.h + i) * c.w + j];
      if (kind === 'max') acc = v > acc || Number.isNaN(v) ? v : acc;
      else acc += v;
    }
    out[(p * oh + y) * ow + z] = kind === 'max' ? acc : acc / (c.countIncludePad ? poolSize : (he - hs) * (we - ws));
  }
  return out;
}

interface ResizeCase {
  n: number; c: number; h: number; w: number; oh: number; ow: number;
  alignCorners: boolean;
}

/**
 * Float64 bilinear resize with PyTorch's source-index rule. Source positions and weights are
 * rounded to float32 step by step (Math.fround) as PyTorch computes them for float tensors: in
 * float64 a 257 -> 3 downscale would move the sample points by ~1e-5 of a pixel.
 */
function refResize(c: ResizeCase, x: Float64Array): Float64Array {
  const f = Math.fround;
  const axis = (inSize: number, outSize: number) => {
    const scale = f(c.alignCorners ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0) : inSize / outSize);
    return Array.from({ length: outSize }, (_, o) => {
      const src = c.alignCorners ? f(scale * o) : Math.max(f(f(scale * (o + 0.5)) - 0.5), 0);
      const i0 = Math.min(Math.floor(src), inSize - 1);
      const l1 = Math.min(Math.max(src - i0, 0), 1);
      return { i0, i1: i0 < inSize - 1 ? i0 + 1 : i0, l0: f(1 - l1), l1 };
    });
  };
  const ah = axis(c.h, c.oh), aw = axis(c.w, c.ow);
  const out = new Float64Array(c.n * c.c * c.oh * c.ow);
  for (let p = 0; p < c.n * c.c; p++) for (let y = 0; y < c.oh; y++) for (let z = 0; z < c.ow; z++) {
    const at = (i: number, j: number) => x[(p * c.h + i) * c.w + j];
    const { i0, i1, l0, l1 } = ah[y], cw = aw[z];
    const top = at(i0, cw.i0) * cw.l0 + at(i0, cw.i1) * cw.l1, bottom = at(i1, cw.i0) * cw.l0 + at(i1, cw.i1) * cw.l1;
    out[(p * c.oh + y) * c.ow + z] = top * l0 + bottom * l1;
  }
  return out;
}

const poolOptions = (c: PoolCase) => ({
  stride: [c.sh, c.sw] as [number, number], padding: [c.ph, c.pw] as [number, number], ceilMode: c.ceil, countIncludePad: c.countIncludePad,
});

function runPool(kind: 'max' | 'avg', c: PoolCase, x: dv.Tensor): dv.Tensor {
  return kind === 'max' ? maxPool2d(x, [c.kh, c.kw], poolOptions(c)) : avgPool2d(x, [c.kh, c.kw], poolOptions(c));
}

/** Forward check of one pooling case on seeded inputs; returns the max relative error. */
function checkPool(kind: 'max' | 'avg', c: PoolCase, seed: number): number {
  const x = toF32(randomValues(c.n * c.c * c.h * c.w, seed));
  const expected = refPool(c, kind, x);
  return dv.scope(() => {
    const y = runPool(kind, c, fromValues(x, [c.n, c.c, c.h, c.w]));
    expect(y.shape).toEqual([c.n, c.c, ...outSize(c)]);
    const err = expectClose(y.data(), expected, { dtype: 'float32', kind: 'pool' }, `${kind}Pool2d`);
    recordError(`${kind}Pool2d`, err);
    return err;
  });
}

const base = { n: 2, c: 3, ceil: false, countIncludePad: true };
const poolCases: [string, PoolCase][] = [
  ['Inception stem: kernel 3, stride 2, 17×17', { ...base, h: 17, w: 17, kh: 3, kw: 3, sh: 2, sw: 2, ph: 0, pw: 0 }],
  ['Inception blocks: kernel 3, stride 1, pad 1, 35×35', { ...base, h: 35, w: 35, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 }],
  ['kernel 3, stride 1, pad 1, no padding counted', { ...base, h: 17, w: 65, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, countIncludePad: false }],
  ['kernel (2, 3), stride (1, 2), pad (1, 1), ceil mode', { ...base, h: 13, w: 17, kh: 2, kw: 3, sh: 1, sw: 2, ph: 1, pw: 1, ceil: true }],
  ['kernel 3, stride 2, pad 1, ceil mode, 8×8 (window past the padding)', { ...base, h: 8, w: 8, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true }],
  ['ceil mode, no padding counted', { ...base, h: 8, w: 9, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ceil: true, countIncludePad: false }],
  ['kernel (5, 1), stride (3, 1), pad (2, 0), 1 plane', { ...base, n: 1, c: 1, h: 19, w: 7, kh: 5, kw: 1, sh: 3, sw: 1, ph: 2, pw: 0 }],
  ['kernel 1, 1×1 image', { ...base, h: 1, w: 1, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0 }],
  ['kernel 3, pad 1 on a 1×1 image', { ...base, h: 1, w: 1, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, countIncludePad: false }],
  ['global: kernel = image 7×9', { ...base, h: 7, w: 9, kh: 7, kw: 9, sh: 1, sw: 1, ph: 0, pw: 0 }],
];

const resizeCases: [string, ResizeCase][] = [
  ['upscale 5×7 -> 17×13', { n: 2, c: 3, h: 5, w: 7, oh: 17, ow: 13, alignCorners: false }],
  ['downscale 65×33 -> 17×5', { n: 1, c: 3, h: 65, w: 33, oh: 17, ow: 5, alignCorners: false }],
  ['same size 9×9', { n: 1, c: 2, h: 9, w: 9, oh: 9, ow: 9, alignCorners: false }],
  ['1×1 -> 3×3', { n: 1, c: 3, h: 1, w: 1, oh: 3, ow: 3, alignCorners: false }],
  ['3×3 -> 1×1', { n: 1, c: 3, h: 3, w: 3, oh: 1, ow: 1, alignCorners: false }],
  ['align corners 5×7 -> 17×13', { n: 2, c: 3, h: 5, w: 7, oh: 17, ow: 13, alignCorners: true }],
  ['align corners 6×6 -> 1×4', { n: 1, c: 1, h: 6, w: 6, oh: 1, ow: 4, alignCorners: true }],
];

function checkResize(c: ResizeCase, seed: number): number {
  const x = toF32(randomValues(c.n * c.c * c.h * c.w, seed));
  const expected = refResize(c, x);
  return dv.scope(() => {
    const y = resizeBilinear(fromValues(x, [c.n, c.c, c.h, c.w]), [c.oh, c.ow], { alignCorners: c.alignCorners });
    expect(y.shape).toEqual([c.n, c.c, c.oh, c.ow]);
    const err = expectClose(y.data(), expected, { dtype: 'float32', kind: 'resize' }, 'resizeBilinear');
    recordError('resizeBilinear', err);
    return err;
  });
}

// Every suite runs once per backend (the cpu once per kernel level); fromValues puts its tensors on the suite's device.
describeEachBackend('pooling', ({ device }) => {
  for (const kind of ['max', 'avg'] as const) {
    test.each(poolCases)(`${kind}: %s`, (_name, c) => {
      checkPool(kind, c, 7);
    });
    test(`${kind}: odd widths ${ODD_SIZES.join(', ')} (vector bodies and tails), kernel 3, stride 1 and 2`, () => {
      for (const w of ODD_SIZES) {
        for (const s of [1, 2]) {
          checkPool(kind, { ...base, n: 1, c: 2, h: 5, w, kh: 3, kw: 3, sh: s, sw: s, ph: 1, pw: 1, countIncludePad: s === 1 }, w + s);
        }
      }
    });
  }

  test('max: a NaN in a window gives NaN, -inf loses to any other value', () => {
    const x = new Float32Array(4 * 20).map((_, i) => i % 7);
    x[5] = NaN; // row 0, col 5
    x[20 + 12] = -Infinity;
    x[40 + 19] = NaN; // row 2, last col: a vector tail lane
    const c: PoolCase = { ...base, n: 1, c: 1, h: 4, w: 20, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 };
    const expected = refPool(c, 'max', Float64Array.from(x));
    dv.scope(() => {
      const y = maxPool2d(dv.tensor(x, [1, 1, 4, 20], { device }), 3, { stride: 1, padding: 1 }).data();
      for (let i = 0; i < y.length; i++) {
        if (Number.isNaN(expected[i])) expect(y[i], `element ${i}`).toBeNaN();
        else expect(y[i], `element ${i}`).toBe(expected[i]);
      }
      // windows over (0, 5): rows 0-1 × cols 4-6; over (2, 19): rows 1-3 × cols 18-19
      expect(y.filter(Number.isNaN).length).toBe(6 + 6);
    });
  });

  test.each(resizeCases)('resize: %s', (_name, c) => {
    checkResize(c, 9);
  });

  test(`resize: odd sizes ${ODD_SIZES.join(', ')} in and out`, () => {
    for (const a of ODD_SIZES) for (const b of ODD_SIZES.slice(0, 4)) checkResize({ n: 1, c: 1, h: b, w: a, oh: a, ow: b, alignCorners: false }, a * b);
  });
});

describeEachBackend('pool and resize ops', ({ device }) => {
  test('the FID Inception resize: (2, 3, 32, 32) -> (2, 3, 299, 299)', () => {
    checkResize({ n: 2, c: 3, h: 32, w: 32, oh: 299, ow: 299, alignCorners: false }, 3);
  });

  test('rank-3 inputs (C, H, W) and strided views give the same values as contiguous NCHW', () => {
    dv.scope(() => {
      const x = fromValues(randomValues(2 * 3 * 9 * 11, 5), [2, 3, 9, 11]);
      const hwcView = dv.permute(dv.contiguous(dv.permute(x, [0, 2, 3, 1])), [0, 3, 1, 2]); // NHWC memory, NCHW view
      expect(hwcView.isContiguous()).toBe(false);
      for (const f of [
        (t: dv.Tensor) => maxPool2d(t, 3, { stride: 2, padding: 1 }),
        (t: dv.Tensor) => avgPool2d(t, [3, 2], { stride: 1, countIncludePad: false }),
        (t: dv.Tensor) => resizeBilinear(t, [13, 5]),
      ]) {
        const want = f(x);
        expect(f(hwcView).data()).toEqual(want.data());
        const one = f(dv.slice(x, 0, 1, 2).reshape([3, 9, 11]));
        expect(one.shape).toEqual(want.shape.slice(1));
        expect(one.data()).toEqual(want.data().subarray(want.size / 2));
      }
    });
  });

  test('empty batches give empty outputs', () => {
    dv.scope(() => {
      const x = dv.zeros([0, 3, 8, 8], { device });
      expect(maxPool2d(x, 2).shape).toEqual([0, 3, 4, 4]);
      expect(avgPool2d(x, 3, { stride: 1, padding: 1 }).shape).toEqual([0, 3, 8, 8]);
      expect(resizeBilinear(x, [5, 6]).shape).toEqual([0, 3, 5, 6]);
    });
  });

  test('an input that needs a gradient is refused (forward-only ops), and accepted under noGrad', () => {
    dv.scope(() => {
      const x = fromValues(randomValues(2 * 3 * 8 * 8, 4), [2, 3, 8, 8], true);
      expect(() => maxPool2d(x, 2)).toThrow(/diffvit\.maxPool2d: no gradient is implemented \(inference only\)/);
      expect(() => avgPool2d(x, 2)).toThrow(/diffvit\.avgPool2d: no gradient/);
      expect(() => resizeBilinear(x, 4)).toThrow(/diffvit\.resizeBilinear: no gradient/);
      expect(dv.noGrad(() => maxPool2d(x, 2)).shape).toEqual([2, 3, 4, 4]);
      expect(maxPool2d(dv.detach(x), 2).requiresGrad).toBe(false);
    });
  });
});

// Thread counts, the ops' argument checks (they run before any kernel) and the addon's own checks: once, on the cpu.
describe('pool and resize on the CPU', () => {
  test('results are bitwise identical for any thread count', () => {
    const threads = dv.runtimeInfo().threads;
    const run = (t: number) => {
      dv.setThreads(t);
      return dv.scope(() => {
        const x = fromValues(randomValues(3 * 4 * 37 * 41, 8), [3, 4, 37, 41]);
        return [maxPool2d(x, 3, { stride: 2 }), avgPool2d(x, 3, { stride: 1, padding: 1 }), resizeBilinear(x, 299)].map((y) => y.data());
      });
    };
    try {
      const one = run(1), many = run(3);
      // bitwise, as bytes (a deep equality of a million-element array takes seconds)
      const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      one.forEach((v, i) => expect(bytes(many[i]).equals(bytes(v)), `output ${i}`).toBe(true));
    } finally {
      dv.setThreads(threads);
    }
  });

  test('the ops validate their arguments', () => {
    dv.scope(() => {
      const x = dv.ones([2, 3, 8, 8]);
      expect(() => maxPool2d(dv.ones([8, 8]), 2)).toThrow(/diffvit\.maxPool2d: argument 'x' expected rank 3 or 4, received shape \[8, 8\]/);
      expect(() => maxPool2d(x, 0)).toThrow(/diffvit\.maxPool2d: argument 'kernelSize' expected an integer in \[1, 2\^31\) or a pair/);
      expect(() => avgPool2d(x, [3, 3, 3] as unknown as number)).toThrow(/argument 'kernelSize'/);
      expect(() => maxPool2d(x, 3, { padding: 2 })).toThrow(/argument 'options.padding' expected at most half the kernel \(1, 1\), received 2/);
      expect(() => maxPool2d(x, 3, { stride: 0 })).toThrow(/argument 'options.stride' expected an integer in \[1, 2\^31\)/);
      expect(() => avgPool2d(x, 9)).toThrow(/argument 'kernelSize' expected a window no larger than the padded input 8×8, received 9×9/);
      expect(() => avgPool2d(x, 3, { countIncludePad: 1 as unknown as boolean })).toThrow(/argument 'options.countIncludePad' expected a boolean, received 1/);
      expect(() => maxPool2d(x, 3, { ceilMode: 'yes' as unknown as boolean })).toThrow(/argument 'options.ceilMode' expected a boolean/);
      expect(() => maxPool2d(x, 2, null as unknown as object)).toThrow(/argument 'options' expected an object/);
      expect(() => resizeBilinear(x, [0, 4])).toThrow(/diffvit\.resizeBilinear: argument 'size' expected an integer in \[1, 2\^31\)/);
      expect(() => resizeBilinear(x, 4.5)).toThrow(/argument 'size'/);
      expect(() => resizeBilinear(dv.ones([1, 3, 0, 4]), 4)).toThrow(/argument 'x' expected a non-empty image/);
      expect(() => resizeBilinear(dv.ones([2, 3, 8, 8], 'int32'), 4)).toThrow(/argument 'x' expected dtype float32, received int32/);
      const dead = dv.ones([1, 1, 4, 4]);
      dead.dispose();
      expect(() => avgPool2d(dead, 2)).toThrow(/argument 'x' expected a live tensor/);
    });
  });

  test('the bindings check geometry, extents and overlap themselves', () => {
    const x = new native.NativeBuffer('cpu', 'float32', 2 * 8 * 8);
    const y = new native.NativeBuffer('cpu', 'float32', 10);
    try {
      expect(() => native.maxPool2d({
        x, xOffset: 0, y, yOffset: 0, planes: 2, height: 8, width: 8, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2,
        padH: 0, padW: 0, ceilMode: false
      }))
        .toThrow(/diffvit\.maxPool2d: argument 'y' expected at least 32 float32 elements/);
      expect(() => native.avgPool2d({
        x, xOffset: 0, y, yOffset: 0, planes: 2, height: 8, width: 8, kernelH: 3, kernelW: 3, strideH: 1, strideW: 1,
        padH: 2, padW: 1, ceilMode: false, countIncludePad: true
      }))
        .toThrow(/diffvit\.avgPool2d: argument 'padH' expected at most kernelH \/ 2 = 1, received 2/);
      expect(() => native.maxPool2d({
        x, xOffset: 0, y, yOffset: 0, planes: 2, height: 8, width: 8, kernelH: 11, kernelW: 3, strideH: 1,
        strideW: 1, padH: 1, padW: 1, ceilMode: false
      }))
        .toThrow(/argument 'kernelH' expected at most height \+ 2\*padH = 10, received 11/);
      expect(() => native.maxPool2d({
        x, xOffset: 0, y, yOffset: 0, planes: 3, height: 8, width: 8, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2,
        padH: 0, padW: 0, ceilMode: false
      }))
        .toThrow(/argument 'x' expected at least 192 float32 elements/);
      expect(() => native.maxPool2d({
        x, xOffset: 0, y: x, yOffset: 28, planes: 2, height: 4, width: 4, kernelH: 2, kernelW: 2, strideH: 2,
        strideW: 2, padH: 0, padW: 0, ceilMode: false
      }))
        .toThrow(/diffvit\.maxPool2d: argument 'y' expected memory not overlapping 'x' \(elements 0\.\.32\), received elements 28\.\.36/);
      expect(() => native.maxPool2d({
        x, xOffset: 0, y: x, yOffset: 32, planes: 2, height: 4, width: 4, kernelH: 2, kernelW: 2, strideH: 2,
        strideW: 2, padH: 0, padW: 0, ceilMode: false
      })).not.toThrow();
      expect(() => native.avgPool2d({
        x, xOffset: 0, y, yOffset: 0, planes: 1, height: 4, width: 4, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2,
        padH: 0, padW: 0, ceilMode: false, countIncludePad: 1 as unknown as boolean
      }))
        .toThrow(/argument 'countIncludePad' expected a boolean/);
      expect(() => native.resizeBilinear({
        x, xOffset: 0, y, yOffset: 0, planes: 1, inH: 8, inW: 8, outH: 4, outW: 4, alignCorners: false
      }))
        .toThrow(/diffvit\.resizeBilinear: argument 'y' expected at least 16 float32 elements/);
      expect(() => native.resizeBilinear({
        x, xOffset: 0, y: x, yOffset: 64, planes: 1, inH: 8, inW: 8, outH: 4, outW: 4, alignCorners: false
      })).not.toThrow(); // disjoint halves of one buffer
      expect(() => native.resizeBilinear({
        x, xOffset: 0, y: x, yOffset: 60, planes: 1, inH: 8, inW: 8, outH: 4, outW: 4, alignCorners: false
      })).toThrow(/expected memory not overlapping 'x'/);
      expect(() => native.resizeBilinear({
        x, xOffset: 0, y, yOffset: 0, planes: 1, inH: 8, inW: 8, outH: 0, outW: 4, alignCorners: false
      })).toThrow(/argument 'outH' expected an integer in \[1,/);
    } finally {
      x.dispose();
      y.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The references above against PyTorch itself (skipped where /usr/bin/python3 has no torch).

const PYTHON = '/usr/bin/python3';
const torchVersion = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0 ? r.stdout.trim() : null;
})();

// Checks the float64 references (no kernel of ours runs): once, not per backend.
describe.skipIf(!torchVersion)(`pool and resize semantics against PyTorch ${torchVersion ?? '(not installed: /usr/bin/python3 cannot import torch)'}`, () => {
  test('max/avg pool (ceil mode, count_include_pad) and bilinear resize match torch.nn.functional', () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-pool-'));
    try {
      const pools: [('max' | 'avg'), PoolCase][] = [];
      for (const [, c] of poolCases) pools.push(['max', c], ['avg', c], ['avg', { ...c, countIncludePad: !c.countIncludePad }]);
      const resizes = resizeCases.map(([, c]) => c);
      const inputs = [...pools.map(([, c]) => toF32(randomValues(c.n * c.c * c.h * c.w, 17))),
        ...resizes.map((c) => toF32(randomValues(c.n * c.c * c.h * c.w, 19)))];
      const spec = {
        pools: pools.map(([kind, c]) => ({ kind, ...c })),
        resizes,
      };
      writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
      writeFileSync(join(dir, 'x.f32'), Buffer.from(Float32Array.from(inputs.flatMap((v) => Array.from(v))).buffer));
      const script = `
import json, sys, numpy as np, torch, torch.nn.functional as F
d = sys.argv[1]
spec = json.load(open(d + '/spec.json'))
x = np.fromfile(d + '/x.f32', dtype=np.float32)
outs, at = [], 0
def take(c):
    global at
    n = c['n'] * c['c'] * c['h'] * c['w']
    t = torch.from_numpy(x[at:at + n].copy()).reshape(c['n'], c['c'], c['h'], c['w']); at += n
    return t
for c in spec['pools']:
    t = take(c)
    k, s, p = (c['kh'], c['kw']), (c['sh'], c['sw']), (c['ph'], c['pw'])
    y = F.max_pool2d(t, k, s, p, ceil_mode=c['ceil']) if c['kind'] == 'max' else F.avg_pool2d(t, k, s, p, ceil_mode=c['ceil'], count_include_pad=c['countIncludePad'])
    outs.append(y.double().flatten())
for c in spec['resizes']:
    t = take(c)
    outs.append(F.interpolate(t, size=(c['oh'], c['ow']), mode='bilinear', align_corners=c['alignCorners']).double().flatten())
torch.cat(outs).numpy().astype(np.float64).tofile(d + '/y.f64')
`;
      execFileSync(PYTHON, ['-c', script, dir], { stdio: 'pipe', timeout: 120_000 });
      const raw = readFileSync(join(dir, 'y.f64'));
      const torchOut = new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
      let at = 0, worst = 0;
      const compare = (ours: Float64Array, label: string) => {
        worst = Math.max(worst, expectClose(torchOut.subarray(at, at + ours.length), ours, { dtype: 'float32', kind: 'pytorch' }, label));
        at += ours.length;
      };
      pools.forEach(([kind, c], i) => compare(refPool(c, kind, inputs[i]), `torch ${kind}_pool2d case ${i}`));
      resizes.forEach((c, i) => compare(refResize(c, inputs[pools.length + i]), `torch interpolate case ${i}`));
      expect(at).toBe(torchOut.length);
      recordError('float64 references vs torch', worst);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
