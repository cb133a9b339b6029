/**
 * Named ranges around phases of work: an NVTX range (seen by nsys) and, while the built-in
 * profiler records, a range event of its trace. The library's own: `train_step` › `forward`,
 * `backward`, `metrics`, `optimizer`, `ema` (Trainer.trainStep) and `sample` › `step <i>`
 * (generate and the samplers).
 */
import { nvtxPop, nvtxPush } from './nvtx.js';
import { closeRange, openRange } from './recorder.js';

/**
 * Runs fn inside a range called `name` and returns its result; the range closes when fn returns
 * or throws. fn must be synchronous (a range around a Promise closes before it settles).
 */
export function range<T>(name: string, fn: () => T): T {
  nvtxPush(name);
  const event = openRange(name);
  try {
    return fn();
  } finally {
    if (event) closeRange(event);
    nvtxPop();
  }
}
