/** Transformer MLP: fc1 -> GELU (tanh) -> fc2, or the gated SwiGLU: fc1 -> SiLU(a) * b -> fc2. */
import { mul, silu } from '../ops/elementwise.js';
import { linearGelu } from '../ops/matmul.js';
import { chunk } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

export type MlpKind = 'gelu' | 'swiglu';

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  /**
   * kind 'swiglu': the hidden width is 2/3 of dim * ratio (rounded), and fc1 makes two halves of
   * it, so the parameters stay about those of the GELU MLP (Shazeer 2020; LLaMA).
   */
  constructor(dim: number, ratio: number, g: Generator, readonly kind: MlpKind = 'gelu') {
    super();
    const hidden = kind === 'swiglu' ? Math.round((dim * ratio * 2) / 3) : Math.trunc(dim * ratio);
    this.fc1 = this.child('fc1', new Linear(dim, kind === 'swiglu' ? 2 * hidden : hidden, g));
    this.fc2 = this.child('fc2', new Linear(hidden, dim, g));
  }
  forward(x: Tensor): Tensor {
    if (this.kind === 'swiglu') {
      const [a, b] = chunk(this.fc1.forward(x), 2, -1);
      return this.fc2.forward(mul(silu(a), b));
    }
    // fc1's bias and the GELU run in its GEMM's epilogue (one pass over the hidden activations).
    return this.fc2.forward(linearGelu(x, this.fc1.weight, this.fc1.bias));
  }
}
