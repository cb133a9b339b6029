/** AdamW (decoupled weight decay, torch.optim.AdamW semantics) on the fused native update. */
import { zeros } from '../ops/creation.js';
import { type AdamWOptions as UpdateOptions, adamwStepScalars, adamwUpdateMany } from '../ops/optim.js';
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

  /** One update from each parameter's .grad (parameters without a grad are left alone), all in one kernel call. */
  update(): void {
    this.step++;
    const updated = this.params.flatMap((p, i) => (p.grad ? [i] : []));
    adamwUpdateMany(updated.map((i) => this.params[i]), updated.map((i) => this.params[i].grad!), updated.map((i) => this.expAvg[i]),
      updated.map((i) => this.expAvgSq[i]), { ...this.options, lr: this.lr, step: this.step });
  }

  /** The next update's kernel scalars (adamwStepScalars): what a captured training step writes into its control block. */
  nextScalars(): ReturnType<typeof adamwStepScalars> {
    return adamwStepScalars({ ...this.options, lr: this.lr, step: this.step + 1 });
  }

  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t.dispose();
  }
}
