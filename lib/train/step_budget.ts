/**
 * `diffvit train --minutes N`: a run sized by wall time instead of a step count. The rate is the
 * run's own over the later half of its steps so far (data loading, grids and checkpoints included;
 * start-up left out), and the total is re-estimated every RESIZE_EVERY steps for as long as the
 * learning rate does not depend on it: to the end of a constant schedule, until a cooldown begins
 * (the last quarter), until half of a cosine decay. Then it is fixed, so the decay runs to a known
 * end (a machine that slows down after that overshoots the budget by as much). The chosen total
 * goes into the run's config and checkpoints, so a resumed run ends where this one would have.
 * Native-free (the CLI's checks import it).
 */

import { COOLDOWN_FRACTION, type LrSchedule } from './schedule.js';

/** Steps between re-estimates of the run's length. */
export const RESIZE_EVERY = 20;

/** How much of a run with this schedule may pass before its length must stay what it is. */
export function fixedLengthAfter(schedule: LrSchedule): number {
  return schedule === 'constant' ? 1 : schedule === 'cooldown' ? 1 - COOLDOWN_FRACTION : 0.5;
}

export class StepBudget {
  /** The run's length before any step has been timed: large, so nothing (warm-up aside) depends on it before the first estimate. */
  static readonly PLACEHOLDER_STEPS = 1_000_000;

  private fixed = false;
  /** Seconds elapsed at each re-estimate (the k-th after k·RESIZE_EVERY steps). */
  private readonly elapsedAt: number[] = [];

  /**
   * @param seconds the run's wall-time budget
   * @param startStep the step the run starts at (a resumed run's checkpoint step)
   * @param endSeconds what the run does after its last step (the final grid and checkpoint), kept free of steps
   * @param fixAt the fraction of the run after which the total stays (1: re-estimated to the end)
   */
  constructor(readonly seconds: number, readonly startStep: number, private endSeconds: number, readonly fixAt = 0.5) {
    if (!(seconds > 0) || !Number.isFinite(seconds)) throw new Error(`diffvit.StepBudget: seconds expected a positive number, received ${seconds}`);
    if (!(fixAt > 0 && fixAt <= 1)) throw new Error(`diffvit.StepBudget: fixAt expected a fraction in (0, 1], received ${fixAt}`);
  }

  /** Whether the total is final. */
  get isFixed(): boolean {
    return this.fixed;
  }

  /** What the run does after its last step, once measured (e.g. the first grid's time). */
  setEndSeconds(s: number): void {
    if (!this.fixed) this.endSeconds = s;
  }

  /**
   * The run's new total after `step`, `elapsed` seconds into the run, or null when it stays
   * `total`. Fixed once fixAt of it is done (or the budget is spent): later calls return null.
   */
  resize(step: number, elapsed: number, total: number): number | null {
    const done = step - this.startStep;
    if (this.fixed || done <= 0 || done % RESIZE_EVERY !== 0) return null;
    this.elapsedAt.push(elapsed);
    // The rate since the re-estimate nearest half the steps done (all of them at the first).
    const k = this.elapsedAt.length, from = Math.floor(k / 2);
    const perStep = from === 0 ? elapsed / done : (elapsed - this.elapsedAt[from - 1]) / ((k - from) * RESIZE_EVERY);
    const left = Math.max(0, this.seconds - this.endSeconds - elapsed);
    const next = step + Math.floor(left / perStep + 1e-9); // = step when the budget is spent: the run ends here
    if (done >= this.fixAt * (next - this.startStep) || left === 0) this.fixed = true;
    return next === total ? null : next;
  }
}
