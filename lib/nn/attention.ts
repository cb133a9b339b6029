/** Multi-head self-attention on the fused attention kernel (names: qkv, proj — as the twin). */
import { attention } from '../ops/attention.js';
import { permute, reshape, squeeze, slice, transpose } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(readonly dim: number, readonly heads: number, qkvBias: boolean, g: Generator) {
    super();
    if (dim % heads !== 0) throw new Error(`diffvit.Attention: argument 'heads' expected a divisor of dim ${dim}, received ${heads}`);
    this.qkv = this.child('qkv', new Linear(dim, 3 * dim, g, qkvBias));
    this.proj = this.child('proj', new Linear(dim, dim, g));
  }

  // x: (B, N, D) -> (B, N, D)
  forward(x: Tensor): Tensor {
    const [B, N, D] = x.shape;
    const headDim = D / this.heads;
    const qkv = this.qkv.forward(x); // (B, N, 3D)
    // (B, N, 3, H, Dh) -> (3, B, H, N, Dh): views the attention kernel reads in place
    const split = permute(reshape(qkv, [B, N, 3, this.heads, headDim]), [2, 0, 3, 1, 4]);
    const [q, k, v] = [0, 1, 2].map((i) => squeeze(slice(split, 0, i, i + 1), 0));
    const o = attention(q, k, v); // (B, H, N, Dh), laid out as (B, N, H, Dh)
    return this.proj.forward(reshape(transpose(o, 1, 2), [B, N, D]));
  }
}
