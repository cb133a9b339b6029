/**
 * EDM2's learned loss weighting (Karras et al. 2024, "Analyzing and improving the training dynamics
 * of diffusion models", §5): a scalar u(σ) per noise level — a linear map of c_noise's positional
 * features — that divides each sample's loss, L/e^u + u. Minimising it over u makes e^u track the
 * expected loss at σ, so every noise level contributes about equally to the gradient, whatever its
 * loss scale. Used by the training loss only; sampling never calls it.
 */
import { reshape } from '../ops/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { fillConstant } from './init.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { edmPositionalEmbedding } from './timestep.js';

export class LogVariance extends Module {
  readonly linear: Linear;
  /** Starts at u = 0 (the plain EDM loss). */
  constructor(readonly freqDim: number, g: Generator) {
    super();
    this.linear = this.child('linear', new Linear(freqDim, 1, g));
    fillConstant(this.linear.weight, 0);
    fillConstant(this.linear.bias!, 0);
  }

  /** cNoise (B) -> u (B). */
  forward(cNoise: Tensor): Tensor {
    return reshape(this.linear.forward(edmPositionalEmbedding(cNoise, this.freqDim)), [cNoise.shape[0]]);
  }
}
