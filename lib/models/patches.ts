/**
 * The IU-ViT token layout of an image: p×p patches in row-major order, each patch's values as
 * (row within the patch, column, channel). `unpatchify` is how the model turns its output tokens
 * into an image; `patchify`, its inverse, is how the masked loss picks the same patches out of
 * images (./token_mask.ts).
 */
import { permute, reshape } from '../ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** (B, C, H, W) -> (B, (H/p)², p·p·C). H = W, a multiple of p. */
export function patchify(images: Tensor, p: number): Tensor {
  const [B, C, H] = images.shape, g = H / p;
  return reshape(permute(reshape(images, [B, C, g, p, g, p]), [0, 2, 4, 3, 5, 1]), [B, g * g, p * p * C]);
}

/** (B, (H/p)², p·p·C) -> (B, C, H, H): patchify's inverse. */
export function unpatchify(tokens: Tensor, p: number, C: number, H: number): Tensor {
  const B = tokens.shape[0], g = H / p;
  return reshape(permute(reshape(tokens, [B, g, g, p, p, C]), [0, 5, 1, 3, 2, 4]), [B, C, H, H]);
}
