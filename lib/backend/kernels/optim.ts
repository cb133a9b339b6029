/** Native entry points of the optim kernel family (native/addon/bind_optim.cpp, native/cpu/simd/optim.cpp). */
import type { DeviceBuffer } from './core.js';

export interface OptimKernels {
  /**
   * One fused AdamW step (torch.optim.AdamW) over n contiguous elements, updating param, expAvg (m)
   * and expAvgSq (v) in place: p *= 1 - lr·weightDecay; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
   * p -= lr/(1-β1^step) · m / (sqrt(v)/sqrt(1-β2^step) + eps). step counts from 1. The four
   * ranges must not overlap.
   */
  adamw(args: {
    param: DeviceBuffer; paramOffset: number; grad: DeviceBuffer; gradOffset: number; expAvg: DeviceBuffer;
    expAvgOffset: number; expAvgSq: DeviceBuffer; expAvgSqOffset: number; n: number; lr: number; beta1: number;
    beta2: number; eps: number; weightDecay: number; step: number;
  }): void;

  /**
   * adamw on tensors t = 0.. of counts[t] elements (from the offsets[t] of each list's t-th buffer),
   * in one call (one pass over all of them on the CPU). No param, expAvg or expAvgSq may share
   * memory with any other item.
   */
  adamwMany(args: {
    params: DeviceBuffer[]; paramOffsets: number[]; grads: DeviceBuffer[]; gradOffsets: number[]; expAvgs: DeviceBuffer[];
    expAvgOffsets: number[]; expAvgSqs: DeviceBuffer[]; expAvgSqOffsets: number[]; counts: number[]; lr: number; beta1: number;
    beta2: number; eps: number; weightDecay: number; step: number;
  }): void;

  /**
   * A training step captured in a CUDA graph decides on the device what the eager step decides on
   * the host (a graph freezes scalar arguments): from stats = [loss, sum of squared gradients] it
   * writes the control block's `apply` (the host's `enabled` and a finite loss and norm) and
   * `gradScale` (gradClip / (norm + 1e-6) when gradClip > 0 and the norm exceeds it, else 1).
   * The control block: float32 [enabled, apply, gradScale, decay, stepSize, invSqrtBc2, emaBeta,
   * emaOneMinusBeta] (STEP_CONTROL in lib/ops/optim.ts; native/cpu/optim.h step_control).
   */
  trainStepControl(args: { stats: DeviceBuffer; statsOffset: number; control: DeviceBuffer; controlOffset: number; gradClip: number }): void;

  /**
   * adamw with decay (1 - lr·weightDecay), stepSize (lr/(1-β1^step)) and invSqrtBc2
   * (1/sqrt(1-β2^step)) from the control block and each gradient scaled by its gradScale; nothing
   * unless its `apply` is set.
   */
  adamwControlled(args: {
    param: DeviceBuffer; paramOffset: number; grad: DeviceBuffer; gradOffset: number; expAvg: DeviceBuffer;
    expAvgOffset: number; expAvgSq: DeviceBuffer; expAvgSqOffset: number; n: number; beta1: number; beta2: number;
    eps: number; control: DeviceBuffer; controlOffset: number;
  }): void;

  /** shadow = emaBeta·shadow + emaOneMinusBeta·param (axpby's arithmetic) from the control block, unless `apply` is 0. */
  emaControlled(args: { shadow: DeviceBuffer; shadowOffset: number; param: DeviceBuffer; paramOffset: number; n: number; control: DeviceBuffer; controlOffset: number }): void;
}
