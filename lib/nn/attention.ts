/** Multi-head self-attention on the fused attention kernel (names: qkv, proj — as the twin). */
import { selfAttention } from '../ops/attention.js';
import { rotaryEmbedding } from '../ops/rope.js';
import { reshape } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import type { RopeAngles } from './rope_tables.js';

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(readonly dim: number, readonly heads: number, qkvBias: boolean, g: Generator) {
    super();
    if (dim % heads !== 0) throw new Error(`diffvit.Attention: argument 'heads' expected a divisor of dim ${dim}, received ${heads}`);
    this.qkv = this.child('qkv', new Linear(dim, 3 * dim, g, qkvBias));
    this.proj = this.child('proj', new Linear(dim, dim, g));
  }

  // x: (B, N, D) -> (B, N, D); rope: cos/sin (N, Dh/2) that turn q and k by the token positions, or null.
  forward(x: Tensor, rope: RopeAngles | null = null): Tensor {
    let qkv = this.qkv.forward(x);
    if (rope) {
      const [B, N, width] = qkv.shape;
      qkv = reshape(rotaryEmbedding(reshape(qkv, [B, N, 3, this.heads, this.dim / this.heads]), rope.cos, rope.sin), [B, N, width]);
    }
    // q, k, v are read in place from the (B, N, 3, H, Dh) projection; the heads come back merged.
    return this.proj.forward(selfAttention(qkv, this.heads));
  }
}
