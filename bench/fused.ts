/**
 * The fused transformer-block ops against the op chains they replace, at the iuvit-t/4 block sizes
 * (B = 32 training / 64 sampling, N = 64 tokens, D = 256, MLP hidden 1024): ms per call of the fused op
 * (value) and of the unfused composition (baseline), forward alone (no autograd) and forward +
 * backward. ratio = unfused / fused (> 1: the fused op is faster). The two are timed in alternation,
 * so load from other processes on a shared machine slows both alike.
 *
 *   npx tsc -p . && node dist/bench/fused.js        (or: diffvit bench fused)
 */
import * as dv from '../lib/index.js';
import { type BenchRow, timePair } from './common.js';

interface Case {
  name: string;
  inputs: () => dv.Tensor[];
  fused: (...t: dv.Tensor[]) => dv.Tensor;
  unfused: (...t: dv.Tensor[]) => dv.Tensor;
}

function cases(B: number, N: number, D: number, H: number): Case[] {
  return [
    {
      name: `layerNormModulate B=${B} N=${N} D=${D}`,
      // shift/scale as the Block hands them over: (B, D) column slices of adaLN's (B, 6D) output.
      inputs: () => [dv.randn([B, N, D]), dv.randn([B, 6 * D])],
      fused: (x, ada) => {
        const [sh, sc] = dv.chunk(ada, 6, -1);
        return dv.layerNormModulate(x, sh, sc, 1e-6);
      },
      unfused: (x, ada) => {
        const [sh, sc] = dv.chunk(dv.unsqueeze(ada, 1), 6, -1);
        return dv.add(dv.mul(dv.layerNorm(x, null, null, 1e-6), dv.addScalar(sc, 1)), sh);
      },
    },
    {
      name: `addGated B=${B} N=${N} D=${D}`,
      inputs: () => [dv.randn([B, N, D]), dv.randn([B, 6 * D]), dv.randn([B, N, D])],
      fused: (x, ada, y) => dv.addGated(x, dv.chunk(ada, 6, -1)[2], y),
      unfused: (x, ada, y) => dv.add(x, dv.mul(dv.chunk(dv.unsqueeze(ada, 1), 6, -1)[2], y)),
    },
    {
      name: `linearGelu ${B * N}x${D}->${H}`,
      inputs: () => [dv.randn([B, N, D]), dv.mulScalar(dv.randn([H, D]), 1 / Math.sqrt(D)), dv.randn([H])],
      fused: (x, w, b) => dv.linearGelu(x, w, b),
      unfused: (x, w, b) => dv.gelu(dv.linear(x, w, b)),
    },
  ];
}

export function benchFused(): BenchRow[] {
  const rows: BenchRow[] = [];
  const row = (kase: string, fused: number, unfused: number): BenchRow => ({
    bench: 'fused',
    case: kase,
    unit: 'ms',
    value: fused * 1e3,
    baseline: { name: 'unfused ops', value: unfused * 1e3 },
    ratio: unfused / fused,
  });
  for (const [B, grad] of [[64, false], [32, true]] as [number, boolean][]) {
    for (const c of cases(B, 64, 256, 1024)) {
      dv.scope(() => {
        const inputs = c.inputs();
        for (const t of inputs) t.requiresGrad = grad;
        const dy = dv.randn(dv.noGrad(() => dv.scope(() => c.fused(...inputs).shape)));
        const run = (f: (...t: dv.Tensor[]) => dv.Tensor) => () => dv.scope(() => {
          if (!grad) {
            dv.noGrad(() => f(...inputs));
            return;
          }
          f(...inputs).backward({ grad: dy });
          for (const t of inputs) {
            t.grad?.dispose();
            t.grad = null;
          }
        });
        const [fused, unfused] = timePair(run(c.fused), run(c.unfused));
        rows.push(row(`${c.name} ${grad ? 'fwd+bwd' : 'fwd'}`, fused, unfused));
      });
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const info = dv.runtimeInfo();
  console.log(`fused ops on ${info.cpuLevel}, ${info.threads} threads (ms: fused / unfused, speed-up)`);
  for (const r of benchFused()) {
    const base = r.baseline && 'value' in r.baseline ? r.baseline.value : NaN;
    console.log(`${r.case.padEnd(48)} ${r.value.toFixed(3).padStart(9)} / ${base.toFixed(3).padStart(9)}  ${r.ratio!.toFixed(2)}x`);
  }
}
