/**
 * Fused optimiser updates, applied in place with no autograd: one native pass per parameter
 * tensor updates the parameter and its optimiser state together.
 *
 *   adamwUpdate(p, p.grad!, m, v, { lr: 1e-4, weightDecay: 0.01, step: t });
 */
import { runKernel } from '../backend/dispatch.js';
import { formatShape, type Tensor } from '../tensor/tensor.js';
import { argError, checkTensor, describe, sameShape } from './util.js';

export interface AdamWOptions {
  /** Learning rate (>= 0). */
  lr: number;
  /** Decay of the first-moment average, in [0, 1); default 0.9. */
  beta1?: number;
  /** Decay of the second-moment average, in [0, 1); default 0.999. */
  beta2?: number;
  /** Added to the bias-corrected sqrt(v) (>= 0); default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (>= 0): p *= 1 - lr·weightDecay each step; default 0.01 (as torch.optim.AdamW). */
  weightDecay?: number;
  /** 1-based count of steps taken including this one (bias correction uses beta^step). */
  step: number;
}

/** torch.optim.AdamW's defaults. */
export const ADAMW_DEFAULTS = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;

function hyper(op: string, name: string, v: unknown, lo: number, hiExclusive: number, expected: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v >= hiExclusive) {
    throw argError(op, `options.${name}`, expected, describe(v));
  }
  return v;
}

/**
 * One AdamW step (torch.optim.AdamW semantics, decoupled weight decay, bias correction with
 * `step`) on param, updating param, expAvg (m) and expAvgSq (v) in place:
 *
 *   p -= lr·wd·p;  m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;
 *   p -= lr · (m / (1-β1^step)) / (sqrt(v / (1-β2^step)) + eps)
 *
 * All four tensors: float32, contiguous, the same shape, no two sharing memory.
 */
export function adamwUpdate(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, options: AdamWOptions): void {
  checkUpdated('adamwUpdate', { param, grad, expAvg, expAvgSq });
  runKernel('adamw', {
    param: param.buffer, paramOffset: param.offset, grad: grad.buffer, gradOffset: grad.offset,
    expAvg: expAvg.buffer, expAvgOffset: expAvg.offset, expAvgSq: expAvgSq.buffer, expAvgSqOffset: expAvgSq.offset,
    n: param.size, ...stepHyper('adamwUpdate', options),
  });
}

/**
 * adamwUpdate(params[i], grads[i], expAvgs[i], expAvgSqs[i], options) for every i, in one kernel
 * call (a model's parameters: on the CPU one pass over all of them instead of a dispatch per
 * tensor), with the same values. No param or state tensor may share memory with another tensor.
 */
export function adamwUpdateMany(params: readonly Tensor[], grads: readonly Tensor[], expAvgs: readonly Tensor[], expAvgSqs: readonly Tensor[], options: AdamWOptions): void {
  const op = 'adamwUpdateMany';
  if (!Array.isArray(params)) throw argError(op, 'params', 'an array of tensors', describe(params));
  for (const [name, list] of Object.entries({ grads, expAvgs, expAvgSqs })) {
    if (!Array.isArray(list) || list.length !== params.length) throw argError(op, name, `an array of ${params.length} tensors (one per param)`, describe(list));
  }
  params.forEach((_, i) => checkUpdated(op, { [`params[${i}]`]: params[i], [`grads[${i}]`]: grads[i], [`expAvgs[${i}]`]: expAvgs[i], [`expAvgSqs[${i}]`]: expAvgSqs[i] }));
  const buffers = (list: readonly Tensor[]) => list.map((t) => t.buffer), offsets = (list: readonly Tensor[]) => list.map((t) => t.offset);
  runKernel('adamwMany', {
    params: buffers(params), paramOffsets: offsets(params), grads: buffers(grads), gradOffsets: offsets(grads),
    expAvgs: buffers(expAvgs), expAvgOffsets: offsets(expAvgs), expAvgSqs: buffers(expAvgSqs), expAvgSqOffsets: offsets(expAvgSqs),
    counts: params.map((p) => p.size), ...stepHyper(op, options),
  });
}

/** An eager step's hyper-parameters from `options`, checked (errors name `op`). */
function stepHyper(op: string, options: AdamWOptions): { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number } {
  if (options === null || typeof options !== 'object') throw argError(op, 'options', 'an object', describe(options));
  const lr = hyper(op, 'lr', options.lr, 0, Infinity, 'a finite number >= 0');
  const { beta1, beta2, eps } = betas(op, options);
  const weightDecay = hyper(op, 'weightDecay', options.weightDecay ?? ADAMW_DEFAULTS.weightDecay, 0, Infinity, 'a finite number >= 0');
  const step = options.step;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 1) throw argError(op, 'options.step', 'an integer >= 1', describe(step));
  return { lr, beta1, beta2, eps, weightDecay, step };
}

/** Tensors updated together: float32, contiguous, the shape of the first. */
function checkUpdated(op: string, tensors: Record<string, Tensor>): void {
  const [first] = Object.values(tensors);
  for (const [name, t] of Object.entries(tensors)) {
    checkTensor(op, name, t);
    if (!t.isContiguous()) {
      throw argError(op, name, 'a contiguous tensor', `a strided view of shape ${formatShape(t.shape)} (strides ${formatShape(t.strides)})`);
    }
    if (!sameShape(t.shape, first.shape)) {
      throw argError(op, name, `shape ${formatShape(first.shape)} (the shape of ${Object.keys(tensors)[0]})`, `shape ${formatShape(t.shape)}`);
    }
  }
}

