/** The basic layers: Linear, LayerNorm, GroupNorm, Conv2d, Embedding (PyTorch parameter names and layouts). */
import { conv2d } from '../ops/conv.js';
import { embedding } from '../ops/embedding.js';
import { groupNormAct } from '../ops/group_norm.js';
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
  /** affine: a learned scale (weight) and, unless bias is false, a shift (bias). */
  constructor(readonly dim: number, affine = true, readonly eps = 1e-6, bias = affine) {
    super();
    this.weight = affine ? this.param('weight', fillConstant(Tensor.empty([dim]), 1)) : null;
    this.bias = affine && bias ? this.param('bias', fillConstant(Tensor.empty([dim]), 0)) : null;
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/**
 * GroupNorm over (N, C, ...) as torch.nn.GroupNorm(groups, channels, eps, affine); forward can
 * fuse a SiLU after it (the U-Net's norm-activation pairs).
 */
export class GroupNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(readonly groups: number, readonly channels: number, affine = true, readonly eps = 1e-5) {
    super();
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      throw new Error(`diffvit.GroupNorm: argument 'groups' expected a positive divisor of channels ${channels}, received ${groups}`);
    }
    this.weight = affine ? this.param('weight', fillConstant(Tensor.empty([channels]), 1)) : null;
    this.bias = affine ? this.param('bias', fillConstant(Tensor.empty([channels]), 0)) : null;
  }
  forward(x: Tensor, options: { silu?: boolean } = {}): Tensor {
    return groupNormAct(x, this.groups, { scale: this.weight, shift: this.bias, silu: options.silu ?? false, eps: this.eps });
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
