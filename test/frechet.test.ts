import { describe, expect, test } from 'vitest';

import { type FeatureStats, featureStats, frechetDistance, kernelDistance } from '../lib/eval/frechet.js';
import { matmulSquare, sqrtPSD, symmetricEigen } from '../lib/eval/linalg.js';
import { randomValues } from './helpers.js';

function randomOrthogonal(n: number, seed: number): Float64Array {
  // Q from the eigenvectors of a random symmetric matrix
  const r = randomValues(n * n, seed);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = r[i * n + j] + r[j * n + i];
  return symmetricEigen(s, n).vectors;
}

function stats(mu: number[], sigma: Float64Array): FeatureStats {
  return { dim: mu.length, count: 100, mu: Float64Array.from(mu), sigma };
}

/** Q diag(d) Qᵀ */
function rotated(d: number[], Q: Float64Array): Float64Array {
  const n = d.length, out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += Q[i * n + k] * d[k] * Q[j * n + k];
    out[i * n + j] = s;
  }
  return out;
}

describe('symmetric eigendecomposition', () => {
  test.each([1, 3, 17, 65])('A V = V Λ and Vᵀ V = I for n = %i', (n) => {
    const r = randomValues(n * n, n);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = r[i * n + j] + r[j * n + i];
    const { values, vectors: V } = symmetricEigen(a, n);
    const AV = matmulSquare(a, V, n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) expect(AV[i * n + k]).toBeCloseTo(values[k] * V[i * n + k], 9);
    for (let k = 0; k < n; k++) for (let l = 0; l < n; l++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += V[i * n + k] * V[i * n + l];
      expect(dot).toBeCloseTo(k === l ? 1 : 0, 10);
    }
    for (let k = 1; k < n; k++) expect(values[k]).toBeGreaterThanOrEqual(values[k - 1]);
  });
  test('sqrtPSD squares back and clamps round-off negatives', () => {
    const n = 17, Q = randomOrthogonal(n, 3);
    const d = Array.from({ length: n }, (_, i) => (i < 3 ? 0 : i * 0.7));
    const a = rotated(d, Q);
    const root = sqrtPSD(a, n);
    const back = matmulSquare(root, root, n);
    for (let i = 0; i < n * n; i++) expect(back[i]).toBeCloseTo(a[i], 9);
  });
});

describe('Fréchet distance, known answers', () => {
  test('identical statistics give 0', () => {
    const n = 33, Q = randomOrthogonal(n, 1);
    const s = stats(Array.from(randomValues(n, 2)), rotated(Array.from({ length: n }, (_, i) => 1 + i), Q));
    expect(Math.abs(frechetDistance(s, s))).toBeLessThan(1e-8);
  });
  test('1-D: (μ1 − μ2)² + (σ1 − σ2)²', () => {
    const fd = frechetDistance(stats([1.5], Float64Array.from([4])), stats([-0.5], Float64Array.from([9])));
    expect(fd).toBeCloseTo(2 ** 2 + (2 - 3) ** 2, 12);
  });
  test('commuting covariances: Σ (√a_i − √b_i)² + |Δμ|², also after a common rotation', () => {
    const n = 65, Q = randomOrthogonal(n, 5);
    const a = Array.from({ length: n }, (_, i) => 0.1 + ((i * 7) % 13));
    const b = Array.from({ length: n }, (_, i) => 0.2 + ((i * 5) % 11));
    const mu1 = Array.from(randomValues(n, 6)), mu2 = Array.from(randomValues(n, 7));
    let expected = 0;
    for (let i = 0; i < n; i++) expected += (Math.sqrt(a[i]) - Math.sqrt(b[i])) ** 2 + (mu1[i] - mu2[i]) ** 2;
    expect(frechetDistance(stats(mu1, rotated(a, Q)), stats(mu2, rotated(b, Q)))).toBeCloseTo(expected, 8);
  });
  test('non-commuting 2×2: tr √M = sqrt(tr M + 2 sqrt(det M))', () => {
    const A = Float64Array.from([2, 0.6, 0.6, 1]), B = Float64Array.from([1.5, -0.9, -0.9, 3]);
    const rA = sqrtPSD(A, 2);
    const M = matmulSquare(matmulSquare(rA, B, 2), rA, 2);
    const trM = M[0] + M[3], detM = M[0] * M[3] - M[1] * M[2];
    const expected = 3 + 4.5 - 2 * Math.sqrt(trM + 2 * Math.sqrt(detM));
    expect(frechetDistance(stats([0, 0], A), stats([0, 0], B))).toBeCloseTo(expected, 12);
    // det(AB) = det A det B is independent of the square-root route
    expect(detM).toBeCloseTo((2 - 0.36) * (4.5 - 0.81), 12);
  });
  test('featureStats: unbiased covariance of known samples', () => {
    const s = featureStats([1, 2, 3, 4, 5, 9], 3, 2);
    expect(Array.from(s.mu)).toEqual([3, 5]);
    expect(Array.from(s.sigma)).toEqual([4, 7, 7, 13]);
  });
});

describe('kernel inception distance', () => {
  test('near 0 for samples of one distribution, positive for shifted ones', () => {
    const dim = 8, n = 200;
    const a = randomValues(n * dim, 1), b = randomValues(n * dim, 2), c = randomValues(n * dim, 3).map((v) => v + 1);
    const same = kernelDistance(a, n, b, n, dim, { subsets: 10, subsetSize: 100 });
    const shifted = kernelDistance(a, n, c, n, dim, { subsets: 10, subsetSize: 100 });
    expect(Math.abs(same.mean)).toBeLessThan(0.05);
    expect(shifted.mean).toBeGreaterThan(0.5);
  });
});
