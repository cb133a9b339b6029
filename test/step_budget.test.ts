/**
 * `diffvit train --minutes`: the step count follows the run's measured rate until half of it is
 * done, then stays. Driven by a simulated clock, so nothing here depends on the machine's speed.
 */
import { describe, expect, test } from 'vitest';

import { fixedLengthAfter, RESIZE_EVERY, StepBudget } from '../lib/train/step_budget.js';

/** Runs a budget to its end with `secondsPerStep(step, total)` (step: the steps done after it); returns the final total and the step it was fixed at. */
function simulate(budget: StepBudget, secondsPerStep: (step: number, total: number) => number): { total: number; fixedAt: number; elapsed: number } {
  let total = budget.startStep + StepBudget.PLACEHOLDER_STEPS, elapsed = 0, fixedAt = -1;
  for (let step = budget.startStep + 1; step <= total; step++) {
    elapsed += secondsPerStep(step, total);
    const next = budget.resize(step, elapsed, total);
    if (next !== null) {
      expect(next, `step ${step}`).toBeGreaterThanOrEqual(step);
      expect(fixedAt, 'no change after the total is fixed').toBe(-1);
      total = next;
    }
    if (budget.isFixed && fixedAt < 0) fixedAt = step;
  }
  return { total, fixedAt, elapsed };
}

/** The cost of steps from..to-1 of a run of `total` whose first switchAt(total) steps cost `before` each and the rest 1. */
function twoPhaseCost(before: number, switchAt: (total: number) => number): (from: number, to: number, total: number) => number {
  return (from, to, total) => {
    const early = Math.max(0, Math.min(to, switchAt(total)) - from);
    return early * before + (to - from - early);
  };
}

/** Work a run does after some of its steps (sample grids, checkpoints), as lib/cli/train.ts does it. */
interface Periodic {
  kind: string;
  every: number;
  seconds: number;
}

/**
 * A masked-then-full run under a 100 s budget whose cost model prices a masked step at 0.33 of a
 * full one: masked until 3/4 of its total, the switch kept where it happened once the total changes
 * after it (Trainer.setSteps). Step `step` takes secondsOf(it was masked, step, total); periodic
 * work follows the steps it belongs to, recorded with the budget when `record`.
 */
function simulateMasked(fixAt: number, secondsOf: (masked: boolean, step: number, total: number) => number, periodic: Periodic[] = [], record = true):
  { total: number; elapsed: number; fixedAt: number; switchedAt: number } {
  let maskEnd: number | null = null;
  const masked = (s: number, n: number) => s < (maskEnd ?? Math.round(0.75 * n));
  const budget = new StepBudget(100, 0, 0, fixAt, twoPhaseCost(0.33, (n) => maskEnd ?? Math.round(0.75 * n)));
  let total = StepBudget.PLACEHOLDER_STEPS, elapsed = 0, fixedAt = -1, switchedAt = -1;
  for (let step = 1; step <= total; step++) {
    const wasMasked = masked(step - 1, total);
    elapsed += secondsOf(wasMasked, step, total);
    if (!wasMasked && switchedAt < 0) switchedAt = step - 1;
    const next = budget.resize(step, elapsed, total);
    if (next !== null) {
      expect(fixedAt, 'no change after the total is fixed').toBe(-1);
      if (switchedAt >= 0) maskEnd = switchedAt;
      total = next;
    }
    if (budget.isFixed && fixedAt < 0) fixedAt = step;
    if (switchedAt >= 0 && masked(step, total)) expect.fail(`step ${step} is masked after the switch at ${switchedAt}`);
    for (const p of periodic) {
      if (step % p.every !== 0 || step >= total) continue;
      elapsed += p.seconds;
      if (record) budget.recordPeriodic(p.kind, p.every, p.seconds);
    }
  }
  return { total, elapsed, fixedAt, switchedAt };
}

