/**
 * Classifier-free guidance: D_w = D_uncond + w·(D_cond − D_uncond), with the conditional and the
 * unconditional halves evaluated as ONE batch of 2B (labels then the null label / empty context).
 */
import { full, tensor } from '../ops/creation.js';
import { mulScalar } from '../ops/elementwise.js';
import { concat } from '../ops/shape.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { noGrad } from '../tensor/autograd.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { preconditioning } from './edm.js';
import type { Denoise } from './samplers/common.js';

export interface Conditioning {
  /** Class per image (int32 values), or null for an unconditional model. */
  labels?: Int32Array | null;
  /** (B, L, C) context embeddings, or null. */
  context?: Tensor | null;
  /** Guidance scale w; 1 = plain conditional sampling (no unconditional pass). */
  guidance?: number;
}

/** The network F around a batch of B images: scales by c_in, doubles the batch for guidance. */
export class GuidedNetwork {
  readonly guided: boolean;
  readonly guidance: number;
  readonly batch: number;
  private readonly labels: Tensor | null;
  private readonly context: Tensor | null;

  constructor(readonly net: DiffusionViT, readonly shape: readonly number[], cond: Conditioning = {}, readonly sigmaData = 0.5) {
    const B = (this.batch = shape[0]);
    this.guidance = cond.guidance ?? 1;
    this.guided = this.guidance !== 1 && Boolean(cond.labels || cond.context);
    const numClasses = net.config.num_classes;
    if (cond.labels && cond.labels.length !== B) {
      throw new Error(`diffvit.sample: argument 'labels' expected ${B} labels, received ${cond.labels.length}`);
    }
    for (const l of cond.labels ?? []) {
      if (!(l >= 0 && l <= numClasses)) throw new Error(`diffvit.sample: argument 'labels' expected classes in [0, ${numClasses}] (${numClasses} = null), received ${l}`);
    }
    const G = this.guided ? 2 : 1;
    this.labels = null;
    if (numClasses) {
      const l = new Int32Array(G * B).fill(numClasses);
      if (cond.labels) l.set(cond.labels);
      this.labels = keep(tensor(l, [G * B], 'int32'));
    }
    this.context = null;
    if (cond.context) {
      // the unconditional half sees an all-zero ("empty") context
      this.context = this.guided ? keep(noGrad(() => concat([cond.context!, full(cond.context!.shape, 0)], 0))) : cond.context;
    }
  }

  /** F(c_in·x; c_noise) for x: (B, ...) at σ, as (G·B, ...) with the conditional half first. */
  evaluate(x: Tensor, sigma: number): Tensor {
    return noGrad(() =>
      scope(() => {
        const { c_in, c_noise } = preconditioning(sigma, this.sigmaData);
        const xIn = mulScalar(x, c_in);
        const input = this.guided ? concat([xIn, xIn], 0) : xIn;
        const cNoise = full([input.shape[0]], c_noise);
        return this.net.forward(input, cNoise, this.labels, this.context);
      }),
    );
  }

  /** D_w(x; σ) for the float64 samplers (the guidance mix done in float64). */
  readonly denoise: Denoise = (x, sigma) =>
    scope(() => {
      const { c_skip, c_out } = preconditioning(sigma, this.sigmaData);
      const F = this.evaluate(tensor(Float32Array.from(x), this.shape), sigma).data();
      const n = x.length, w = this.guidance;
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const Dc = c_skip * x[i] + c_out * F[i];
        if (!this.guided) {
          out[i] = Dc;
          continue;
        }
        const Du = c_skip * x[i] + c_out * F[n + i];
        out[i] = Du + w * (Dc - Du);
      }
      return out;
    });

  dispose(): void {
    this.labels?.dispose();
    if (this.context && this.guided) this.context.dispose();
  }
}
