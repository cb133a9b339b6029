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
}
