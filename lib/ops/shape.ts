/**
 * Views and layout ops: reshape, permute, transpose, slice, expand, (un)squeeze, contiguous,
 * concat, split. Views share memory with their input; their backward maps the gradient back.
 */
import { runKernel } from '../backend/dispatch.js';
import { noGrad, record } from '../tensor/autograd.js';
import { contiguousStrides, copyInto, formatShape, type Shape, shapeSize, Tensor } from '../tensor/tensor.js';
import { sumToShape } from './sum_to_shape.js';
import { argError, checkInt, checkShape, checkTensor, dense, describe, normAxis, release } from './util.js';

function anyTensor(op: string, arg: string, t: unknown): Tensor {
  if (t instanceof Tensor) return checkTensor(op, arg, t, t.dtype);
  return checkTensor(op, arg, t);
}

/** A contiguous tensor with x's values: x itself when already contiguous. */
export function contiguous(x: Tensor): Tensor {
  anyTensor('contiguous', 'x', x);
  if (x.isContiguous()) return x;
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  copyInto(x, out);
  return record('contiguous', out, [x], (dy) => [dy.view(dy.shape, dy.strides, dy.offset)]);
}

/** A contiguous copy that shares no memory with x. */
export function clone(x: Tensor): Tensor {
  anyTensor('clone', 'x', x);
  const out = Tensor.empty(x.shape, x.dtype, x.device);
  copyInto(x, out);
  return record('clone', out, [x], (dy) => [dy.view(dy.shape, dy.strides, dy.offset)]);
}

/** x without its autograd history (shares memory). */
export function detach(x: Tensor): Tensor {
  anyTensor('detach', 'x', x);
  return x.view(x.shape, x.strides, x.offset);
}

function resolveShape(op: string, x: Tensor, shape: Shape): number[] {
  const out = [...shape];
  const infer = out.indexOf(-1);
  if (infer !== out.lastIndexOf(-1)) throw argError(op, 'shape', 'at most one -1', formatShape(shape));
  const known = out.reduce((p, s, i) => (i === infer ? p : p * s), 1);
  if (infer >= 0) out[infer] = known === 0 ? 0 : x.size / known;
  checkShape(op, 'shape', out);
  if (shapeSize(out) !== x.size) {
    throw argError(op, 'shape', `a shape with ${x.size} elements like ${formatShape(x.shape)}`, formatShape(shape));
  }
  return out;
}

/** Same values, new shape (one entry may be -1). A view when x is contiguous, else a copy. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  anyTensor('reshape', 'x', x);
  const target = resolveShape('reshape', x, shape);
  // A copy when x is not contiguous (off the tape: the reshape node below links out to x).
  const src = dense(x);
  const out = src.view(target, contiguousStrides(target), src.offset);
  release(src, x);
  return record('reshape', out, [x], (dy) => [reshape(dy, x.shape)]);
}

/** Reorders the axes: out.shape[i] = x.shape[dims[i]]. Always a view. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  anyTensor('permute', 'x', x);
  const norm = dims.map((d) => normAxis('permute', d, x.rank, 'dims'));
  if (norm.length !== x.rank || new Set(norm).size !== x.rank) {
    throw argError('permute', 'dims', `a permutation of 0..${x.rank - 1}`, describe(dims));
  }
  const out = x.view(norm.map((d) => x.shape[d]), norm.map((d) => x.strides[d]), x.offset);
  const inverse = new Array<number>(x.rank);
  norm.forEach((d, i) => (inverse[d] = i));
  return record('permute', out, [x], (dy) => [permute(dy, inverse)]);
}

export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  anyTensor('transpose', 'x', x);
  const a = normAxis('transpose', dim0, x.rank, 'dim0'), b = normAxis('transpose', dim1, x.rank, 'dim1');
  const dims = [...Array(x.rank).keys()];
  [dims[a], dims[b]] = [dims[b], dims[a]];
  return permute(x, dims);
}

/** Elements start..end-1 along `dim` (a view). */
export function slice(x: Tensor, dim: number, start: number, end: number): Tensor {
  anyTensor('slice', 'x', x);
  const d = normAxis('slice', dim, x.rank, 'dim');
  checkInt('slice', 'start', start, 0, x.shape[d]);
  checkInt('slice', 'end', end, start, x.shape[d]);
  const shape = [...x.shape];
  shape[d] = end - start;
  const out = x.view(shape, x.strides, x.offset + start * x.strides[d]);
  return record('slice', out, [x], (dy) => {
    const dx = Tensor.empty(x.shape, 'float32', x.device);
    runKernel('fill', { out: dx.buffer, offset: 0, n: dx.size, value: 0 });
    const region = dx.view(shape, dx.strides, start * dx.strides[d]);
    copyInto(dy, region);
    region.dispose();
    return [dx];
  });
}

/** Splits `dim` into pieces of the given sizes (views). */
export function split(x: Tensor, sizes: readonly number[], dim = 0): Tensor[] {
  anyTensor('split', 'x', x);
  const d = normAxis('split', dim, x.rank, 'dim');
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== x.shape[d] || !sizes.every((s) => Number.isInteger(s) && s >= 0)) {
    throw argError('split', 'sizes', `non-negative sizes adding up to ${x.shape[d]}`, describe(sizes));
  }
  let start = 0;
  return sizes.map((s) => {
    const piece = slice(x, d, start, start + s);
    start += s;
    return piece;
  });
}

