/**
 * Moving tensors between devices. Values travel through host memory (each backend reads and
 * writes host arrays); the gradient flows back to the source device.
 *
 *   const xg = x.to('cuda');   const back = to(xg, 'cpu');
 */
import { type Device, resolveDevice } from '../backend/backend.js';
import { noGrad, record } from '../tensor/autograd.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { copy_ } from './inplace.js';
import { argError, checkTensor, sameShape } from './util.js';

/** x on `device`: x itself when it is already there (as contiguous() returns x), else a copy. */
export function to(x: Tensor, device: Device): Tensor {
  checkTensor('to', 'x', x, x instanceof Tensor ? x.dtype : 'float32');
  const target = resolveDevice(device, 'to').device;
  if (target === x.device) return x;
  const out = Tensor.empty(x.shape, x.dtype, target);
  out.storage.backend.write(out.buffer, 0, x.toArray());
  return record('to', out, [x], (dy) => [to(dy, x.device)]);
}

/**
 * dst[:] = src, off the tape, where src may live on another device than dst (its values travel
 * through the host once: a checkpoint's host tensors into a model's device parameters). On one
 * device it is copy_. Returns dst.
 */
export function copyAcross_(dst: Tensor, src: Tensor): Tensor {
  checkTensor('copyAcross_', 'dst', dst, dst instanceof Tensor ? dst.dtype : 'float32');
  checkTensor('copyAcross_', 'src', src, dst.dtype);
  if (src.device === dst.device) return copy_(dst, src);
  if (!sameShape(src.shape, dst.shape)) throw argError('copyAcross_', 'src', `shape ${formatShape(dst.shape)} (that of dst)`, formatShape(src.shape));
  if (dst.isContiguous()) {
    dst.storage.backend.write(dst.buffer, dst.offset, src.toArray());
    return dst;
  }
  const moved = noGrad(() => to(src, dst.device));
  try {
    return copy_(dst, moved);
  } finally {
    moved.dispose();
  }
}
