/** EDM's positional embedding of c_noise and the time-embedding MLP (Linear -> SiLU -> Linear). */
import { tensor } from '../ops/creation.js';
import { cos, mul, silu, sin } from '../ops/elementwise.js';
import { concat, reshape } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

/**
 * cos|sin features of x (B) with n/2 geometric frequencies from 1 down to 1/maxPositions, endpoint
 * included: freqs_i = (1/maxPositions)^(i/(n/2 - 1)). Returns (B, n).
 */
export function edmPositionalEmbedding(x: Tensor, n = 256, maxPositions = 10000): Tensor {
  const half = n / 2;
  const f = frequencies(half, maxPositions, x.device);
  const a = mul(reshape(x, [x.shape[0], 1]), f); // (B, half)
  return concat([cos(a), sin(a)], 1);
}

/**
 * Off the CPU the (1, half) frequency table is written to a device once and kept (per device and
 * size): a host-to-device write waits for the device, and is impossible while a CUDA graph is being
 * captured. On the CPU it is a fresh tensor each time (a memcpy), as it always was.
 */
const deviceFrequencies = new Map<string, Tensor>();
function frequencies(half: number, maxPositions: number, device: string): Tensor {
  const key = `${device}|${half}|${maxPositions}`;
  const cached = deviceFrequencies.get(key);
  if (cached && !cached.isDisposed) return cached;
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = Math.fround((1 / maxPositions) ** Math.fround(i / (half - 1)));
  const f = tensor(freqs, [1, half], { device });
  if (device !== 'cpu') deviceFrequencies.set(key, keep(f));
  return f;
}

/** time_embed.0 and time_embed.2 in the twin's nn.Sequential(Linear, SiLU, Linear). */
export class TimestepEmbed extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly freqDim: number, dim: number, g: Generator) {
    super();
    this.fc1 = this.child('0', new Linear(freqDim, dim, g));
    this.fc2 = this.child('2', new Linear(dim, dim, g));
  }
  // cNoise: (B) -> (B, dim)
  forward(cNoise: Tensor): Tensor {
    return this.fc2.forward(silu(this.fc1.forward(edmPositionalEmbedding(cNoise, this.freqDim))));
  }
}
