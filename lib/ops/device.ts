/**
 * Moving tensors between devices. Values travel through host memory (each backend reads and
 * writes host arrays); the gradient flows back to the source device.
 *
 *   const xg = x.to('cuda');   const back = to(xg, 'cpu');
 */
import { type Device, resolveDevice } from '../backend/backend.js';
import { record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { checkTensor } from './util.js';

/** x on `device`: x itself when it is already there (as contiguous() returns x), else a copy. */
export function to(x: Tensor, device: Device): Tensor {
  checkTensor('to', 'x', x, x instanceof Tensor ? x.dtype : 'float32');
  const target = resolveDevice(device, 'to').device;
  if (target === x.device) return x;
  const out = Tensor.empty(x.shape, x.dtype, target);
  out.storage.backend.write(out.buffer, 0, x.toArray());
  return record('to', out, [x], (dy) => [to(dy, x.device)]);
}
