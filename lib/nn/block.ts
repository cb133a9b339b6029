/**
 * The pre-norm transformer block of IU-ViT/ASCEND, with adaLN-Zero modulation when conditioned by a
 * vector (time_cond "adaln") and an optional long-skip input (decoder blocks), and the final layer.
 */
import { add, silu } from '../ops/elementwise.js';
import { addGated, layerNormModulate } from '../ops/fused.js';
import { chunk, concat } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Attention } from './attention.js';
import { LayerNorm, Linear } from './layers.js';
import { Mlp, type MlpKind } from './mlp.js';
import { Module } from './module.js';
import type { RopeAngles } from './rope_tables.js';

export interface BlockOptions {
  dim: number;
  heads: number;
  mlpRatio: number;
  qkvBias: boolean;
  /** adaLN-Zero modulation from the conditioning vector (else affine LayerNorms). */
  adaln: boolean;
  /** Width of the long-skip input (0: no skip). The skip Linear maps dim + skipDim -> dim. */
  skipDim: number;
  /** Width of the conditioning vector c. */
  condDim: number;
  /** LayerNorm of each head's queries and keys (config qk_norm; default off). */
  qkNorm?: boolean;
  /** The MLP's kind (config mlp; default 'gelu'). */
  mlp?: MlpKind;
}

export class Block extends Module {
  readonly skip: Linear | null;
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly ada: Linear | null;

  constructor(o: BlockOptions, g: Generator) {
    super();
    // Registration order follows the twin's __init__ (names are what matter for checkpoints).
    this.skip = o.skipDim ? this.child('skip', new Linear(o.dim + o.skipDim, o.dim, g)) : null;
    this.norm1 = this.child('norm1', new LayerNorm(o.dim, !o.adaln));
    this.attn = this.child('attn', new Attention(o.dim, o.heads, o.qkvBias, g, o.qkNorm ?? false));
    this.norm2 = this.child('norm2', new LayerNorm(o.dim, !o.adaln));
    this.mlp = this.child('mlp', new Mlp(o.dim, o.mlpRatio, g, o.mlp ?? 'gelu'));
    this.ada = o.adaln ? this.child('ada', new Linear(o.condDim, 6 * o.dim, g)) : null;
  }

  // x: (B, N, D), c: (B, condDim) or null, skip: (B, N, skipDim) or null, rope: the attention's RoPE tables or null
  forward(x: Tensor, c: Tensor | null, skip: Tensor | null = null, rope: RopeAngles | null = null): Tensor {
    if (this.skip) x = this.skip.forward(concat([x, skip!], -1));
    if (!this.ada) {
      x = add(x, this.attn.forward(this.norm1.forward(x), rope));
      return add(x, this.mlp.forward(this.norm2.forward(x)));
    }
    // (B, 6D) -> six (B, D) column views: shift/scale/gate for attention, then for the MLP. The fused
    // ops read them in place and broadcast them over the tokens: x + g * f(LN(x) * (1 + sc) + sh).
    // norm1/norm2 have no parameters here (adaLN); only their eps is used.
    const [sh1, sc1, g1, sh2, sc2, g2] = chunk(this.ada.forward(silu(c!)), 6, -1);
    x = addGated(x, g1, this.attn.forward(layerNormModulate(x, sh1, sc1, this.norm1.eps), rope));
    return addGated(x, g2, this.mlp.forward(layerNormModulate(x, sh2, sc2, this.norm2.eps)));
  }
}

/** Final norm (+ adaLN shift/scale) and the Linear to patch pixels. */
export class FinalLayer extends Module {
  readonly norm: LayerNorm;
  readonly ada: Linear | null;
  readonly linear: Linear;
  constructor(dim: number, out: number, adaln: boolean, condDim: number, g: Generator) {
    super();
    this.norm = this.child('norm', new LayerNorm(dim, !adaln));
    this.ada = adaln ? this.child('ada', new Linear(condDim, 2 * dim, g)) : null;
    this.linear = this.child('linear', new Linear(dim, out, g));
  }
  forward(x: Tensor, c: Tensor | null): Tensor {
    if (!this.ada) return this.linear.forward(this.norm.forward(x));
    const [sh, sc] = chunk(this.ada.forward(silu(c!)), 2, -1); // two (B, D) column views
    return this.linear.forward(layerNormModulate(x, sh, sc, this.norm.eps));
  }
}
