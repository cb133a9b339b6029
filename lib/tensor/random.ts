/**
 * Seeded random streams. A Generator is (seed, counter): a draw of n numbers takes elements
 * [counter, counter + n) of the Philox stream keyed by seed (native/core/philox.h), so results are
 * the same on every backend and thread count, and (seed, counter) is all a checkpoint must save.
 */
export class Generator {
  constructor(
    public seed = 0,
    public counter = 0,
  ) {
    checkSeed(seed);
  }

  /** Reserves n stream elements and returns the first index. Normal draws stay pair-aligned. */
  take(n: number): number {
    const start = this.counter;
    this.counter += n + (n & 1);
    return start;
  }

  state(): { seed: number; counter: number } {
    return { seed: this.seed, counter: this.counter };
  }

  setState(state: { seed: number; counter: number }): void {
    checkSeed(state.seed);
    this.seed = state.seed;
    this.counter = state.counter;
  }
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`diffvit.Generator: argument 'seed' expected a non-negative safe integer, received ${seed}`);
  }
}

export const defaultGenerator = new Generator(0);

/** Re-seeds the default generator (like torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultGenerator.setState({ seed, counter: 0 });
}