describe('StepBudget', () => {
  test('steps of different costs (masked ones until 3/4 of the run at half the price): the run fits its budget', () => {
    const cost = twoPhaseCost(0.5, (n) => Math.round(0.75 * n));
    const seconds = (done: number, n: number) => 0.1 * cost(done - 1, done, n);
    const aware = simulate(new StepBudget(100, 0, 0, 0.75, cost), seconds);
    // 0.1 s × (0.5 × 3/4 + 1/4) a step on average: 100 s hold 1 600 steps.
    expect(Math.abs(aware.total - 1600)).toBeLessThanOrEqual(2);
    expect(aware.elapsed).toBeLessThanOrEqual(100 + 1e-9);
    expect(aware.elapsed).toBeGreaterThan(99);
    // Costed as equal, the masked steps' rate promises ~2 000 steps and the full ones overrun.
    expect(simulate(new StepBudget(100, 0, 0, 0.75), seconds).elapsed).toBeGreaterThan(115);
  });

  // The machine's masked step costs `truth` of a full one, so before the switch the run's length rests on a wrong ratio.
  test.each([0.41, 0.3])('a cost model that is wrong (masked steps at %f of a full one, not 0.33): timed full steps correct the length', (truth) => {
    const { elapsed, fixedAt, switchedAt } = simulateMasked(0.75, (masked) => 0.05 * (masked ? truth : 1)); // a length fixed at 3/4 of the run
    // Fixed only after full steps were timed, and the run ends within a few steps of its budget.
    expect(fixedAt).toBeGreaterThanOrEqual(switchedAt + RESIZE_EVERY);
    expect(elapsed).toBeLessThanOrEqual(100 + 1e-9);
    expect(elapsed).toBeGreaterThan(100 - 3 * 0.05);
  });

  // A grid every 300 steps (1 s each; ~10 in the run, as the default run's ~20 of 0.7 s) and a
  // checkpoint every 250 (0.2 s): a window of 20-40 full steps holds one or none by chance, so a
  // rate taken from it with them in misses by seconds either way.
  test('sample grids and checkpoints between the steps: budgeted by their count, the run still fits', () => {
    const run = (gridEvery: number, record: boolean, fixAt: number) =>
      simulateMasked(fixAt, (masked) => 0.05 * (masked ? 0.41 : 1), [{ kind: 'grid', every: gridEvery, seconds: 1 }, { kind: 'checkpoint', every: 250, seconds: 0.2 }], record);
    const misses: number[] = [];
    for (let gridEvery = 240; gridEvery <= 360; gridEvery += 10) {
      // The cooldown's budget (re-estimated to the end) and one fixed when the cooldown begins.
      for (const fixAt of [fixedLengthAfter('cooldown'), 0.75]) {
        const counted = run(gridEvery, true, fixAt);
        expect(counted.elapsed, `a grid every ${gridEvery} steps, fixAt ${fixAt}`).toBeLessThanOrEqual(100 + 1e-9);
        expect(counted.elapsed, `a grid every ${gridEvery} steps, fixAt ${fixAt}`).toBeGreaterThan(100 - 1 - 3 * 0.05); // at most a grid and a few steps short
      }
      misses.push(run(gridEvery, false, 0.75).elapsed - 100);
    }
    // Unrecorded, the grids land in the window that fixes the length or not, by chance: the run ends seconds early or late.
    expect(Math.max(...misses), 'the same runs with their grids and checkpoints unrecorded').toBeGreaterThan(2);
    expect(Math.min(...misses)).toBeLessThan(-5);
    expect(() => new StepBudget(1, 0, 0).recordPeriodic('grid', 0, 1)).toThrow(/every expected a positive integer, received 0/);
  });

  test('a steady rate: the run fills the budget less the end reserve, fixed at half of it', () => {
    const budget = new StepBudget(100, 0, 1);
    const { total, fixedAt, elapsed } = simulate(budget, () => 0.1);
    expect(total).toBe(990);
    expect(fixedAt).toBeGreaterThanOrEqual(total / 2);
    expect(fixedAt).toBeLessThan(total / 2 + RESIZE_EVERY);
    expect(elapsed).toBeCloseTo(99, 6);
  });

  test('a slower start is corrected; a slowdown after the total is fixed does not change it', () => {
    // The first 40 steps take 0.5 s (start-up), then 0.1 s: the total grows as the rate settles.
    const slowStart = simulate(new StepBudget(100, 0, 0), (s) => (s <= 40 ? 0.5 : 0.1));
    expect(slowStart.total).toBe(840); // 40 steps in 20 s, then 800 in 80 s
    expect(slowStart.elapsed).toBeLessThanOrEqual(100);
    // Twice as slow after step 600 (fixed by then): the total stays, the run overshoots.
    const budget = new StepBudget(100, 0, 0);
    const late = simulate(budget, (s) => (s > 600 ? 0.2 : 0.1));
    expect(late.fixedAt).toBeLessThanOrEqual(600);
    expect(late.total).toBe(1000);
  });

  test('a resumed start and a budget spent at the first estimate: the run ends there', () => {
    const resumed = simulate(new StepBudget(10, 500, 0), () => 0.05);
    expect(resumed.total).toBe(700);
    const spent = simulate(new StepBudget(1, 0, 0), () => 1);
    expect(spent.total).toBe(RESIZE_EVERY);
    expect(spent.fixedAt).toBe(RESIZE_EVERY);
  });

  test('the length stays open as long as the schedule allows: to the end of a constant rate and of a cooldown, until half a cosine', () => {
    expect([fixedLengthAfter('constant'), fixedLengthAfter('cooldown'), fixedLengthAfter('cosine')]).toEqual([1, 1, 0.5]);
    // Twice as slow after step 600: a constant or cooldown run (never fixed) follows; a cosine one (fixed at half) overshoots.
    const slower = (s: number) => (s > 600 ? 0.2 : 0.1);
    const open = simulate(new StepBudget(100, 0, 0, fixedLengthAfter('cooldown')), slower);
    expect(open.fixedAt, 'fixed only when the budget is spent').toBe(open.total);
    expect(open.total).toBe(800); // 600 × 0.1 + 200 × 0.2 = 100 s
    expect(open.elapsed).toBeCloseTo(100, 6);
    const cosine = simulate(new StepBudget(100, 0, 0, fixedLengthAfter('cosine')), slower);
    expect(cosine.fixedAt).toBeLessThanOrEqual(600);
    expect(cosine.elapsed).toBeGreaterThan(140);
  });

  // The default run (masked until 3/4, cooldown over the last quarter) on a machine whose full steps
  // run 3 % slower from 4/5 of the run on (measured: 20-400-step windows of full steps drift by 2-3 %).
  test('a cooldown run whose full steps slow down after the switch: re-estimated to the end, it still fits', () => {
    const run = (fixAt: number) => simulateMasked(fixAt, (masked, step, total) => 0.05 * (masked ? 0.41 : step > 0.8 * total ? 1.03 : 1)).elapsed;
    const open = run(fixedLengthAfter('cooldown'));
    expect(open).toBeLessThanOrEqual(100 + 1e-9);
    expect(open).toBeGreaterThan(100 - 2 * 0.05 * 1.03);
    expect(run(0.75), 'the same run with its length fixed when the cooldown begins').toBeGreaterThan(100.5);
  });

  test('bad budgets are errors', () => {
    for (const s of [0, -1, Number.NaN, Infinity]) expect(() => new StepBudget(s, 0, 0)).toThrow(/seconds expected a positive number/);
    for (const f of [0, 1.5, Number.NaN]) expect(() => new StepBudget(1, 0, 0, f)).toThrow(/fixAt expected a fraction in \(0, 1\]/);
  });
});
