/** Transformer MLP: fc1 -> GELU (tanh) -> fc2. */
import { linearGelu } from '../ops/matmul.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, ratio: number, g: Generator) {
    super();
    const hidden = Math.trunc(dim * ratio);
    this.fc1 = this.child('fc1', new Linear(dim, hidden, g));
    this.fc2 = this.child('fc2', new Linear(hidden, dim, g));
  }
  forward(x: Tensor): Tensor {
    // fc1's bias and the GELU run in its GEMM's epilogue (one pass over the hidden activations).
    return this.fc2.forward(linearGelu(x, this.fc1.weight, this.fc1.bias));
  }
}
