/** Learning-rate schedule: linear warm-up to the base rate, then constant (EDM's schedule). */
export function learningRate(step: number, baseLr: number, warmupSteps: number): number {
  if (warmupSteps <= 0) return baseLr;
  return baseLr * Math.min(1, (step + 1) / warmupSteps);
}
