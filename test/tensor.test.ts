/**
 * Tensor basics: views and layout ops (values and gradients against float64 references), memory
 * ownership (dispose, scopes, keep, the FinalizationRegistry safety net), the autograd tape, and
 * the seeded Generator.
 */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import { checkOp, describeEachBackend, describeEachLevel, expectClose, fromValues, randomValues, toF32 } from './helpers.js';

// ---------------------------------------------------------------------------------------------
// float64 references for ops that only move values

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

function ravel(idx: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d] + idx[d];
  return i;
}

/** out[idx] = x[source(idx)] for every idx of outShape: the reference of any pure view op. */
function gatherRef(inShape: readonly number[], outShape: readonly number[], source: (idx: number[]) => number[]) {
  return (x: Float64Array): Float64Array => {
    const out = new Float64Array(size(outShape));
    for (let i = 0; i < out.length; i++) out[i] = x[ravel(source(unravel(i, outShape)), inShape)];
    return out;
  };
}

const permuteRef = (shape: number[], dims: number[]) =>
  gatherRef(shape, dims.map((d) => shape[d]), (idx) => {
    const src = new Array<number>(shape.length);
    dims.forEach((d, i) => (src[d] = idx[i]));
    return src;
  });

const sliceRef = (shape: number[], dim: number, start: number, end: number) => {
  const out = [...shape];
  out[dim] = end - start;
  return gatherRef(shape, out, (idx) => idx.map((v, d) => (d === dim ? v + start : v)));
};

/** Concatenation of inputs of `shapes` along `dim`. */
const concatRef = (shapes: number[][], dim: number) => (...xs: Float64Array[]): Float64Array => {
  const out = [...shapes[0]];
  out[dim] = shapes.reduce((a, s) => a + s[dim], 0);
  const r = new Float64Array(size(out));
  for (let i = 0; i < r.length; i++) {
    const idx = unravel(i, out);
    let k = 0, at = idx[dim];
    while (at >= shapes[k][dim]) at -= shapes[k++][dim];
    idx[dim] = at;
    r[i] = xs[k][ravel(idx, shapes[k])];
  }
  return r;
};

const copyRef = (x: Float64Array) => Float64Array.from(x);

function input(shape: number[], seed: number) {
  return { values: randomValues(size(shape), seed), shape };
}

/** Values and gradients are exact moves: only float32 rounding of the reference remains. */
const EXACT = { atol: 1e-7, rtol: 1e-7, gradAtol: 1e-5, gradRtol: 1e-5 };

// ---------------------------------------------------------------------------------------------

describe('reshape shares or copies memory', () => {
  test('reshape of a contiguous tensor is a view over the same storage', () => {
    dv.scope(() => {
      const x = dv.arange(12);
      const y = dv.reshape(x, [3, -1]);
      expect(y.shape).toEqual([3, 4]);
      expect(y.storage).toBe(x.storage);
      // A write through x is seen through y: same memory, not a copy.
      native.fill({ out: x.buffer, offset: 5, n: 1, value: -7 });
      expect(y.data()[5]).toBe(-7);
    });
  });

  test('reshape of a non-contiguous tensor copies, in row-major order of the view', () => {
    dv.scope(() => {
      const x = dv.reshape(dv.arange(6), [2, 3]);
      const t = dv.transpose(x, 0, 1); // (3, 2): [[0, 3], [1, 4], [2, 5]]
      expect(t.isContiguous()).toBe(false);
      const y = dv.reshape(t, [6]);
      expect(y.storage).not.toBe(x.storage);
      expect([...y.data()]).toEqual([0, 3, 1, 4, 2, 5]);
      native.fill({ out: x.buffer, offset: 0, n: 6, value: 9 });
      expect([...y.data()]).toEqual([0, 3, 1, 4, 2, 5]);
    });
  });

  test('reshape rejects sizes that do not match and more than one -1', () => {
    dv.scope(() => {
      const x = dv.zeros([2, 3]);
      expect(() => dv.reshape(x, [4, 2])).toThrow(/^diffvit\.reshape: argument 'shape' expected a shape with 6 elements/);
      expect(() => dv.reshape(x, [-1, -1])).toThrow(/^diffvit\.reshape: argument 'shape' expected at most one -1/);
    });
  });

  test('contiguous() returns the tensor itself when contiguous, a packed copy otherwise', () => {
    dv.scope(() => {
      const x = dv.reshape(dv.arange(24), [2, 3, 4]);
      expect(dv.contiguous(x)).toBe(x);
      const p = dv.permute(x, [2, 0, 1]);
      const c = dv.contiguous(p);
      expect(c).not.toBe(p);
      expect(c.isContiguous()).toBe(true);
      expect(c.storage).not.toBe(x.storage);
      const ref = permuteRef([2, 3, 4], [2, 0, 1])(Float64Array.from(x.data()));
      expect([...c.data()]).toEqual([...ref]);
      // A slice along the last axis is not contiguous; along the first axis it is.
      expect(dv.slice(x, 2, 1, 3).isContiguous()).toBe(false);
      expect(dv.slice(x, 0, 1, 2).isContiguous()).toBe(true);
    });
  });
});

