/**
 * Standard normals of the Philox stream (native/cpu/simd/random.cpp): ms per call at each vector
 * CPU level against the scalar level (libm's float64 log, sin and cos per Box-Muller pair), timed
 * in alternation in the same run: randn of 2^20 values, and the noise of one default training step
 * (edmTrainingNoise: σ draws, then x_noisy = y + σ n and c_in x_noisy for 32 images of 3 x 32 x 32).
 * ratio = scalar / level (> 1: faster).
 *
 *   npx tsc -p . && node dist/bench/random.js        (or: diffvit bench random)
 */
import * as dv from '../lib/index.js';
import { edmTrainingNoise } from '../lib/ops/edm.js';
import { type BenchRow, timePair } from './common.js';

type Level = dv.RuntimeInfo['cpuLevel'];

export function benchRandom(): BenchRow[] {
  const info = dv.runtimeInfo(), start = info.cpuLevel;
  const vectorLevels: Level[] = ['avx512', 'avx2'];
  const levels = info.cpuBestLevel === 'scalar' ? [] : vectorLevels.slice(vectorLevels.indexOf(info.cpuBestLevel));
  const generator = new dv.Generator(1);
  const cases: [string, () => void][] = [
    ['randn 2^20 values', () => dv.scope(() => void dv.randn([2 ** 20], { generator }))],
    ['EDM training noise, 32 images 3x32x32', (() => {
      const y = dv.randn([32, 3, 32, 32]);
      return () => dv.scope(() => void edmTrainingNoise(y, generator));
    })()],
  ];
  const at = (level: Level, fn: () => void) => () => {
    dv.setCpuLevel(level);
    fn();
  };
  const rows: BenchRow[] = [];
  try {
    for (const level of levels) {
      for (const [name, fn] of cases) {
        const [vector, scalar] = timePair(at(level, fn), at('scalar', fn), 21);
        rows.push({
          bench: 'random', case: `${name}, ${level}, ${info.threads} threads`, unit: 'ms', value: vector * 1e3,
          baseline: { name: 'scalar level (libm)', value: scalar * 1e3 }, ratio: scalar / vector,
        });
      }
    }
  } finally {
    dv.setCpuLevel(start);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of benchRandom()) {
    const base = r.baseline && 'value' in r.baseline ? r.baseline.value : NaN;
    console.log(`${r.case.padEnd(56)} ${r.value.toFixed(3).padStart(8)} / ${base.toFixed(3).padStart(8)} ms  ${r.ratio!.toFixed(2)}x`);
  }
}
