/**
 * Feature statistics and the Fréchet distance between Gaussians N(μ1, Σ1), N(μ2, Σ2):
 *   FD = |μ1 − μ2|² + tr Σ1 + tr Σ2 − 2 tr (Σ1^½ Σ2 Σ1^½)^½
 * computed with symmetric eigendecompositions (the product form is symmetric PSD, so no complex
 * round-off as with scipy.linalg.sqrtm of Σ1Σ2). Also the kernel inception distance (KID).
 */
import { matmulSquare, sqrtPSD, symmetricEigen } from './linalg.js';

export interface FeatureStats {
  dim: number;
  count: number;
  mu: Float64Array;
  sigma: Float64Array; // dim×dim, unbiased (n − 1)
}

/** features: count×dim row-major. */
export function featureStats(features: ArrayLike<number>, count: number, dim: number): FeatureStats {
  if (features.length !== count * dim) throw new Error(`diffvit.featureStats: argument 'features' expected ${count * dim} values, received ${features.length}`);
  if (count < 2) throw new Error(`diffvit.featureStats: expected at least 2 samples, received ${count}`);
  const mu = new Float64Array(dim);
  for (let i = 0; i < count; i++) for (let j = 0; j < dim; j++) mu[j] += features[i * dim + j];
  for (let j = 0; j < dim; j++) mu[j] /= count;
  const sigma = new Float64Array(dim * dim);
  const row = new Float64Array(dim);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < dim; j++) row[j] = features[i * dim + j] - mu[j];
    for (let a = 0; a < dim; a++) {
      const ra = row[a];
      for (let b = a; b < dim; b++) sigma[a * dim + b] += ra * row[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = sigma[a * dim + b] / (count - 1);
      sigma[a * dim + b] = v;
      sigma[b * dim + a] = v;
    }
  }
  return { dim, count, mu, sigma };
}

export function frechetDistance(s1: FeatureStats, s2: FeatureStats): number {
  if (s1.dim !== s2.dim) throw new Error(`diffvit.frechetDistance: statistics of ${s1.dim} and ${s2.dim} features cannot be compared`);
  const n = s1.dim;
  let meanTerm = 0, trace = 0;
  for (let i = 0; i < n; i++) {
    meanTerm += (s1.mu[i] - s2.mu[i]) ** 2;
    trace += s1.sigma[i * n + i] + s2.sigma[i * n + i];
  }
  const root1 = sqrtPSD(s1.sigma, n);
  const middle = matmulSquare(matmulSquare(root1, s2.sigma, n), root1, n);
  // symmetrise away round-off before the eigen-solve
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) middle[i * n + j] = middle[j * n + i] = 0.5 * (middle[i * n + j] + middle[j * n + i]);
  const { values } = symmetricEigen(middle, n);
  let traceSqrt = 0;
  for (const v of values) traceSqrt += Math.sqrt(Math.max(v, 0));
  return meanTerm + trace - 2 * traceSqrt;
}

/** Draws of m distinct row indices out of `count` (an LCG driving a Fisher–Yates shuffle), reproducible from `seed`. */
export function subsetPicker(seed: number, m: number): (count: number) => number[] {
  let state = seed >>> 0;
  const rand = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296);
  return (count) => {
    const idx = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx.slice(0, m);
  };
}

/**
 * Kernel inception distance: unbiased MMD² with the cubic polynomial kernel k(x,y) = (x·y/d + 1)³,
 * averaged over `subsets` random subsets of `subsetSize` (as in Bińkowski et al. 2018).
 */
export function kernelDistance(a: ArrayLike<number>, countA: number, b: ArrayLike<number>, countB: number, dim: number, options: { subsets?: number; subsetSize?: number; seed?: number } = {}): { mean: number; std: number } {
  const subsets = options.subsets ?? 100, m = Math.min(options.subsetSize ?? 1000, countA, countB);
  const pick = subsetPicker(options.seed ?? 0, m);
  const k = (x: ArrayLike<number>, i: number, y: ArrayLike<number>, j: number) => {
    let s = 0;
    for (let t = 0; t < dim; t++) s += x[i * dim + t] * y[j * dim + t];
    return (s / dim + 1) ** 3;
  };
  const results: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const ia = pick(countA), ib = pick(countB);
    let kxx = 0, kyy = 0, kxy = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (i !== j) {
          kxx += k(a, ia[i], a, ia[j]);
          kyy += k(b, ib[i], b, ib[j]);
        }
        kxy += k(a, ia[i], b, ib[j]);
      }
    }
    results.push(kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - (2 * kxy) / (m * m));
  }
  const mean = results.reduce((x, y) => x + y, 0) / results.length;
  const std = Math.sqrt(results.reduce((x, y) => x + (y - mean) ** 2, 0) / results.length);
  return { mean, std };
}