describeEachBackend('view and layout ops: values and gradients', () => {
  test.each([
    [[2, 3, 4], [2, 0, 1]],
    [[5, 1, 3], [1, 2, 0]],
    [[3, 17], [1, 0]],
    [[2, 3, 2, 5], [3, 1, 0, 2]],
  ])('permute %j by %j', (shape, dims) => {
    checkOp('permute', (x) => dv.permute(x, dims), permuteRef(shape, dims), [input(shape, 1)], EXACT);
  });

  test('transpose with negative axes', () => {
    checkOp('transpose', (x) => dv.transpose(x, -1, 0), permuteRef([4, 3, 5], [2, 1, 0]), [input([4, 3, 5], 2)], EXACT);
  });

  test.each([
    [[6, 5], 0, 1, 4],
    [[6, 5], 1, 0, 5],
    [[3, 7, 4], 1, 2, 7],
    [[3, 7, 4], -1, 1, 2],
  ])('slice %j dim %i [%i, %i)', (shape, dim, start, end) => {
    const d = dim < 0 ? dim + shape.length : dim;
    checkOp('slice', (x) => dv.slice(x, dim, start, end), sliceRef(shape, d, start, end), [input(shape, 3)], EXACT);
  });

  test('slice of a permuted view, then reshape (copy path), keeps values and gradients', () => {
    // x: (4, 6) -> xᵀ: (6, 4) -> rows 1..4: (3, 4) -> (12)
    const ref = (x: Float64Array) => sliceRef([6, 4], 0, 1, 4)(permuteRef([4, 6], [1, 0])(x));
    checkOp('slice∘transpose∘reshape', (x) => dv.reshape(dv.slice(dv.transpose(x, 0, 1), 0, 1, 4), [12]), ref,
      [input([4, 6], 4)], EXACT);
  });

  test.each([
    [[3, 4], 0],
    [[3, 4], 1],
    [[3, 4], 2],
    [[3, 4], -1],
  ])('unsqueeze %j at %i', (shape, dim) => {
    const d = dim < 0 ? dim + shape.length + 1 : dim;
    const out = [...shape];
    out.splice(d, 0, 1);
    checkOp('unsqueeze', (x) => dv.unsqueeze(x, dim), gatherRef(shape, out, (idx) => idx.filter((_, k) => k !== d)),
      [input(shape, 5)], EXACT);
  });

  test('squeeze one axis and every size-1 axis', () => {
    checkOp('squeeze(dim)', (x) => dv.squeeze(x, 1), gatherRef([3, 1, 4, 1], [3, 4, 1], (i) => [i[0], 0, i[1], i[2]]),
      [input([3, 1, 4, 1], 6)], EXACT);
    checkOp('squeeze()', (x) => dv.squeeze(x), gatherRef([1, 3, 1, 4], [3, 4], (i) => [0, i[0], 0, i[1]]),
      [input([1, 3, 1, 4], 7)], EXACT);
    dv.scope(() => {
      expect(() => dv.squeeze(dv.zeros([2, 3]), 0)).toThrow(/^diffvit\.squeeze: argument 'dim' expected an axis of size 1/);
    });
  });

  test.each([
    [[3, 1], [3, 5]],
    [[1, 4], [2, 3, 4]],
    [[1], [7]],
    [[2, 1, 3], [4, 2, 5, 3]],
  ])('expand %j to %j (gradient sums over the broadcast axes)', (shape, to) => {
    const lead = to.length - shape.length;
    checkOp('expand', (x) => dv.expand(x, to),
      gatherRef(shape, to, (idx) => shape.map((s, j) => (s === 1 ? 0 : idx[lead + j]))), [input(shape, 8)], EXACT);
  });

  test('expand is a view with zero strides on the broadcast axes', () => {
    dv.scope(() => {
      const x = dv.zeros([3, 1]);
      const e = dv.expand(x, [2, 3, 5]);
      expect(e.storage).toBe(x.storage);
      expect(e.strides).toEqual([0, 1, 0]);
      expect(() => dv.expand(x, [3, 2, 4])).toThrow(/^diffvit\.expand: argument 'shape'/);
    });
  });

  test.each([
    [[2, 3, 4], 0, -1],
    [[2, 3, 4], 1, 2],
    [[2, 3, 4, 5], 1, 2],
  ])('flatten %j from %i to %i', (shape, s, e) => {
    checkOp('flatten', (x) => dv.flatten(x, s, e), copyRef, [input(shape, 9)], EXACT);
    dv.scope(() => {
      const x = dv.zeros(shape);
      const se = e < 0 ? e + shape.length : e;
      expect(dv.flatten(x, s, e).shape).toEqual([...shape.slice(0, s), size(shape.slice(s, se + 1)), ...shape.slice(se + 1)]);
    });
  });

  test('flatten of a transposed tensor copies in view order', () => {
    checkOp('flatten∘transpose', (x) => dv.flatten(dv.transpose(x, 0, 1)), permuteRef([3, 5], [1, 0]),
      [input([3, 5], 10)], EXACT);
  });

  test.each([
    [[[2, 3], [4, 3], [1, 3]], 0],
    [[[2, 3], [2, 1], [2, 5]], 1],
    [[[2, 3, 4], [2, 3, 4]], 2],
    [[[3, 2, 2], [3, 5, 2]], -2],
  ])('concat %j along %i', (shapes, dim) => {
    const d = dim < 0 ? dim + shapes[0].length : dim;
    checkOp('concat', (...xs) => dv.concat(xs, dim), concatRef(shapes, d), shapes.map((s, i) => input(s, 11 + i)), EXACT);
  });

  test('concat of non-contiguous views, one tensor twice (its gradient is the sum)', () => {
    // a: (3, 4) -> aᵀ: (4, 3); out = [aᵀ ; b ; aᵀ] along 0: (10, 3)
    const ref = (a: Float64Array, b: Float64Array) => {
      const at = permuteRef([3, 4], [1, 0])(a);
      return concatRef([[4, 3], [2, 3], [4, 3]], 0)(at, b, at);
    };
    checkOp('concat(views)', (a, b) => {
      const at = dv.transpose(a, 0, 1);
      return dv.concat([at, b, at], 0);
    }, ref, [input([3, 4], 14), input([2, 3], 15)], EXACT);
  });

  test('concat rejects mismatched shapes and dtypes', () => {
    dv.scope(() => {
      expect(() => dv.concat([dv.zeros([2, 3]), dv.zeros([2, 4])], 0)).toThrow(/^diffvit\.concat: argument 'tensors\[1\]'/);
      expect(() => dv.concat([dv.zeros([2]), dv.zeros([2], 'int32')])).toThrow(/^diffvit\.concat: argument 'tensors\[1\]' expected dtype float32/);
      expect(() => dv.concat([])).toThrow(/^diffvit\.concat: argument 'tensors' expected a non-empty array/);
    });
  });

  for (let piece = 0; piece < 3; piece++) {
    test(`split (2, 7, 3) along dim 1 into [3, 0, 4], piece ${piece}`, () => {
      const sizes = [3, 0, 4], shape = [2, 7, 3];
      const start = sizes.slice(0, piece).reduce((a, b) => a + b, 0);
      checkOp(`split piece ${piece}`, (x) => dv.split(x, sizes, 1)[piece], sliceRef(shape, 1, start, start + sizes[piece]),
        [input(shape, 16)], EXACT);
    });
    test(`chunk into 3 along the last dim, piece ${piece}`, () => {
      const shape = [4, 9];
      checkOp(`chunk piece ${piece}`, (x) => dv.chunk(x, 3, -1)[piece], sliceRef(shape, 1, 3 * piece, 3 * piece + 3),
        [input(shape, 17)], EXACT);
    });
  }

  test('every piece of a split gets its own gradient slot', () => {
    // loss = sum(w0*p0) + sum(w1*p1) + sum(w2*p2): all pieces used at once.
    const shape = [5, 4];
    const ref = (x: Float64Array) => {
      const out = Float64Array.from(x);
      for (let i = 0; i < out.length; i++) out[i] *= 1 + Math.floor(i / 4 / 2); // rows 0-1: x1, 2-3: x2, 4: x3
      return out;
    };
    checkOp('split (all pieces)', (x) => {
      const [a, b, c] = dv.split(x, [2, 2, 1], 0);
      return dv.concat([a, dv.mulScalar(b, 2), dv.mulScalar(c, 3)], 0);
    }, ref, [input(shape, 18)], EXACT);
  });

  test('split and chunk reject bad sizes', () => {
    dv.scope(() => {
      const x = dv.zeros([6, 2]);
      expect(() => dv.split(x, [2, 2], 0)).toThrow(/^diffvit\.split: argument 'sizes' expected non-negative sizes adding up to 6/);
      expect(() => dv.chunk(x, 4, 0)).toThrow(/^diffvit\.chunk: argument 'n' expected a divisor of 6/);
    });
  });

  test.each([0, 1, 2, -1])('stack three (3, 4) tensors along %i', (dim) => {
    const d = dim < 0 ? dim + 3 : dim;
    const unsq = [3, 4];
    unsq.splice(d, 0, 1);
    const shapes = [unsq, unsq, unsq];
    checkOp('stack', (a, b, c) => dv.stack([a, b, c], dim), concatRef(shapes, d),
      [input([3, 4], 19), input([3, 4], 20), input([3, 4], 21)], EXACT);
  });
});

