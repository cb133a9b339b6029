/**
 * A small counter-based float64 generator for data work (augmentation, synthetic images): value j
 * of stream (seed, index) is a pure function of its arguments, so image i is the same whatever
 * order or worker generates it. SplitMix64 finaliser over the 64-bit key, in BigInt-free 32-bit halves.
 */
export class DataRng {
  private counter = 0;
  constructor(
    private readonly seed: number,
    private readonly stream: number,
  ) {}

  /** Uniform in [0, 1). */
  next(): number {
    const c = this.counter++;
    return mix32(mix32(this.seed ^ 0x9e3779b9, this.stream), c) / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }
}

function mix32(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x85ebca6b, 0xcc9e2d51) ^ Math.imul(b + 0x7f4a7c15, 0x1b873593)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
