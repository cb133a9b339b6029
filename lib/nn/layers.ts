/** The basic layers: Linear, LayerNorm, Conv2d, Embedding (PyTorch parameter names and layouts). */
import { conv2d } from '../ops/conv.js';
import { embedding } from '../ops/embedding.js';
import { linear } from '../ops/matmul.js';
import { layerNorm } from '../ops/norm.js';
import type { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { defaultUniform, fillConstant, normal } from './init.js';
import { Module } from './module.js';

export class Linear extends Module {
  readonly weight: Tensor; // (out, in)
  readonly bias: Tensor | null; // (out)
  constructor(readonly inFeatures: number, readonly outFeatures: number, g: Generator, bias = true) {
    super();
    this.weight = this.param('weight', defaultUniform(Tensor.empty([outFeatures, inFeatures]), inFeatures, g));
    this.bias = bias ? this.param('bias', defaultUniform(Tensor.empty([outFeatures]), inFeatures, g)) : null;
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** LayerNorm over the last axis; `affine: false` is adaLN's parameter-free norm. */
export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(readonly dim: number, affine = true, readonly eps = 1e-6) {
    super();
    this.weight = affine ? this.param('weight', fillConstant(Tensor.empty([dim]), 1)) : null;
    this.bias = affine ? this.param('bias', fillConstant(Tensor.empty([dim]), 0)) : null;
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class Conv2d extends Module {
  readonly weight: Tensor; // (out, in, k, k)
  readonly bias: Tensor; // (out)
  constructor(inChannels: number, outChannels: number, readonly kernel: number, g: Generator,
    readonly stride = 1, readonly padding = 0) {
    super();
    const fanIn = inChannels * kernel * kernel;
    this.weight = this.param('weight', defaultUniform(Tensor.empty([outChannels, inChannels, kernel, kernel]), fanIn, g));
    this.bias = this.param('bias', defaultUniform(Tensor.empty([outChannels]), fanIn, g));
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

export class Embedding extends Module {
  readonly weight: Tensor; // (rows, dim)
  constructor(rows: number, dim: number, g: Generator) {
    super();
    this.weight = this.param('weight', normal(Tensor.empty([rows, dim]), 0, 1, g));
  }
  forward(indices: Tensor): Tensor {
    return embedding(this.weight, indices);
  }
}
