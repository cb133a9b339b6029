/**
 * Classifier-free guidance: D_w = D_uncond + w·(D_cond − D_uncond), with the conditional and the
 * unconditional halves evaluated as ONE batch of 2B (labels then the null label / empty context).
 */
import { tensor } from '../ops/creation.js';
import { concat } from '../ops/shape.js';
import { noGrad } from '../tensor/autograd.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { EDMDenoiser } from './edm.js';
import type { Denoise } from './samplers/common.js';

export interface Conditioning {
  /** Class per image (int32 values), or null for an unconditional model. */
  labels?: Int32Array | null;
  /** (B, L, C) context embeddings, or null. */
  context?: Tensor | null;
  /** Guidance scale w; 1 = plain conditional sampling (no unconditional pass). */
  guidance?: number;
}

/** Wraps D for the float64 samplers: image shape (B, C, H, W), CFG when guidance != 1. */
export function guidedDenoiser(D: EDMDenoiser, shape: readonly number[], cond: Conditioning = {}): Denoise {
  const [B] = shape;
  const w = cond.guidance ?? 1;
  const cfg = w !== 1 && (cond.labels || cond.context);
  const numClasses = D.net.config.num_classes;
  if (cond.labels && cond.labels.length !== B) {
    throw new Error(`diffvit.sample: argument 'labels' expected ${B} labels, received ${cond.labels.length}`);
  }
  if (cond.labels) {
    for (const l of cond.labels) {
      if (!(l >= 0 && l <= numClasses)) throw new Error(`diffvit.sample: argument 'labels' expected classes in [0, ${numClasses}] (${numClasses} = null), received ${l}`);
    }
  }
  return (x, sigma) =>
    noGrad(() =>
      scope(() => {
        const batch = cfg ? 2 * B : B;
        const input = new Float32Array(batch * (x.length / B));
        input.set(x);
        if (cfg) input.set(x, x.length);
        const xt = tensor(input, [batch, ...shape.slice(1)]);
        let labels: Tensor | null = null;
        if (cond.labels) {
          const l = new Int32Array(batch).fill(numClasses);
          l.set(cond.labels);
          labels = tensor(l, [batch], 'int32');
        } else if (numClasses) {
          labels = tensor(new Int32Array(batch).fill(numClasses), [batch], 'int32');
        }
        let context: Tensor | null = cond.context ?? null;
        if (context && cfg) {
          // the unconditional half sees an all-zero ("empty") context
          const empty = tensor(new Float32Array(context.size), context.shape);
          context = concat([context, empty], 0);
        }
        const out = D.forward(xt, new Float64Array(batch).fill(sigma), labels, context).data();
        const n = x.length;
        const result = new Float64Array(n);
        if (!cfg) {
          for (let i = 0; i < n; i++) result[i] = out[i];
        } else {
          for (let i = 0; i < n; i++) result[i] = out[n + i] + w * (out[i] - out[n + i]);
        }
        return result;
      }),
    );
}
