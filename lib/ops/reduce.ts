/** Sums and means over axes, and the squared norm of many tensors; sumToShape undoes broadcasting in gradients. */
import { runKernel } from '../backend/dispatch.js';
import { noGrad, record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { mulScalar } from './elementwise.js';
import { expand, reshape } from './shape.js';
import { sumAxes } from './sum_to_shape.js';
import { argError, checkTensor, dense, normAxis, release } from './util.js';

export { sumToShape } from './sum_to_shape.js';

function normAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return [...x.shape.keys()];
  const list = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => normAxis(op, a, x.rank, 'axes'));
  if (new Set(list).size !== list.length) throw argError(op, 'axes', 'distinct axes', `[${axes}]`);
  return list.sort((a, b) => a - b);
}

/** Sum over `axes` (all when omitted); keepDims leaves them as size 1. */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkTensor('sum', 'x', x);
  const reduced = normAxes('sum', x, axes);
  const keptShape = x.shape.map((s, i) => (reduced.includes(i) ? 1 : s));
  const outShape = keepDims ? keptShape : x.shape.filter((_, i) => !reduced.includes(i));
  const out = sumAxes(x, reduced, outShape);
  return record('sum', out, [x], (dy) => {
    const kept = reshape(dy, keptShape);
    const dx = expand(kept, x.shape);
    kept.dispose();
    return [dx];
  });
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  checkTensor('mean', 'x', x);
  const reduced = normAxes('mean', x, axes);
  const count = reduced.reduce((a, d) => a * x.shape[d], 1);
  const scale = count === 0 ? NaN : 1 / count;
  // The sum is an internal temporary: computed off the tape, so disposing it cuts no graph.
  const out = noGrad(() => {
    const s = sum(x, reduced, keepDims);
    const m = mulScalar(s, scale);
    s.dispose();
    return m;
  });
  const keptShape = x.shape.map((s, i) => (reduced.includes(i) ? 1 : s));
  return record('mean', out, [x], (dy) => {
    const kept = reshape(dy, keptShape);
    const wide = expand(kept, x.shape);
    const dx = mulScalar(wide, scale);
    kept.dispose();
    wide.dispose();
    return [dx];
  });
}

/**
 * The sum of the squares of every element of every tensor, as a one-element tensor on their device,
 * in one reduction (accumulated in float64): the squared gradient norm of a model, with no read
 * back to the host. NaN or Inf anywhere makes it non-finite.
 */
export function sumSquares(tensors: readonly Tensor[]): Tensor {
  if (!Array.isArray(tensors)) throw argError('sumSquares', 'tensors', 'an array of tensors', String(tensors));
  const flat = tensors.map((t, i) => dense(checkTensor('sumSquares', `tensors[${i}]`, t)));
  const device = tensors.length ? tensors[0].device : 'cpu';
  const out = Tensor.empty([], 'float32', device);
  try {
    runKernel('sumSquares', { xs: flat.map((t) => t.buffer), offsets: flat.map((t) => t.offset), counts: flat.map((t) => t.size),
      out: out.buffer, outOffset: 0 });
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    flat.forEach((t, i) => release(t, tensors[i]));
  }
  return out;
}
