/**
 * Summing over axes: the reduction under `sum` (./reduce.ts) and `sumToShape`, which undoes
 * broadcasting in the gradients of add, mul, expand, matmul... It imports no other op file, so
 * elementwise, shape and reduce can all use it without importing each other in a circle.
 */
import { runKernel } from '../backend/dispatch.js';
import { record } from '../tensor/autograd.js';
import { formatShape, type Shape, shapeSize, Tensor } from '../tensor/tensor.js';
import { argError, dense, release } from './util.js';

/**
 * x summed over `axes` (sorted, distinct) into a new contiguous tensor of `outShape` on x's device,
 * without autograd. `outShape` has x's element count once the axes are dropped (kept as 1 or not).
 * One reduceSum over an (outer, r, inner) view: x is read in place when contiguous and the axes are
 * adjacent, else copied once (the reduced axes moved last when they are not adjacent).
 */
export function sumAxes(x: Tensor, axes: readonly number[], outShape: Shape): Tensor {
  const out = Tensor.empty(outShape, 'float32', x.device);
  const first = axes[0] ?? 0, last = axes[axes.length - 1] ?? -1;
  const r = axes.reduce((a, d) => a * x.shape[d], 1);
  let view: Tensor | null = null, src: Tensor, outer: number, inner: number;
  if (axes.length === 0 || last - first + 1 === axes.length) {
    src = dense(x);
    outer = shapeSize(x.shape.slice(0, first));
    inner = shapeSize(x.shape.slice(last + 1));
  } else {
    const kept = [...x.shape.keys()].filter((d) => !axes.includes(d));
    const order = [...kept, ...axes];
    view = x.view(order.map((d) => x.shape[d]), order.map((d) => x.strides[d]), x.offset);
    src = dense(view);
    outer = kept.reduce((a, d) => a * x.shape[d], 1);
    inner = 1;
  }
  try {
    runKernel('reduceSum', { x: src.buffer, xOffset: src.offset, out: out.buffer, outOffset: 0, outer, r, inner });
  } catch (err) {
    out.dispose();
    throw err;
  } finally {
    if (view) {
      release(src, view);
      view.dispose();
    } else {
      release(src, x);
    }
  }
  return out;
}

/**
 * Sums a broadcast gradient `g` back to `shape` (over its extra leading axes and the axes where
 * `shape` has 1): the inverse of broadcasting `shape` to g's shape. Differentiable (its gradient
 * broadcasts back); g itself, as a new view, when nothing is summed.
 */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  const lead = g.rank - shape.length;
  if (lead < 0) throw argError('sumToShape', 'shape', `rank <= ${g.rank}`, formatShape(shape));
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
    else if (shape[i - lead] !== g.shape[i]) {
      throw argError('sumToShape', 'shape', `a shape that broadcasts to ${formatShape(g.shape)}`, formatShape(shape));
    }
  }
  const out = axes.length === 0 ? g.view(shape, g.strides, g.offset) : sumAxes(g, axes, shape);
  // d(out)/d(g) broadcasts dy back to g's shape: a stride-0 view, no copy.
  return record('sumToShape', out, [g], (dy) => {
    const strides = g.shape.map((_s, i) => (axes.includes(i) ? 0 : dy.strides[i - lead]));
    return [dy.view(g.shape, strides, dy.offset)];
  });
}
