/** AdamW (decoupled weight decay, torch.optim.AdamW semantics) on the fused native update. */
import { zeros } from '../ops/creation.js';
import { type AdamWOptions as UpdateOptions, adamwUpdate } from '../ops/optim.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** The update's hyper-parameters (defaults as torch.optim.AdamW); the step count is kept here. */
export type AdamWOptions = Omit<UpdateOptions, 'step'>;

export class AdamW {
  readonly expAvg: Tensor[];
  readonly expAvgSq: Tensor[];
  /** Updates taken so far (the bias-correction step count). */
  step = 0;
  lr: number;

  constructor(
    readonly params: Tensor[],
    readonly options: AdamWOptions,
  ) {
    this.lr = options.lr;
    // The moments live beside their parameters, on the same device.
    this.expAvg = params.map((p) => keep(zeros(p.shape, { device: p.device })));
    this.expAvgSq = params.map((p) => keep(zeros(p.shape, { device: p.device })));
  }

  /** One update from each parameter's .grad (parameters without a grad are left alone). */
  update(): void {
    this.step++;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      adamwUpdate(p, p.grad, this.expAvg[i], this.expAvgSq[i], { ...this.options, lr: this.lr, step: this.step });
    });
  }

  /**
   * The next update's scalars as the fused kernel derives them (in float64, then rounded to
   * float32): decay = 1 - lr·weightDecay, stepSize = lr / (1 - β1^t), invSqrtBc2 = 1 / sqrt(1 - β2^t)
   * for t = step + 1. A captured training step reads them from its control block.
   */
  nextScalars(): { decay: number; stepSize: number; invSqrtBc2: number } {
    const t = this.step + 1, { beta1 = 0.9, beta2 = 0.999, weightDecay = 0.01 } = this.options;
    return {
      decay: Math.fround(1 - this.lr * weightDecay),
      stepSize: Math.fround(this.lr / (1 - beta1 ** t)),
      invSqrtBc2: Math.fround(1 / Math.sqrt(1 - beta2 ** t)),
    };
  }

  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t.dispose();
  }
}
