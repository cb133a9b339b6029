/**
 * Learning-rate schedules: `constant` is EDM's (linear warm-up, then the base rate); `cosine` warms
 * up the same way, then decays to zero at the run's last step, which suits runs too short for the
 * EMA alone to average the late-training noise out.
 */
export type LrSchedule = 'constant' | 'cosine';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'cosine'];

/** The rate of optimiser step `step` (0-based) of a run of `totalSteps`. */
export function learningRate(step: number, baseLr: number, warmupSteps: number, schedule: LrSchedule = 'constant', totalSteps = 0): number {
  const warm = warmupSteps > 0 ? Math.min(1, (step + 1) / warmupSteps) : 1;
  if (schedule === 'constant' || step < warmupSteps) return baseLr * warm;
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  return baseLr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
