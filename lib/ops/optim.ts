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

function hyper(name: string, v: unknown, lo: number, hiExclusive: number, expected: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v >= hiExclusive) {
    throw argError('adamwUpdate', `options.${name}`, expected, describe(v));
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
  const tensors = { param, grad, expAvg, expAvgSq };
  for (const [name, t] of Object.entries(tensors)) {
    checkTensor('adamwUpdate', name, t);
    if (!t.isContiguous()) {
      throw argError('adamwUpdate', name, 'a contiguous tensor', `a strided view of shape ${formatShape(t.shape)} (strides ${formatShape(t.strides)})`);
    }
    if (!sameShape(t.shape, param.shape)) {
      throw argError('adamwUpdate', name, `shape ${formatShape(param.shape)} (the shape of param)`, `shape ${formatShape(t.shape)}`);
    }
  }
  if (options === null || typeof options !== 'object') throw argError('adamwUpdate', 'options', 'an object', describe(options));
  const lr = hyper('lr', options.lr, 0, Infinity, 'a finite number >= 0');
  const beta1 = hyper('beta1', options.beta1 ?? 0.9, 0, 1, 'a number in [0, 1)');
  const beta2 = hyper('beta2', options.beta2 ?? 0.999, 0, 1, 'a number in [0, 1)');
  const eps = hyper('eps', options.eps ?? 1e-8, 0, Infinity, 'a finite number >= 0');
  const weightDecay = hyper('weightDecay', options.weightDecay ?? 0.01, 0, Infinity, 'a finite number >= 0');
  const step = options.step;
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 1) {
    throw argError('adamwUpdate', 'options.step', 'an integer >= 1', describe(step));
  }
  runKernel('adamw', {
    param: param.buffer, paramOffset: param.offset, grad: grad.buffer, gradOffset: grad.offset,
    expAvg: expAvg.buffer, expAvgOffset: expAvg.offset, expAvgSq: expAvgSq.buffer, expAvgSqOffset: expAvgSq.offset,
    n: param.size, lr, beta1, beta2, eps, weightDecay, step
  });
}
