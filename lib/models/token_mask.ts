/**
 * Masked-token training (MaskDiT, Zheng et al. 2023; MicroDiT's masking, Sehwag et al. 2024): each
 * training image keeps a random subset of its patch tokens, the transformer runs on those alone
 * (cheaper by about the fraction dropped), and the loss covers the kept patches only. Both
 * directions between a full token sequence and its kept subset are one gather (the embedding op),
 * so their gradients are the embedding's scatter-add:
 *   keep: (B, K) rows of the batch's flattened tokens (B·N, D) that stay — gathering with it drops;
 *   fill: (B, N) rows of [kept tokens (B·K, D); one row of zeros] — gathering with it puts each kept
 *         token back at its position and zeros at the dropped ones.
 */
import type { Device } from '../backend/backend.js';
import { DataRng } from '../data/rng.js';
import { tensor, zeros } from '../ops/creation.js';
import { embedding } from '../ops/embedding.js';
import { concat, reshape } from '../ops/shape.js';
import { formatShape, type Tensor } from '../tensor/tensor.js';
import { patchify } from './patches.js';

export interface TokenMask {
  /** Patch tokens of an image (N) and how many of them each image keeps (K). */
  tokens: number;
  kept: number;
  /** int32 (B, K): batch-flattened rows b·N + n of the kept patches, ascending within each image. */
  keep: Tensor;
  /** int32 (B, N): for patch n of image b, its row among the kept tokens (b·K + j), or B·K (the zero row). */
  fill: Tensor;
}

/** How many of `tokens` patches a mask of `ratio` keeps: at least one. */
export function keptTokens(tokens: number, ratio: number): number {
  return Math.max(1, Math.round(tokens * (1 - ratio)));
}

/** A token mask's index arrays on the host (TokenMask's keep and fill, before they become tensors). */
export interface TokenMaskIndices {
  kept: number;
  keep: Int32Array;
  fill: Int32Array;
}

/**
 * The indices of a mask for a batch of `batch` images of `tokens` patches that drops `ratio` of
 * each image's patches, drawn uniformly without replacement; a pure function of (seed, step), so a
 * resumed run draws the same masks (and a CUDA-graph step writes the eager step's mask).
 */
export function tokenMaskIndices(batch: number, tokens: number, ratio: number, seed: number, step: number): TokenMaskIndices {
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`diffvit.drawTokenMask: argument 'ratio' expected a fraction in [0, 1), received ${ratio}`);
  const K = keptTokens(tokens, ratio);
  // A stream of its own (the data's streams are image indices; these are negative).
  const rng = new DataRng(seed, -1 - step);
  const keep = new Int32Array(batch * K), fill = new Int32Array(batch * tokens).fill(batch * K);
  const order = new Int32Array(tokens);
  for (let b = 0; b < batch; b++) {
    for (let n = 0; n < tokens; n++) order[n] = n;
    // The first K places of a partial Fisher–Yates shuffle, then in patch order.
    for (let i = 0; i < K; i++) {
      const j = i + rng.int(tokens - i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const chosen = Array.from(order.subarray(0, K)).sort((a, c) => a - c);
    chosen.forEach((n, j) => {
      keep[b * K + j] = b * tokens + n;
      fill[b * tokens + n] = b * K + j;
    });
  }
  return { kept: K, keep, fill };
}

/** tokenMaskIndices' mask as index tensors on `device`. */
export function drawTokenMask(batch: number, tokens: number, ratio: number, seed: number, step: number, device: Device = 'cpu'): TokenMask {
  const { kept, keep, fill } = tokenMaskIndices(batch, tokens, ratio, seed, step);
  return {
    tokens, kept,
    keep: tensor(keep, [batch, kept], { dtype: 'int32', device }),
    fill: tensor(fill, [batch, tokens], { dtype: 'int32', device }),
  };
}

/** (B, N, D) tokens -> (B, K, D): the kept ones. */
export function dropTokens(tokens: Tensor, mask: TokenMask): Tensor {
  const [B, N, D] = tokens.shape;
  if (tokens.rank !== 3 || N !== mask.tokens || B !== mask.keep.shape[0]) {
    throw new Error(`diffvit.dropTokens: argument 'tokens' expected shape [${mask.keep.shape[0]}, ${mask.tokens}, D] (the mask's batch and tokens), received ${formatShape(tokens.shape)}`);
  }
  return embedding(reshape(tokens, [B * N, D]), mask.keep);
}

/** (B, K, D) kept tokens -> (B, N, D) with zeros at the dropped positions. */
export function restoreTokens(kept: Tensor, mask: TokenMask): Tensor {
  const [B, K, D] = kept.shape;
  if (kept.rank !== 3 || K !== mask.kept || B !== mask.keep.shape[0]) {
    throw new Error(`diffvit.restoreTokens: argument 'kept' expected shape [${mask.keep.shape[0]}, ${mask.kept}, D] (the mask's batch and kept tokens), received ${formatShape(kept.shape)}`);
  }
  const rows = concat([reshape(kept, [B * K, D]), zeros([1, D], { device: kept.device })], 0);
  return embedding(rows, mask.fill);
}

/** Images (B, C, H, W) -> the mask's kept patches (B, K, p·p·C), each patch in the model's token layout (rows, columns, channels). */
export function keptPatches(images: Tensor, mask: TokenMask, patch: number): Tensor {
  const [, , H, W] = images.shape;
  const g = H / patch;
  if (images.rank !== 4 || H !== W || !Number.isInteger(g) || g * g !== mask.tokens) {
    throw new Error(`diffvit.keptPatches: argument 'images' expected shape [B, C, S, S] with (S/${patch})² = ${mask.tokens} patches, received ${formatShape(images.shape)}`);
  }
  return dropTokens(patchify(images, patch), mask);
}

/** Frees the mask's index tensors. */
export function disposeTokenMask(mask: TokenMask): void {
  mask.keep.dispose();
  mask.fill.dispose();
}
