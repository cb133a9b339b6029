/**
 * Nearest-neighbour upsampling of NCHW images by an integer factor — PyTorch's
 * F.interpolate(x, scale_factor=s, mode='nearest') — the U-Net decoder's upsample:
 *
 *   const y = upsampleNearest2d(x);        // (N, C, 8, 8) -> (N, C, 16, 16)
 *
 * Built from views: x (N, C, H, 1, W, 1) expanded to (N, C, H, s, W, s) (stride 0, no copy), one
 * strided copy into (N, C, H·s, W·s); the gradient is the sum over each s × s block (the expand's
 * backward: one reduction). No kernel of its own.
 */
import { type Tensor, formatShape } from '../tensor/tensor.js';
import { expand, reshape } from './shape.js';
import { argError, checkRank, checkTensor, describe } from './util.js';

export function upsampleNearest2d(x: Tensor, scale = 2): Tensor {
  const op = 'upsampleNearest2d';
  checkTensor(op, 'x', x);
  checkRank(op, 'x', x, 4);
  if (typeof scale !== 'number' || !Number.isInteger(scale) || scale < 1 || scale > 1024) {
    throw argError(op, 'scale', 'an integer in [1, 1024]', describe(scale));
  }
  const [n, c, h, w] = x.shape;
  if (h === 0 || w === 0) throw argError(op, 'x', 'a non-empty image (H, W >= 1)', `shape ${formatShape(x.shape)}`);
  if (scale === 1) return reshape(x, x.shape);
  const grid = reshape(x, [n, c, h, 1, w, 1]);
  const wide = expand(grid, [n, c, h, scale, w, scale]);
  const out = reshape(wide, [n, c, h * scale, w * scale]);
  if (!grid.requiresGrad) {
    grid.dispose();
    wide.dispose();
  }
  return out;
}