// ---------------------------------------------------------------------------------------------

describe('dispose', () => {
  test('using a disposed tensor throws an Error naming the op', () => {
    const x = dv.tensor([1, 2, 3, 4], [2, 2]);
    const y = dv.ones([2, 2]);
    x.dispose();
    expect(x.isDisposed).toBe(true);
    expect(() => dv.add(x, y)).toThrow(/^diffvit\.add: argument 'a' expected a live tensor, received a disposed Tensor\(\[2, 2\]/);
    expect(() => dv.add(y, x)).toThrow(/^diffvit\.add: argument 'b' expected a live tensor/);
    expect(() => dv.matmul(y, x)).toThrow(/^diffvit\.matmul: argument 'b' expected a live tensor/);
    expect(() => dv.reshape(x, [4])).toThrow(/^diffvit\.reshape: argument 'x' expected a live tensor/);
    expect(() => dv.exp(x)).toThrow(/^diffvit\.exp: argument 'x' expected a live tensor/);
    expect(() => x.data()).toThrow(/^diffvit\.toArray: tensor #\d+ \[2, 2\] has been disposed/);
    expect(() => x.buffer).toThrow(/^diffvit\.tensor: tensor #\d+ \[2, 2\] has been disposed/);
    expect(x.toString()).toBe('Tensor([2, 2], float32, disposed)');
    y.dispose();
  });

  test('disposing twice is harmless and counted once', () => {
    const before = dv.memory();
    const x = dv.zeros([8]);
    expect(dv.memory().tensors).toBe(before.tensors + 1);
    x.dispose();
    x.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });

  test('a view and its base share storage: memory is freed when the last of them is disposed', () => {
    const before = dv.memory();
    const base = dv.arange(6);
    const view = dv.reshape(base, [2, 3]);
    view.dispose();
    expect([...base.data()]).toEqual([0, 1, 2, 3, 4, 5]);
    const view2 = dv.slice(base, 0, 2, 5);
    base.dispose();
    // The view keeps the memory alive after its base is gone.
    expect([...view2.data()]).toEqual([2, 3, 4]);
    expect(dv.memory().buffers).toBe(before.buffers + 1);
    view2.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });
});

describe('scope and keep', () => {
  test('disposes everything made inside except what is returned', () => {
    const before = dv.memory();
    const made: dv.Tensor[] = [];
    const out = dv.scope(() => {
      const a = dv.ones([3]);
      const b = dv.mulScalar(a, 2);
      const c = dv.add(a, b);
      made.push(a, b, c);
      return c;
    });
    expect(made[0].isDisposed && made[1].isDisposed).toBe(true);
    expect(out.isDisposed).toBe(false);
    expect([...out.data()]).toEqual([3, 3, 3]);
    expect(dv.memory().tensors).toBe(before.tensors + 1);
    out.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });

  test('returned tensors are found inside arrays, plain objects and Maps', () => {
    const before = dv.memory();
    const r = dv.scope(() => {
      const m = new Map<string, dv.Tensor>([['m', dv.ones([1])]]);
      dv.zeros([5]); // not returned
      return { list: [dv.ones([2]), { deep: dv.ones([3]) }], m, n: 4 };
    });
    expect(dv.memory().tensors).toBe(before.tensors + 3);
    for (const t of [r.list[0] as dv.Tensor, (r.list[1] as { deep: dv.Tensor }).deep, r.m.get('m')!]) {
      expect(t.isDisposed).toBe(false);
      t.dispose();
    }
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers });
  });

  test('a returned view keeps its memory although its base was disposed', () => {
    const before = dv.memory();
    const v = dv.scope(() => dv.reshape(dv.arange(4), [2, 2]));
    expect([...v.data()]).toEqual([0, 1, 2, 3]);
    expect(dv.memory().tensors).toBe(before.tensors + 1);
    v.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers });
  });

  test('nested scopes: what the inner scope returns belongs to the outer one', () => {
    const before = dv.memory();
    let innerKept: dv.Tensor | undefined, innerTemp: dv.Tensor | undefined, outerTemp: dv.Tensor | undefined;
    const result = dv.scope(() => {
      outerTemp = dv.ones([2]);
      innerKept = dv.scope(() => {
        innerTemp = dv.ones([2]);
        return dv.mulScalar(innerTemp, 3);
      });
      expect(innerTemp!.isDisposed).toBe(true);
      expect(innerKept.isDisposed).toBe(false);
      return dv.add(outerTemp, 1);
    });
    // The outer scope did not return innerKept, so it went with the outer scope.
    expect(innerKept!.isDisposed).toBe(true);
    expect(outerTemp!.isDisposed).toBe(true);
    expect([...result.data()]).toEqual([2, 2]);
    result.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers });
  });

  test('an exception inside disposes the scope and is rethrown', () => {
    const before = dv.memory();
    let a: dv.Tensor | undefined;
    const boom = new Error('boom');
    expect(() =>
      dv.scope(() => {
        a = dv.ones([4]);
        dv.scope(() => {
          dv.zeros([3]);
          throw boom;
        });
      }),
    ).toThrow(boom);
    expect(a!.isDisposed).toBe(true);
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });

  test('an async fn is rejected and what it made before its first await is disposed', () => {
    const before = dv.memory();
    let a: dv.Tensor | undefined;
    expect(() =>
      dv.scope(async () => {
        a = dv.ones([2]);
        return a;
      }),
    ).toThrow(/^scope\(fn\): fn must be synchronous/);
    expect(a!.isDisposed).toBe(true);
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers });
  });

  test('keep() exempts a tensor from every open scope', () => {
    const before = dv.memory();
    let kept: dv.Tensor | undefined;
    dv.scope(() => {
      dv.scope(() => {
        kept = dv.keep(dv.full([2], 5));
        dv.zeros([2]);
      });
    });
    expect(kept!.isDisposed).toBe(false);
    expect([...kept!.data()]).toEqual([5, 5]);
    expect(dv.memory().tensors).toBe(before.tensors + 1);
    kept!.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers });
  });
});

