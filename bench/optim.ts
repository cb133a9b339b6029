/**
 * The optimiser's and the EMA's update of every parameter of a model (iuvit-xs/4: 82 tensors,
 * 2.28 M values): one multi-tensor kernel call (adamwUpdateMany, axpbyMany_; what AdamW and EMA
 * run) against one call per tensor (adamwUpdate, axpby_; what they ran before), timed in
 * alternation in the same run, at the process's thread count. ratio = per tensor / many (> 1: faster).
 *
 *   npx tsc -p . && node dist/bench/optim.js        (or: diffvit bench optim)
 */
import * as dv from '../lib/index.js';
import { adamwUpdate } from '../lib/ops/optim.js';
import { type BenchRow, timePair } from './common.js';

export function benchOptim(preset = 'iuvit-xs/4'): BenchRow[] {
  const model = new dv.DiffusionViT(preset);
  const g = new dv.Generator(1);
  const params = model.parameters();
  const random = (p: dv.Tensor, std: number) => dv.keep(dv.randn(p.shape, { generator: g, std }));
  for (const p of params) dv.normal_(p, 0, 0.02, g);
  const grads = params.map((p) => random(p, 1)), m = params.map((p) => random(p, 0.1)), v = params.map((p) => dv.keep(dv.square(random(p, 0.1))));
  const shadow = params.map((p) => dv.keep(dv.clone(p)));
  const options = { lr: 1e-3, weightDecay: 0, step: 10 };
  const size = `${preset}, ${params.length} tensors, ${(params.reduce((s, p) => s + p.size, 0) / 1e6).toFixed(2)} M values, ${dv.runtimeInfo().threads} threads`;
  const rows: BenchRow[] = [];
  try {
    const cases: [string, () => void, () => void][] = [
      ['AdamW', () => dv.adamwUpdateMany(params, grads, m, v, options), () => params.forEach((p, i) => adamwUpdate(p, grads[i], m[i], v[i], options))],
      ['EMA', () => dv.axpbyMany_(shadow, params, 0.999, 0.001), () => shadow.forEach((s, i) => dv.axpby_(s, params[i], 0.999, 0.001))],
    ];
    for (const [name, many, perTensor] of cases) {
      const [fused, separate] = timePair(many, perTensor, 41);
      rows.push({
        bench: 'optim', case: `${name}, ${size}`, unit: 'ms', value: fused * 1e3,
        baseline: { name: 'one call per tensor', value: separate * 1e3 }, ratio: separate / fused,
      });
    }
  } finally {
    for (const t of [...grads, ...m, ...v, ...shadow]) t.dispose();
    model.dispose();
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of benchOptim()) {
    const base = r.baseline && 'value' in r.baseline ? r.baseline.value : NaN;
    console.log(`${r.case.padEnd(70)} ${r.value.toFixed(3).padStart(8)} / ${base.toFixed(3).padStart(8)} ms  ${r.ratio!.toFixed(2)}x`);
  }
}
