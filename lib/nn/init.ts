/** Parameter initialisers (torch.nn.init equivalents), drawing from a seeded Generator. */
import { randn } from '../ops/creation.js';
import { assign_, fill_, normal_, uniform_ } from '../ops/inplace.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

export function fillConstant(t: Tensor, value: number): Tensor {
  return fill_(t, value);
}

export function uniform(t: Tensor, low: number, high: number, g: Generator): Tensor {
  return uniform_(t, low, high, g);
}

export function normal(t: Tensor, mean: number, std: number, g: Generator): Tensor {
  return normal_(t, mean, std, g);
}

function drawNormal(std: number, g: Generator): number {
  const b = randn([1], { generator: g, std });
  const v = b.item();
  b.dispose();
  return v;
}

/** Normal(0, std) with values outside [low, high] redrawn (torch.nn.init.trunc_normal_). */
export function truncNormal(t: Tensor, std: number, g: Generator, low = -2, high = 2): Tensor {
  normal(t, 0, std, g);
  const values = t.data();
  let redrawn = false;
  for (let i = 0; i < values.length; i++) {
    while (values[i] < low || values[i] > high) {
      values[i] = drawNormal(std, g);
      redrawn = true;
    }
  }
  if (redrawn) assign_(t, values);
  return t;
}

/**
 * DiT's fixed 2-D sin-cos position features for a grid × grid patch layout, row-major tokens:
 * (grid², dim) where, per token at (row, col), the first dim/2 features encode the row and the
 * rest the column, each half as [sin(pos·ω_i), cos(pos·ω_i)], ω_i = 10000^(-i/(dim/4)). Features
 * past the largest multiple of 4 stay 0.
 */
export function sinCos2d(grid: number, dim: number): Float32Array {
  const q = Math.floor(dim / 4);
  const out = new Float32Array(grid * grid * dim);
  for (let t = 0; t < grid * grid; t++) {
    const row = Math.floor(t / grid), col = t % grid;
    for (let i = 0; i < q; i++) {
      const omega = 10000 ** (-i / q);
      out[t * dim + i] = Math.sin(row * omega);
      out[t * dim + q + i] = Math.cos(row * omega);
      out[t * dim + 2 * q + i] = Math.sin(col * omega);
      out[t * dim + 3 * q + i] = Math.cos(col * omega);
    }
  }
  return out;
}

/** Xavier/Glorot uniform for a (fanOut, fanIn) weight. */
export function xavierUniform(t: Tensor, g: Generator): Tensor {
  const [fanOut, fanIn] = [t.shape[0], t.size / t.shape[0]];
  const bound = Math.sqrt(6 / (fanIn + fanOut));
  return uniform(t, -bound, bound, g);
}

/** PyTorch's default Linear/Conv init: kaiming_uniform(a = sqrt(5)) = U(±1/sqrt(fanIn)). */
export function defaultUniform(t: Tensor, fanIn: number, g: Generator): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform(t, -bound, bound, g);
}
