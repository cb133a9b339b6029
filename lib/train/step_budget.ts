/**
 * `diffvit train --minutes N`: a run sized by wall time instead of a step count. The rate is the
 * run's own over the later half of its steps so far (data loading, grids and checkpoints included;
 * start-up left out), and the total is re-estimated every RESIZE_EVERY steps until half of it is
 * done; then it is fixed, so a cooldown
 * (the last quarter of the run) or the second half of a cosine decay runs to a known end. The
 * chosen total goes into the run's config and checkpoints, so a resumed run ends where this one
 * would have. Native-free (the CLI's checks import it).
 */

/** Steps between re-estimates of the run's length. */
export const RESIZE_EVERY = 20;
/** The first total, before any step has been timed: a placeholder the first estimate replaces. */
const PLACEHOLDER_STEPS = 1_000_000;

export class StepBudget {
  private fixed = false;
  /** elapsed seconds at each re-estimate, by steps done / RESIZE_EVERY - 1 */
  private readonly elapsedAt: number[] = [];

  /**
   * @param seconds the run's wall-time budget
   * @param startStep the step the run starts at (a resumed run's checkpoint step)
   * @param endSeconds what the run does after its last step (the final grid and checkpoint), kept free of steps
   */
  constructor(readonly seconds: number, readonly startStep: number, private endSeconds: number) {
    if (!(seconds > 0) || !Number.isFinite(seconds)) throw new Error(`diffvit.StepBudget: seconds expected a positive number, received ${seconds}`);
  }

  /** The total to start with: large, so nothing (warm-up aside) depends on it before the first estimate. */
  get initialSteps(): number {
    return this.startStep + PLACEHOLDER_STEPS;
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
   * `total`. Fixed once half of it is done (or the budget is spent): later calls return null.
   */
  resize(step: number, elapsed: number, total: number): number | null {
    const done = step - this.startStep;
    if (this.fixed || done <= 0 || done % RESIZE_EVERY !== 0) return null;
    this.elapsedAt.push(elapsed);
    // The rate since the re-estimate nearest half the steps done (all of them at the first).
    const k = this.elapsedAt.length, from = Math.floor(k / 2);
    const perStep = from === 0 ? elapsed / done : (elapsed - this.elapsedAt[from - 1]) / ((k - from) * RESIZE_EVERY);
    const left = Math.max(0, this.seconds - this.endSeconds - elapsed);
    const next = Math.max(step + 1, step + Math.floor(left / perStep + 1e-9));
    if (done >= (next - this.startStep) / 2 || left === 0) this.fixed = true;
    return next === total ? null : next;
  }
}
