/**
 * In-place updates, off the autograd tape: what optimisers, EMA, initialisers and gradient
 * accumulation write into existing tensors. Each works on any device; `dst` must be contiguous
 * (parameters, gradients and optimiser state are).
 *
 *   fill_(grad, 0);  axpby_(ema, param, decay, 1 - decay);  copy_(param, loaded);  normal_(w, 0, 0.02, g)
 */
import { runKernel } from '../backend/dispatch.js';
import type { Generator } from '../tensor/random.js';
import { copyInto, formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkNumber, checkTensor, dense, describe, fillRandom, release, sameShape } from './util.js';

/** A contiguous tensor to write (argument `name`), of `dtype` (default: any). */
function checkDestination(op: string, dst: Tensor, name = 'dst', dtype?: Tensor['dtype']): Tensor {
  checkTensor(op, name, dst, dtype ?? (dst instanceof Tensor ? dst.dtype : 'float32'));
  if (!dst.isContiguous()) throw argError(op, name, 'a contiguous tensor', `a view with strides [${dst.strides.join(', ')}]`);
  return dst;
}

/** A tensor read into `dst` (arguments `name`, `dstName`): its dtype and shape. */
function checkSource(op: string, dst: Tensor, src: Tensor, name = 'src', dstName = 'dst'): Tensor {
  checkTensor(op, name, src, dst.dtype);
  if (!sameShape(src.shape, dst.shape)) throw argError(op, name, `shape ${formatShape(dst.shape)} (that of ${dstName})`, formatShape(src.shape));
  return src;
}

/** dst[:] = value. Returns dst. */
export function fill_(dst: Tensor, value: number): Tensor {
  checkDestination('fill_', dst);
  runKernel('fill', { out: dst.buffer, offset: dst.offset, n: dst.size, value: checkNumber('fill_', 'value', value) });
  return dst;
}

/** dst = alpha * dst + beta * src, elementwise (src may be any view of dst's shape). Returns dst. */
export function axpby_(dst: Tensor, src: Tensor, alpha: number, beta: number): Tensor {
  checkDestination('axpby_', dst);
  checkSource('axpby_', dst, src);
  const s = dense(src);
  runKernel('axpby', { dst: dst.buffer, dstOffset: dst.offset, src: s.buffer, srcOffset: s.offset, n: dst.size,
    alpha: checkNumber('axpby_', 'alpha', alpha), beta: checkNumber('axpby_', 'beta', beta) });
  release(s, src);
  return dst;
}

/**
 * axpby_(dsts[i], srcs[i], alpha, beta) for every i, in one kernel call (the EMA of every
 * parameter: on the CPU one pass over all of them instead of a dispatch per tensor), with the same
 * values. The dsts contiguous and float32, none sharing memory with another dst or a src.
 */
export function axpbyMany_(dsts: readonly Tensor[], srcs: readonly Tensor[], alpha: number, beta: number): void {
  const op = 'axpbyMany_';
  if (!Array.isArray(dsts)) throw argError(op, 'dsts', 'an array of tensors', describe(dsts));
  if (!Array.isArray(srcs) || srcs.length !== dsts.length) throw argError(op, 'srcs', `an array of ${dsts.length} tensors (one per dst)`, describe(srcs));
  dsts.forEach((d, i) => {
    checkDestination(op, d, `dsts[${i}]`, 'float32');
    checkSource(op, d, srcs[i], `srcs[${i}]`, `dsts[${i}]`);
  });
  const dense_ = srcs.map((s) => dense(s));
  try {
    runKernel('axpbyMany', { dsts: dsts.map((d) => d.buffer), dstOffsets: dsts.map((d) => d.offset), srcs: dense_.map((s) => s.buffer),
      srcOffsets: dense_.map((s) => s.offset), counts: dsts.map((d) => d.size), alpha: checkNumber(op, 'alpha', alpha), beta: checkNumber(op, 'beta', beta) });
  } finally {
    dense_.forEach((s, i) => release(s, srcs[i]));
  }
}

/** dst[:] = src (any views of one shape, on one device). Returns dst. */
export function copy_(dst: Tensor, src: Tensor): Tensor {
  checkTensor('copy_', 'dst', dst, dst instanceof Tensor ? dst.dtype : 'float32');
  checkSource('copy_', dst, src);
  copyInto(src, dst);
  return dst;
}

/** Writes host values into dst's elements from `start` (row-major), e.g. precomputed embeddings. Returns dst. */
export function assign_(dst: Tensor, values: Float32Array | Int32Array, start = 0): Tensor {
  checkDestination('assign_', dst);
  const want = dst.dtype === 'int32' ? Int32Array : Float32Array;
  if (!(values instanceof want)) throw argError('assign_', 'values', `a ${want.name} (dst is ${dst.dtype})`, describe(values));
  if (!Number.isInteger(start) || start < 0 || start + values.length > dst.size) {
    throw argError('assign_', 'start', `an integer in [0, ${dst.size - values.length}] (${values.length} values into ${dst.size})`, describe(start));
  }
  dst.storage.backend.write(dst.buffer, dst.offset + start, values);
  return dst;
}

/** dst[:] = draws of Uniform(low, high] from the Philox stream of `generator`. Returns dst. */
export function uniform_(dst: Tensor, low: number, high: number, generator: Generator): Tensor {
  checkDestination('uniform_', dst);
  return fillRandom(dst, 'uniform', checkNumber('uniform_', 'low', low), checkNumber('uniform_', 'high', high), generator);
}

/** dst[:] = draws of Normal(mean, std) from the Philox stream of `generator`. Returns dst. */
export function normal_(dst: Tensor, mean: number, std: number, generator: Generator): Tensor {
  checkDestination('normal_', dst);
  return fillRandom(dst, 'normal', checkNumber('normal_', 'mean', mean), checkNumber('normal_', 'std', std), generator);
}
