/** Multi-head self-attention on the fused attention kernel (names: qkv, proj — as the twin). */
import { selfAttention } from '../ops/attention.js';
import { rotaryEmbedding } from '../ops/rope.js';
import { concat, reshape, slice } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { LayerNorm, Linear } from './layers.js';
import { Module } from './module.js';
import type { RopeAngles } from './rope_tables.js';

export class Attention extends Module {
  readonly qkv: Linear;
  /**
   * qkNorm: LayerNorms over each head's query and key features, with a learned scale and no shift
   * (a shift of the keys moves every score of a query equally, which the softmax ignores); else null.
   */
  readonly q_norm: LayerNorm | null;
  readonly k_norm: LayerNorm | null;
  readonly proj: Linear;
  constructor(readonly dim: number, readonly heads: number, qkvBias: boolean, g: Generator, qkNorm = false) {
    super();
    if (dim % heads !== 0) throw new Error(`diffvit.Attention: argument 'heads' expected a divisor of dim ${dim}, received ${heads}`);
    this.qkv = this.child('qkv', new Linear(dim, 3 * dim, g, qkvBias));
    this.q_norm = qkNorm ? this.child('q_norm', new LayerNorm(dim / heads, true, 1e-6, false)) : null;
    this.k_norm = qkNorm ? this.child('k_norm', new LayerNorm(dim / heads, true, 1e-6, false)) : null;
    this.proj = this.child('proj', new Linear(dim, dim, g));
  }

  // x: (B, N, D) -> (B, N, D); rope: cos/sin (N, Dh/2) that turn q and k by the token positions, or null.
  forward(x: Tensor, rope: RopeAngles | null = null): Tensor {
    let qkv = this.qkv.forward(x);
    const [B, N, width] = qkv.shape;
    const perHead = () => reshape(qkv, [B, N, 3, this.heads, this.dim / this.heads]);
    if (this.q_norm && this.k_norm) {
      const h = perHead();
      qkv = reshape(concat([this.q_norm.forward(slice(h, 2, 0, 1)), this.k_norm.forward(slice(h, 2, 1, 2)), slice(h, 2, 2, 3)], 2), [B, N, width]);
    }
    if (rope) qkv = reshape(rotaryEmbedding(perHead(), rope.cos, rope.sin), [B, N, width]);
    // q, k, v are read in place from the (B, N, 3, H, Dh) projection; the heads come back merged.
    return this.proj.forward(selfAttention(qkv, this.heads));
  }
}
