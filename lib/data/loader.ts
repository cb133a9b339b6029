/**
 * Batches in a fixed, resumable order: epoch e visits the dataset in the permutation drawn from
 * (seed, e); batch k of the run covers stream positions [k·B, (k+1)·B). Augmentation (horizontal
 * flip) and label dropout draw from a per-position DataRng, so batch k is a pure function of
 * (seed, k) — a resumed run sees exactly the batches the uninterrupted one would. Datasets with a
 * context (text embeddings) batch it as (B, L, C); a dropped example loses its label AND its
 * context (all zeros, the empty context the sampler's guidance uses), so the model learns one
 * unconditional mode for every kind of conditioning.
 */
import type { ImageDataset } from './types.js';
import { DataRng } from './rng.js';

export interface Batch {
  images: Float32Array; // (B, C, H, W)
  labels: Int32Array; // (B); the null class (numClasses) where dropped
  /** (B, L, C) context embeddings, all zeros where dropped; only for datasets with a context. */
  context?: Float32Array;
}

export interface LoaderOptions {
  batchSize: number;
  seed: number;
  hflip?: boolean;
  /**
   * Probability of replacing an example's conditioning by the null one (classifier-free guidance
   * training): the label by the null class, the context by all zeros.
   */
  labelDropout?: number;
}

export class BatchSampler {
  private permutations = new Map<number, Uint32Array>();
  constructor(
    readonly dataset: ImageDataset,
    readonly options: LoaderOptions,
  ) {}

  private permutation(epoch: number): Uint32Array {
    let p = this.permutations.get(epoch);
    if (!p) {
      const n = this.dataset.size;
      p = new Uint32Array(n);
      for (let i = 0; i < n; i++) p[i] = i;
      const rng = new DataRng(this.options.seed ^ 0x5eed, epoch);
      for (let i = n - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = p[i];
        p[i] = p[j];
        p[j] = t;
      }
      this.permutations.clear(); // keep one epoch's table
      this.permutations.set(epoch, p);
    }
    return p;
  }

  /** Batch number k of the run. */
  batch(k: number): Batch {
    const { batchSize: B, seed } = this.options;
    const d = this.dataset;
    const pixelsPer = d.channels * d.imageSize * d.imageSize;
    const images = new Float32Array(B * pixelsPer);
    const labels = new Int32Array(B);
    const contextSize = d.contextLen && d.contextDim ? d.contextLen * d.contextDim : 0;
    const context = contextSize ? new Float32Array(B * contextSize) : undefined; // zeros: the empty context
    for (let i = 0; i < B; i++) {
      const position = k * B + i;
      const epoch = Math.floor(position / d.size);
      const index = this.permutation(epoch)[position % d.size];
      const ex = d.get(index);
      const rng = new DataRng(seed, position);
      const flip = this.options.hflip && rng.next() < 0.5;
      const drop = rng.next() < (this.options.labelDropout ?? 0);
      labels[i] = d.numClasses && !drop ? ex.label : d.numClasses;
      if (context && !drop) {
        if (ex.context?.length !== contextSize) {
          throw new Error(`diffvit.BatchSampler: ${d.name} example ${index} has a context of ${ex.context?.length ?? 0} values, expected ${d.contextLen}x${d.contextDim} = ${contextSize}`);
        }
        context.set(ex.context, i * contextSize);
      }
      if (!flip) {
        images.set(ex.pixels, i * pixelsPer);
      } else {
        const S = d.imageSize;
        for (let c = 0; c < d.channels; c++) {
          for (let y = 0; y < S; y++) {
            for (let x = 0; x < S; x++) images[i * pixelsPer + (c * S + y) * S + x] = ex.pixels[(c * S + y) * S + (S - 1 - x)];
          }
        }
      }
    }
    return context ? { images, labels, context } : { images, labels };
  }
}
