/**
 * Exponential moving average of the weights with EDM's half-life in images:
 * β = 0.5^(batch / ema_halflife_images) per step (EDM training_loop.py, without its ramp-up
 * unless `rampup` is set: half-life = min(half-life, images_seen · rampup)). The shadow weights
 * live beside their parameters, on the same device; an update is one in-place kernel call for all of them.
 */
import { axpbyMany_ } from '../ops/inplace.js';
import { clone } from '../ops/shape.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export class EMA {
  readonly shadow: Tensor[];
  constructor(
    readonly params: Tensor[],
    readonly halfLifeImages: number,
    readonly rampup: number | null = 0.05,
  ) {
    this.shadow = params.map((p) => {
      const s = keep(clone(p));
      s.requiresGrad = false;
      s.gradFn = null;
      return s;
    });
  }

  /** Blends the current weights in after a step that has seen `imagesSeen` images in total. */
  update(batch: number, imagesSeen: number): void {
    const beta = this.beta(batch, imagesSeen);
    axpbyMany_(this.shadow, this.params, beta, 1 - beta);
  }

  /** The weight β of the shadow in the update after `imagesSeen` images, `batch` of them in the last step. */
  beta(batch: number, imagesSeen: number): number {
    let halfLife = this.halfLifeImages;
    if (this.rampup !== null) halfLife = Math.min(halfLife, imagesSeen * this.rampup);
    return halfLife > 0 ? 0.5 ** (batch / halfLife) : 0;
  }

  dispose(): void {
    for (const t of this.shadow) t.dispose();
  }
}