// ---------------------------------------------------------------------------------------------

describeEachLevel('autograd', () => {
  test('gradients accumulate over two backward calls until zeroed', () => {
    dv.scope(() => {
      const xs = toF32(randomValues(7, 30));
      const x = fromValues(xs, [7], true);
      dv.sum(dv.square(x)).backward();
      dv.sum(dv.mulScalar(x, 3)).backward();
      // d/dx [sum x² + sum 3x] = 2x + 3
      expectClose(x.grad!.data(), xs.map((v) => 2 * v + 3), { atol: 1e-6, rtol: 1e-6 }, 'accumulated grad');
      x.grad!.dispose();
      x.grad = null;
      dv.sum(dv.mulScalar(x, 3)).backward();
      expectClose(x.grad!.data(), xs.map(() => 3), { atol: 1e-6, rtol: 1e-6 }, 'grad after zeroing');
    });
  });

  test('noGrad records nothing and restores the previous mode, also after a throw', () => {
    dv.scope(() => {
      const x = fromValues(randomValues(4, 31), [4], true);
      const y = dv.noGrad(() => {
        expect(dv.isGradEnabled()).toBe(false);
        return dv.exp(dv.mul(x, x));
      });
      expect(y.requiresGrad).toBe(false);
      expect(y.gradFn).toBeNull();
      expect(dv.isGradEnabled()).toBe(true);
      expect(() => dv.noGrad(() => { throw new Error('inside'); })).toThrow('inside');
      expect(dv.isGradEnabled()).toBe(true);
      const z = dv.exp(x);
      expect(z.requiresGrad).toBe(true);
      expect(z.gradFn?.name).toBe('exp');
    });
  });

  test('a diamond graph: one tensor feeding two paths sums both gradients', () => {
    // a = exp(x); loss = sum(w * (a*a + sin(a)))  =>  dx = w * (2a + cos a) * a
    const x0 = toF32(randomValues(33, 32, 0.5));
    checkOp('diamond', (x) => {
      const a = dv.exp(x);
      return dv.add(dv.mul(a, a), dv.sin(a));
    }, (x) => x.map((v) => Math.exp(2 * v) + Math.sin(Math.exp(v))), [{ values: x0, shape: [33] }],
    { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-4, gradRtol: 1e-4 });
  });

  test('the same leaf used twice by one op (x * x) gets both contributions', () => {
    checkOp('x*x', (x) => dv.mul(x, x), (x) => x.map((v) => v * v), [{ values: randomValues(17, 33), shape: [17] }],
      { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-5, gradRtol: 1e-5 });
  });

  test('backward on a non-scalar needs an explicit grad; the grad must match the shape', () => {
    dv.scope(() => {
      const x = fromValues(randomValues(6, 34), [2, 3], true);
      const y = dv.mulScalar(x, 2);
      expect(() => y.backward()).toThrow(/^diffvit\.backward: expected a one-element loss or an explicit 'grad', received shape \[2, 3\]/);
      expect(() => y.backward({ grad: dv.ones([3, 2]) })).toThrow(/^diffvit\.backward: argument 'grad' expected shape \[2, 3\], received \[3, 2\]/);
      y.backward({ grad: dv.full([2, 3], 0.5) });
      expect([...x.grad!.data()]).toEqual([1, 1, 1, 1, 1, 1]);
    });
  });

  test('backward on a tensor that does not require grad throws', () => {
    dv.scope(() => {
      const x = dv.ones([3]);
      expect(() => dv.sum(x).backward()).toThrow(/^diffvit\.backward: tensor \[\] does not require grad/);
    });
  });

  test('retainGraph lets backward run twice through the same graph', () => {
    dv.scope(() => {
      const xs = toF32(randomValues(5, 35));
      const x = fromValues(xs, [5], true);
      const loss = dv.sum(dv.exp(x));
      loss.backward({ retainGraph: true });
      loss.backward();
      expectClose(x.grad!.data(), xs.map((v) => 2 * Math.exp(v)), { atol: 1e-6, rtol: 1e-5 }, 'twice');
      // The graph is freed now. PyTorch raises here; silently doing nothing would hide a lost update.
      expect(() => loss.backward()).toThrow(/^diffvit\.backward: .*(freed|retainGraph)/);
      expectClose(x.grad!.data(), xs.map((v) => 2 * Math.exp(v)), { atol: 1e-6, rtol: 1e-5 }, 'unchanged');
    });
  });

  test('backward frees the graph (no node holds its inputs afterwards) and leaves no temporaries', () => {
    const before = dv.memory();
    const x = fromValues(randomValues(8, 36), [8], true);
    dv.scope(() => {
      const h = dv.tanh(dv.mulScalar(x, 2));
      const loss = dv.mean(dv.square(h));
      loss.backward();
      expect(h.gradFn === null || h.gradFn.inputs.length === 0).toBe(true);
    });
    // Only x and x.grad remain.
    expect(dv.memory().tensors).toBe(before.tensors + 2);
    x.grad!.dispose();
    x.dispose();
    expect(dv.memory()).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });
});

