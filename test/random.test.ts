/**
 * Standard normals of the Philox stream (native/cpu/simd/random.cpp: Box-Muller vectorised across
 * pairs at avx512 and avx2, libm at scalar): at every CPU kernel level against float64 Box-Muller
 * over Philox words computed here, and the vector levels' bits against the scalar level's.
 */
import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { describeEachLevel } from './helpers.js';

const LOW32 = 0xffffffffn;

/** Words 0 and 1 of Philox4x32-10 block `counter` under `key` (native/core/philox.h philox4x32). */
function philoxWords(counter: bigint, key: bigint): [number, number] {
  let c0 = counter & LOW32, c1 = (counter >> 32n) & LOW32, c2 = 0n, c3 = 0n;
  let k0 = key & LOW32, k1 = (key >> 32n) & LOW32;
  for (let round = 0; round < 10; round++) {
    const p0 = 0xd2511f53n * c0, p1 = 0xcd9e8d57n * c2;
    const n0 = (p1 >> 32n) ^ c1 ^ k0, n2 = (p0 >> 32n) ^ c3 ^ k1;
    c1 = p1 & LOW32;
    c3 = p0 & LOW32;
    c0 = n0;
    c2 = n2;
    k0 = (k0 + 0x9e3779b9n) & LOW32;
    k1 = (k1 + 0xbb67ae85n) & LOW32;
  }
  return [Number(c0), Number(c1)];
}

/** philox_unit: a word's top 24 bits + 1, over 2^24 (in (0, 1]). */
const unit = (word: number) => (Math.floor(word / 256) + 1) / 16777216;

/** Elements first .. first+n-1 of the standard normal stream of `key`, in float64 (Box-Muller on pair i >> 1). */
function normals64(key: number, first: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const index = first + i;
    const [w0, w1] = philoxWords(BigInt(Math.floor(index / 2)), BigInt(key));
    const radius = Math.sqrt(-2 * Math.log(unit(w0))), angle = 6.283185307179586 * unit(w1);
    out[i] = index % 2 === 0 ? radius * Math.cos(angle) : radius * Math.sin(angle);
  }
  return out;
}

const draw = (seed: number, counter: number, n: number) => dv.scope(() => dv.randn([n], { generator: new dv.Generator(seed, counter) }).data() as Float32Array);

/** The spacing of float32 values at |v|. */
function ulp32(v: number): number {
  const a = Math.abs(Math.fround(v));
  return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

// Seeds with high key bits set (the second key word) and without; counters odd and even, so
// draws start and end in the middle of a pair; sizes that leave every remainder of a vector.
const CASES: [number, number, number][] = [[7, 0, 1], [7, 1, 1], [7, 1, 2], [2 ** 40 + 123, 3, 17], [5, 5, 65], [2 ** 52 - 1, 6, 4099], [11, 10, 20007]];

describeEachLevel('standard normals of the Philox stream', (level) => {
  test.each(CASES)('seed %d from counter %d, %d values: float64 Box-Muller rounded once', (seed, counter, n) => {
    const got = draw(seed, counter, n), want = normals64(seed, counter, n);
    let exact = 0;
    for (let i = 0; i < n; i++) {
      // Within half an ulp of the float64 value (plus its own error): the nearest float, or its
      // neighbour where the float64 value lies within about 1e-16 of a rounding boundary.
      expect(Math.abs(got[i] - want[i]), `element ${i} at ${level}`).toBeLessThanOrEqual(ulp32(want[i]) * (0.5 + 1e-6));
      if (got[i] === Math.fround(want[i])) exact++;
    }
    expect(exact, `values equal to float32(float64 Box-Muller) at ${level}`).toBe(n);
  });

  if (level !== 'scalar') {
    test('2^21 values from an odd counter: the bits of the scalar level (libm)', () => {
      const n = 2 ** 21, seed = 12345, counter = 1;
      const got = draw(seed, counter, n);
      dv.setCpuLevel('scalar');
      let want: Float32Array;
      try {
        want = draw(seed, counter, n);
      } finally {
        dv.setCpuLevel(level);
      }
      let differ = 0;
      for (let i = 0; i < n; i++) if (got[i] !== want[i]) differ++;
      expect(differ).toBe(0);
    });
  }
});