function betas(op: string, options: Pick<AdamWOptions, 'beta1' | 'beta2' | 'eps'>): { beta1: number; beta2: number; eps: number } {
  return {
    beta1: hyper(op, 'beta1', options.beta1 ?? ADAMW_DEFAULTS.beta1, 0, 1, 'a number in [0, 1)'),
    beta2: hyper(op, 'beta2', options.beta2 ?? ADAMW_DEFAULTS.beta2, 0, 1, 'a number in [0, 1)'),
    eps: hyper(op, 'eps', options.eps ?? ADAMW_DEFAULTS.eps, 0, Infinity, 'a finite number >= 0'),
  };
}

/**
 * The float32 scalars the adamw kernel derives from `options` (in float64, then rounded, as its
 * binding does): decay = 1 - lr·weightDecay, stepSize = lr / (1 - β1^step), invSqrtBc2 =
 * 1 / sqrt(1 - β2^step). A captured training step writes them into its control block.
 */
export function adamwStepScalars(options: AdamWOptions): { decay: number; stepSize: number; invSqrtBc2: number } {
  const { lr, step, beta1 = ADAMW_DEFAULTS.beta1, beta2 = ADAMW_DEFAULTS.beta2, weightDecay = ADAMW_DEFAULTS.weightDecay } = options;
  return {
    decay: Math.fround(1 - lr * weightDecay),
    stepSize: Math.fround(lr / (1 - beta1 ** step)),
    invSqrtBc2: Math.fround(1 / Math.sqrt(1 - beta2 ** step)),
  };
}

/**
 * The slots of a captured training step's control block: float32 values on the device that the
 * step's kernels read instead of scalar arguments, which a CUDA graph would freeze
 * (native/cpu/optim.h step_control). The host writes enabled, decay, stepSize, invSqrtBc2,
 * emaBeta and emaOneMinusBeta before each replay; trainStepControl writes apply and gradScale.
 */
export const STEP_CONTROL = { enabled: 0, apply: 1, gradScale: 2, decay: 3, stepSize: 4, invSqrtBc2: 5, emaBeta: 6, emaOneMinusBeta: 7, size: 8 } as const;

function checkControl(op: string, control: Tensor): void {
  checkTensor(op, 'control', control);
  if (control.size !== STEP_CONTROL.size || !control.isContiguous()) {
    throw argError(op, 'control', `a contiguous float32 tensor of ${STEP_CONTROL.size} values (STEP_CONTROL)`, `shape ${formatShape(control.shape)}`);
  }
}

/**
 * Writes the control block's apply and gradScale from stats = [loss, sum of squared gradients]
 * (a device tensor of 2), deciding as the eager step does on the host: apply when enabled and the
 * loss and norm are finite; gradScale = gradClip / (norm + 1e-6) when the norm exceeds gradClip
 * (null: no clipping), else 1.
 */
export function trainStepControl(stats: Tensor, control: Tensor, gradClip: number | null): void {
  checkTensor('trainStepControl', 'stats', stats);
  if (stats.size !== 2 || !stats.isContiguous()) throw argError('trainStepControl', 'stats', 'a contiguous tensor of 2 values [loss, sum of squares]', `shape ${formatShape(stats.shape)}`);
  checkControl('trainStepControl', control);
  if (gradClip !== null && !(typeof gradClip === 'number' && gradClip > 0 && Number.isFinite(gradClip))) {
    throw argError('trainStepControl', 'gradClip', 'a number > 0 or null (no clipping)', describe(gradClip));
  }
  runKernel('trainStepControl', { stats: stats.buffer, statsOffset: stats.offset, control: control.buffer, controlOffset: control.offset, gradClip: gradClip ?? 0 });
}

/** adamwUpdate with the step's scalars and gradient scale read from `control` on the device (see STEP_CONTROL). */
export function adamwUpdateControlled(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, control: Tensor, options: Pick<AdamWOptions, 'beta1' | 'beta2' | 'eps'> = {}): void {
  checkUpdated('adamwUpdateControlled', { param, grad, expAvg, expAvgSq });
  checkControl('adamwUpdateControlled', control);
  const { beta1, beta2, eps } = betas('adamwUpdateControlled', options);
  runKernel('adamwControlled', {
    param: param.buffer, paramOffset: param.offset, grad: grad.buffer, gradOffset: grad.offset,
    expAvg: expAvg.buffer, expAvgOffset: expAvg.offset, expAvgSq: expAvgSq.buffer, expAvgSqOffset: expAvgSq.offset,
    n: param.size, beta1, beta2, eps, control: control.buffer, controlOffset: control.offset,
  });
}

/** The EMA update shadow = β·shadow + (1-β)·param with β from `control` on the device, unless the step does not apply. */
export function emaUpdateControlled(shadow: Tensor, param: Tensor, control: Tensor): void {
  checkUpdated('emaUpdateControlled', { shadow, param });
  checkControl('emaUpdateControlled', control);
  runKernel('emaControlled', { shadow: shadow.buffer, shadowOffset: shadow.offset, param: param.buffer, paramOffset: param.offset, n: shadow.size, control: control.buffer, controlOffset: control.offset });
}
