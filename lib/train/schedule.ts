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

/** The rate of optimiser step `step` (0-based) of a run of `totalSteps`. */
export function learningRate(step: number, baseLr: number, warmupSteps: number, schedule: LrSchedule = 'constant', totalSteps = 0): number {
  const warm = warmupSteps > 0 ? Math.min(1, (step + 1) / warmupSteps) : 1;
  if (schedule === 'constant' || step < warmupSteps) return baseLr * warm;
  if (schedule === 'cooldown') {
    const from = Math.max(warmupSteps, Math.round(totalSteps * (1 - COOLDOWN_FRACTION)));
    return step < from ? baseLr : baseLr * Math.max(0, totalSteps - step) / Math.max(1, totalSteps - from);
  }
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  return baseLr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
