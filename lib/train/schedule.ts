/**
 * Learning-rate schedules: `constant` is EDM's (linear warm-up, then the base rate); `cosine` warms
 * up the same way, then decays to zero at the run's last step; `cooldown` holds the base rate and
 * decays linearly to zero over the last COOLDOWN_FRACTION of the run (warm-up, stable, decay:
 * Hägele et al. 2024), which gave the 15-minute shapes run a cleaner, more accurate finish than
 * either (docs/training-notes.md §7).
 */
export type LrSchedule = 'constant' | 'cosine' | 'cooldown';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'cosine', 'cooldown'];
export const COOLDOWN_FRACTION = 0.25;

/** The first step of the cooldown's decay in a run of `totalSteps` (decaying over its last `fraction`). */
export function cooldownStart(totalSteps: number, warmupSteps: number, fraction = COOLDOWN_FRACTION): number {
  return Math.max(warmupSteps, Math.round(totalSteps * (1 - fraction)));
}

/** The rate of optimiser step `step` (0-based) of a run of `totalSteps` (a cooldown over its last `cooldownFraction`). */
export function learningRate(step: number, baseLr: number, warmupSteps: number, schedule: LrSchedule = 'constant', totalSteps = 0,
  cooldownFraction = COOLDOWN_FRACTION): number {
  const warm = warmupSteps > 0 ? Math.min(1, (step + 1) / warmupSteps) : 1;
  if (schedule === 'constant' || step < warmupSteps) return baseLr * warm;
  if (schedule === 'cooldown') {
    const from = cooldownStart(totalSteps, warmupSteps, cooldownFraction);
    return step < from ? baseLr : baseLr * Math.max(0, totalSteps - step) / Math.max(1, totalSteps - from);
  }
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  return baseLr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
