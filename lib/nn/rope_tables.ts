/**
 * A model's RoPE tables as device tensors, made on first use for each (device, head dim) and kept
 * until dispose(): Module.to() moves only parameters, so the tables follow the model lazily to
 * whatever device its forward runs on.
 */
import { noGrad } from '../tensor/autograd.js';
import { tensor } from '../ops/creation.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { rope2dTables } from './rope.js';

/** cos and sin, (tokens, headDim/2), on one device: what rotaryEmbedding takes. */
export interface RopeAngles {
  cos: Tensor;
  sin: Tensor;
}

export class RopeTables {
  private readonly cache = new Map<string, RopeAngles>();

  constructor(readonly gridSide: number, readonly extraTokens: number, readonly base = 100) {}

  /** The tables for heads of `headDim` on `device` (canonical name), made once. */
  get(device: string, headDim: number): RopeAngles {
    const key = `${device}/${headDim}`;
    let angles = this.cache.get(key);
    if (!angles) {
      const { cos, sin } = rope2dTables(this.gridSide, this.extraTokens, headDim, this.base);
      const shape = [cos.length / (headDim / 2), headDim / 2];
      // Kept out of any open scope: the cache, not the caller's forward pass, owns them.
      angles = noGrad(() => ({ cos: keep(tensor(cos, shape, { device })), sin: keep(tensor(sin, shape, { device })) }));
      this.cache.set(key, angles);
    }
    return angles;
  }

  dispose(): void {
    for (const { cos, sin } of this.cache.values()) {
      cos.dispose();
      sin.dispose();
    }
    this.cache.clear();
  }
}