/** Splits `dim` into n equal pieces. */
export function chunk(x: Tensor, n: number, dim = 0): Tensor[] {
  anyTensor('chunk', 'x', x);
  const d = normAxis('chunk', dim, x.rank, 'dim');
  if (!Number.isInteger(n) || n < 1 || x.shape[d] % n !== 0) {
    throw argError('chunk', 'n', `a divisor of ${x.shape[d]} (size of dim ${d})`, describe(n));
  }
  return split(x, new Array<number>(n).fill(x.shape[d] / n), d);
}

/** Joins tensors along `dim`. */
export function concat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw argError('concat', 'tensors', 'a non-empty array of tensors', describe(tensors));
  const first = anyTensor('concat', 'tensors[0]', tensors[0]);
  const d = normAxis('concat', dim, first.rank, 'dim');
  tensors.forEach((t, i) => {
    anyTensor('concat', `tensors[${i}]`, t);
    if (t.dtype !== first.dtype) throw argError('concat', `tensors[${i}]`, `dtype ${first.dtype}`, t.dtype);
    if (t.device !== first.device) throw argError('concat', `tensors[${i}]`, `device '${first.device}' (that of tensors[0])`, `'${t.device}'`);
    if (t.rank !== first.rank || t.shape.some((s: number, k: number) => k !== d && s !== first.shape[k])) {
      throw argError('concat', `tensors[${i}]`, `shape ${formatShape(first.shape.map((s, k) => (k === d ? -1 : s)))} (any size on dim ${d})`, formatShape(t.shape));
    }
  });
  const shape = [...first.shape];
  shape[d] = tensors.reduce((a, t) => a + t.shape[d], 0);
  const out = Tensor.empty(shape, first.dtype, first.device);
  let start = 0;
  for (const t of tensors) {
    const region = out.view(t.shape, out.strides, start * out.strides[d]);
    copyInto(t, region);
    region.dispose();
    start += t.shape[d];
  }
  return record('concat', out, tensors, (dy) => split(dy, tensors.map((t) => t.shape[d]), d));
}

/** Stacks same-shape tensors along a new axis. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw argError('stack', 'tensors', 'a non-empty array of tensors', describe(tensors));
  const d = normAxis('stack', dim, anyTensor('stack', 'tensors[0]', tensors[0]).rank + 1, 'dim');
  // The unsqueezed views are internal temporaries: built off the tape, disposed here.
  const out = noGrad(() => {
    const parts = tensors.map((t) => unsqueeze(t, d));
    try {
      return concat(parts, d);
    } finally {
      for (const p of parts) p.dispose();
    }
  });
  return record('stack', out, tensors, (dy) => split(dy, tensors.map(() => 1), d).map((piece) => {
    const g = squeeze(piece, d);
    piece.dispose();
    return g;
  }));
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  anyTensor('unsqueeze', 'x', x);
  const d = normAxis('unsqueeze', dim, x.rank + 1, 'dim');
  const shape = [...x.shape], strides = [...x.strides];
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.rank ? x.strides[d] * x.shape[d] : 1);
  const out = x.view(shape, strides, x.offset);
  return record('unsqueeze', out, [x], (dy) => [squeeze(dy, d)]);
}

/** Removes axis `dim` of size 1 (or every size-1 axis when dim is omitted). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  anyTensor('squeeze', 'x', x);
  const dims = dim === undefined ? x.shape.flatMap((s, i) => (s === 1 ? [i] : [])) : [normAxis('squeeze', dim, x.rank, 'dim')];
  for (const d of dims) if (x.shape[d] !== 1) throw argError('squeeze', 'dim', 'an axis of size 1', `axis ${d} of size ${x.shape[d]}`);
  const shape = x.shape.filter((_, i) => !dims.includes(i));
  const strides = x.strides.filter((_, i) => !dims.includes(i));
  const out = x.view(shape, strides, x.offset);
  // The gradient gets its size-1 axes back as a view (no copy, whatever dy's strides).
  return record('squeeze', out, [x], (dy) => {
    const gShape = [...dy.shape], gStrides = [...dy.strides];
    for (const d of dims) {
      gStrides.splice(d, 0, d < gShape.length ? gStrides[d] * gShape[d] : 1);
      gShape.splice(d, 0, 1);
    }
    return [dy.view(gShape, gStrides, dy.offset)];
  });
}

/** Broadcasts size-1 axes (and new leading axes) to `shape` without copying. */
export function expand(x: Tensor, shape: Shape): Tensor {
  anyTensor('expand', 'x', x);
  checkShape('expand', 'shape', [...shape]);
  const lead = shape.length - x.rank;
  const ok = lead >= 0 && x.shape.every((s, i) => s === shape[lead + i] || s === 1);
  if (!ok) throw argError('expand', 'shape', `a shape that ${formatShape(x.shape)} broadcasts to`, formatShape(shape));
  const strides = shape.map((s, i) => (i < lead || (x.shape[i - lead] === 1 && s !== 1) ? 0 : x.strides[i - lead]));
  const out = x.view(shape, strides, x.offset);
  return record('expand', out, [x], (dy) => [sumToShape(dy, x.shape)]);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  anyTensor('flatten', 'x', x);
  const s = normAxis('flatten', startDim, x.rank, 'startDim'), e = normAxis('flatten', endDim, x.rank, 'endDim');
  const shape = [...x.shape.slice(0, s), x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}
