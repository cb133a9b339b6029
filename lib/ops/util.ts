/** Argument checks and shape helpers shared by the op files. */
import { runKernel } from '../backend/dispatch.js';
import type { Generator } from '../tensor/random.js';
import { copyInto, formatShape, type DType, type Shape, Tensor } from '../tensor/tensor.js';

/** Throws the standard error: "diffvit.<op>: argument '<arg>' expected <expected>, received <received>". */
export function argError(op: string, arg: string, expected: string, received: string): Error {
  return new Error(`diffvit.${op}: argument '${arg}' expected ${expected}, received ${received}`);
}

export function describe(v: unknown): string {
  if (v instanceof Tensor) return v.toString();
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'string') return `'${v}'`;
  return String(v);
}

/** A live Tensor of the given dtype (float32 unless said otherwise). */
export function checkTensor(op: string, arg: string, t: unknown, dtype: DType = 'float32'): Tensor {
  if (!(t instanceof Tensor)) throw argError(op, arg, 'a Tensor', describe(t));
  if (t.isDisposed || !t.storage.alive) throw argError(op, arg, 'a live tensor', `a disposed ${t.toString()}`);
  if (t.dtype !== dtype) throw argError(op, arg, `dtype ${dtype}`, t.dtype);
  return t;
}

export function checkRank(op: string, arg: string, t: Tensor, rank: number | number[]): void {
  const ranks = Array.isArray(rank) ? rank : [rank];
  if (!ranks.includes(t.rank)) {
    throw argError(op, arg, `rank ${ranks.join(' or ')}`, `shape ${formatShape(t.shape)}`);
  }
}

export function checkInt(op: string, arg: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw argError(op, arg, `an integer in [${min}, ${max}]`, describe(v));
  }
  return v;
}

export function checkNumber(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw argError(op, arg, 'a finite number', describe(v));
  return v;
}

/** Normalises a possibly negative axis for a tensor of the given rank. */
export function normAxis(op: string, axis: number, rank: number, arg = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw argError(op, arg, `an integer in [${-rank}, ${rank - 1}]`, describe(axis));
  }
  return axis < 0 ? axis + rank : axis;
}

export function checkShape(op: string, arg: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && s >= 0)) {
    throw argError(op, arg, 'an array of non-negative integers', describe(shape));
  }
  return shape as number[];
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw argError(op, 'b', `a shape broadcastable with ${formatShape(a)}`, formatShape(b));
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read `t` as if broadcast to `shape` (0 on broadcast dims). */
export function broadcastStrides(t: Tensor, shape: Shape): number[] {
  const lead = shape.length - t.rank;
  return shape.map((s, i) => {
    if (i < lead) return 0;
    return t.shape[i - lead] === 1 && s !== 1 ? 0 : t.strides[i - lead];
  });
}

/**
 * x's values in contiguous row-major memory, without recording autograd: x itself or a copy on x's
 * device that the caller gives to release(). The one "contiguous or copy" helper of lib/ops (the
 * autograd op is shape.ts's contiguous()). Ops whose kernels read other layouts in place keep their
 * own test: attention's unitHeadDim and fused's perItemRows fall back to dense(); matmul's operand
 * copies to the broadcast batch shape instead.
 */
export function dense(x: Tensor): Tensor {
  if (x.isContiguous()) return x;
  const c = Tensor.empty(x.shape, x.dtype, x.device);
  copyInto(x, c);
  return c;
}

/** Disposes `copy` when it is a copy made by dense(), not the original. */
export function release(copy: Tensor | null, original: Tensor | null): void {
  if (copy && copy !== original) copy.dispose();
}

/**
 * Fills the contiguous t with draws from the Philox stream of `generator`: Normal(a, b) (mean, std)
 * or Uniform(a, b] — randn/rand and normal_/uniform_. Returns t.
 */
export function fillRandom(t: Tensor, distribution: 'normal' | 'uniform', a: number, b: number, generator: Generator): Tensor {
  runKernel('randomFill', { out: t.buffer, offset: t.offset, n: t.size, distribution, seed: generator.seed,
    counter: generator.take(t.size), a, b });
  return t;
}