// ---------------------------------------------------------------------------------------------

describe('FinalizationRegistry safety net', () => {
  const gc = (globalThis as { gc?: () => void }).gc;

  /** Collects and yields (finalizers run as tasks after a collection) until the counts stop moving. */
  async function settle(): Promise<ReturnType<typeof dv.memory>> {
    let last = dv.memory(), stable = 0;
    for (let i = 0; i < 100 && stable < 3; i++) {
      gc!();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const now = dv.memory();
      stable = now.tensors === last.tensors && now.buffers === last.buffers ? stable + 1 : 0;
      last = now;
    }
    return last;
  }

  test('tensors nobody disposed are released after garbage collection', async () => {
    expect(gc, 'run with node --expose-gc (vitest.config.ts passes it to the workers)').toBeTypeOf('function');
    // Earlier tests may have dropped tensors too: let the collector take those first.
    const before = await settle();
    (() => {
      // Leaves, views of them and op results, all dropped without dispose().
      for (let i = 0; i < 100; i++) {
        const a = dv.full([64], i);
        dv.reshape(a, [8, 8]);
        dv.exp(dv.slice(a, 0, 1, 9));
      }
    })();
    expect(dv.memory().tensors).toBe(before.tensors + 400);
    expect(dv.memory().buffers).toBe(before.buffers + 200);
    const after = await settle();
    expect(after).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });

  test('tensors returned from a scope to top level, or kept, are under the safety net too', async () => {
    const before = await settle();
    (() => {
      for (let i = 0; i < 50; i++) {
        dv.scope(() => dv.mulScalar(dv.ones([32]), 2));
        dv.scope(() => {
          dv.keep(dv.ones([32]));
        });
      }
    })();
    expect(dv.memory().tensors).toBe(before.tensors + 100);
    const after = await settle();
    expect(after).toMatchObject({ tensors: before.tensors, buffers: before.buffers, bytes: before.bytes });
  });

  test('a tensor reachable from JS is not collected', async () => {
    const before = await settle();
    const held = dv.full([16], 3);
    await settle();
    expect([...held.data()]).toEqual(new Array(16).fill(3));
    expect(dv.memory().tensors).toBe(before.tensors + 1);
    held.dispose();
  });
});

