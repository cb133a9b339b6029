/**
 * `diffvit train --minutes N`: a run sized by wall time instead of a step count. The rate is the
 * run's own over the later half of its steps so far (data loading included; start-up and the
 * periodic work below left out), and the total is re-estimated every RESIZE_EVERY steps for as
 * long as the schedule lets it move: to the end of a constant rate and of a cooldown schedule (the
 * Trainer keeps a decay that has begun at its first step and decays it to the new end: a total
 * fixed when the decay began, on a window of the first full steps of a masked run, ended runs up to
 * 14 s early or late, as the rate of later steps drifted by 2-3 %), until half of a cosine decay
 * (then it is fixed, so the decay runs to a known end; a machine that slows down after that
 * overshoots the budget by as much). The chosen total goes into the run's config and checkpoints,
 * so a resumed run ends where this one would have.
 * Steps may cost different amounts (masked-token steps are cheaper than the full ones after
 * maskUntil): the rate is then per unit of `runCost`, and the total is the longest run whose
 * remaining steps' costs fit. A cost model's ratio of unlike steps is only an estimate (how much
 * cheaper a masked step is depends on the CPU's kernels: 0.36-0.41 of a full step measured), so
 * the rate is taken from a window of steps costed like the steps still to come once there is one
 * (for masked-then-full runs, the full steps after the switch), and the total is not fixed while
 * it rests on the model.
 * Work done every so many steps besides training (sample grids, checkpoints) is kept out of the
 * steps' rate and budgeted by its own count and last measured time: a window of 20-40 steps may
 * or may not hold a grid, so a rate taken from it with the grids in ended runs seconds early or
 * late by chance.
 * Native-free (the CLI's checks import it).
 */

import type { LrSchedule } from './schedule.js';

/** Steps between re-estimates of the run's length. */
export const RESIZE_EVERY = 20;

/** How much of a run with this schedule may pass before its length must stay what it is. */
export function fixedLengthAfter(schedule: LrSchedule): number {
  return schedule === 'cosine' ? 0.5 : 1;
}

export class StepBudget {
  /** The run's length before any step has been timed: large, so nothing (warm-up aside) depends on it before the first estimate. */
  static readonly PLACEHOLDER_STEPS = 1_000_000;

  private fixed = false;
  /** Seconds spent on steps (periodic work left out) at each re-estimate (the k-th after k·RESIZE_EVERY steps). */
  private readonly elapsedAt: number[] = [];
  /** Seconds spent on periodic work so far, and each kind's period and last measured time. */
  private periodicSpent = 0;
  private readonly periodic = new Map<string, { every: number; seconds: number }>();

  /**
   * @param seconds the run's wall-time budget
   * @param startStep the step the run starts at (a resumed run's checkpoint step)
   * @param endSeconds what the run does after its last step (the final grid and checkpoint), kept free of steps
   * @param fixAt the fraction of the run after which the total stays (1: re-estimated to the end)
   * @param runCost the relative cost of steps from..to-1 of a run of `total` steps (default: 1
   *   each), positive per step, and such that the cost of the steps left grows with the total;
   *   called some hundred times a re-estimate, so it should not sum step by step
   */
  constructor(readonly seconds: number, readonly startStep: number, private endSeconds: number, readonly fixAt = 0.5,
    private readonly runCost: (from: number, to: number, total: number) => number = (from, to) => to - from) {
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
   * Work of kind `kind` (e.g. 'grid') that the run does after every `every`-th step, before the
   * last, has just taken `seconds`: later estimates leave it out of the steps' rate and set aside
   * this long for each time it is still to come.
   */
  recordPeriodic(kind: string, every: number, seconds: number): void {
    if (!(Number.isInteger(every) && every > 0)) throw new Error(`diffvit.StepBudget.recordPeriodic: every expected a positive integer, received ${every}`);
    this.periodicSpent += seconds;
    this.periodic.set(kind, { every, seconds });
  }

  /**
   * The run's new total after `step`, `elapsed` seconds into the run, or null when it stays
   * `total`. Fixed once fixAt of it is done (or the budget is spent): later calls return null.
   */
  resize(step: number, elapsed: number, total: number): number | null {
    const done = step - this.startStep;
    if (this.fixed || done <= 0 || done % RESIZE_EVERY !== 0) return null;
    const stepSeconds = elapsed - this.periodicSpent;
    this.elapsedAt.push(stepSeconds);
    // The rate since the re-estimate nearest half the steps done (all of them at the first), or
    // since a later one where that begins a window of steps costed like the steps still to come.
    const k = this.elapsedAt.length;
    const startOf = (j: number) => step - (k - j) * RESIZE_EVERY; // the step at re-estimate j (0: the run's start)
    const stepCost = (s: number) => this.runCost(s, s + 1, total);
    const like = (s: number) => stepCost(s) === stepCost(step);
    const tailAlike = like(total - 1);
    let from = Math.floor(k / 2);
    if (tailAlike) while (from < k - 1 && !like(startOf(from))) from++;
    const calibrated = tailAlike && like(startOf(from));
    const windowStart = startOf(from);
    const perUnit = (from === 0 ? stepSeconds : stepSeconds - this.elapsedAt[from - 1]) / this.runCost(windowStart, step, total);
    const left = Math.max(0, this.seconds - this.endSeconds - elapsed);
    const next = this.longestFitting(step, left, perUnit); // = step when the budget is spent: the run ends here
    if ((calibrated && done >= this.fixAt * (next - this.startStep)) || left === 0) this.fixed = true;
    return next === total ? null : next;
  }

  /** Seconds of the periodic work still to come in a run of `total` after `step` (which has not done its own yet). */
  private periodicSeconds(step: number, total: number): number {
    let sum = 0;
    for (const { every, seconds } of this.periodic.values()) sum += (Math.floor((total - 1) / every) - Math.floor((step - 1) / every)) * seconds;
    return sum;
  }

  /**
   * The largest total N >= step whose steps step..N-1 (costed as in a run of N, at `perUnit`
   * seconds a unit) and periodic work fit in `seconds`: a binary search.
   */
  private longestFitting(step: number, seconds: number, perUnit: number): number {
    const fits = (n: number) => this.runCost(step, n, n) * perUnit + this.periodicSeconds(step, n) <= seconds + 1e-9;
    let lo = step, hi = step + 1;
    while (fits(hi)) {
      lo = hi;
      hi = step + 2 * (hi - step);
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  }
}