// ---------------------------------------------------------------------------------------------

describe('Generator', () => {
  test('the same seed gives the same numbers; the counter advances (pair-aligned)', () => {
    dv.scope(() => {
      const g1 = new dv.Generator(7), g2 = new dv.Generator(7);
      const a = dv.randn([5], { generator: g1 }).data();
      const b = dv.randn([5], { generator: g2 }).data();
      expect([...a]).toEqual([...b]);
      expect(g1.counter).toBe(6);
      const next = dv.randn([5], { generator: g1 }).data();
      expect(g1.counter).toBe(12);
      expect([...next]).not.toEqual([...a]);
      const other = dv.randn([5], { generator: new dv.Generator(8) }).data();
      expect([...other]).not.toEqual([...a]);
    });
  });

  test('a draw of n values equals the first n values of a longer draw from the same state', () => {
    dv.scope(() => {
      const long = dv.rand([100], { generator: new dv.Generator(3) }).data();
      const short = dv.rand([37], { generator: new dv.Generator(3) }).data();
      expect([...short]).toEqual([...long.subarray(0, 37)]);
    });
  });

  test('normals drawn from an odd counter are the matching slice of the stream (Box-Muller pairs)', () => {
    const threads = dv.runtimeInfo().threads;
    try {
      dv.setThreads(3);
      dv.scope(() => {
        const long = dv.randn([20007], { generator: new dv.Generator(3) }).data();
        for (const [start, n] of [[7, 20000], [1, 1], [3, 2], [4, 17]]) {
          const part = dv.randn([n], { generator: new dv.Generator(3, start) }).data();
          expect([...part]).toEqual([...long.subarray(start, start + n)]);
        }
      });
    } finally {
      dv.setThreads(threads);
    }
  });

  test('state() / setState() round trip replays the stream', () => {
    dv.scope(() => {
      const g = new dv.Generator(11);
      dv.randn([3], { generator: g });
      const saved = g.state();
      const first = dv.randn([9], { generator: g, mean: 1, std: 2 }).data();
      g.setState(saved);
      const again = dv.randn([9], { generator: g, mean: 1, std: 2 }).data();
      expect([...again]).toEqual([...first]);
      expect(g.state()).toEqual({ seed: 11, counter: saved.counter + 10 });
      expect(() => g.setState({ seed: -1, counter: 0 })).toThrow(/^diffvit\.Generator: argument 'seed'/);
      expect(() => new dv.Generator(0.5)).toThrow(/^diffvit\.Generator: argument 'seed'/);
    });
  });

  test('manualSeed resets the default generator', () => {
    dv.scope(() => {
      dv.manualSeed(42);
      const a = dv.randn([4]).data();
      dv.manualSeed(42);
      const b = dv.randn([4]).data();
      expect([...a]).toEqual([...b]);
      expect(dv.defaultGenerator.state()).toEqual({ seed: 42, counter: 4 });
    });
  });

  test('draws do not depend on the thread count and have the right moments', () => {
    const threads = dv.runtimeInfo().threads;
    try {
      const draw = () => dv.scope(() => dv.randn([20000], { generator: new dv.Generator(5) }).data());
      dv.setThreads(1);
      const one = draw();
      dv.setThreads(3);
      const three = draw();
      expect(three).toEqual(one);
      let mean = 0, sq = 0;
      for (const v of one) mean += v / one.length;
      for (const v of one) sq += (v - mean) ** 2 / one.length;
      // 20000 draws: the standard error of the mean is 0.007, of the variance 0.01.
      expect(Math.abs(mean)).toBeLessThan(0.035);
      expect(Math.abs(sq - 1)).toBeLessThan(0.05);
      const u = dv.scope(() => dv.rand([20000], { low: -2, high: 3, generator: new dv.Generator(6) }).data());
      expect(Math.min(...u)).toBeGreaterThan(-2);
      expect(Math.max(...u)).toBeLessThanOrEqual(3);
    } finally {
      dv.setThreads(threads);
    }
  });
});
