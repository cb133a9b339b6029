/**
 * Fused attention (native FlashAttention-2 kernels): forward and forward+backward in ms, plus the
 * achieved GFLOP/s (forward 4·B·H·Nq·Nk·D flops: Q Kᵀ and P V; backward 10·B·H·Nq·Nk·D: the
 * recomputed Q Kᵀ plus dV, dP, dQ and dK).
 *
 *   npx tsc -p . && node dist/bench/attention.js
 */
import * as dv from '../lib/index.js';
import { attention } from '../lib/ops/attention.js';
import { type BenchRow, timeIt } from './common.js';

const CASES: [number, number, number, number][] = [
  [32, 4, 65, 64],
  [32, 4, 257, 64],
  [4, 4, 1025, 64],
];

export function benchAttention(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const [B, H, N, D] of CASES) {
    dv.scope(() => {
      // Read in place from a (B, N, 3, H, D) tensor, as the model's qkv projection hands them over.
      const qkv = dv.randn([B, N, 3, H, D]);
      const [q, k, v] = [0, 1, 2].map((i) => dv.detach(qkv.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3])));
      const dy = dv.randn([B, H, N, D]);
      const name = `B=${B} H=${H} N=${N} D=${D}`;
      const flops = B * H * N * N * D;

      const fwd = timeIt(() => dv.noGrad(() => attention(q, k, v)).dispose());
      rows.push({ bench: 'attention', case: `${name} fwd`, unit: 'ms', value: fwd * 1e3 });
      rows.push({ bench: 'attention', case: `${name} fwd`, unit: 'GFLOP/s', value: (4 * flops) / fwd / 1e9 });

      for (const t of [q, k, v]) t.requiresGrad = true;
      const both = timeIt(() => {
        const out = attention(q, k, v);
        out.backward({ grad: dy });
        out.dispose();
        for (const t of [q, k, v]) {
          t.grad?.dispose();
          t.grad = null;
        }
      });
      rows.push({ bench: 'attention', case: `${name} fwd+bwd`, unit: 'ms', value: both * 1e3 });
      rows.push({ bench: 'attention', case: `${name} fwd+bwd`, unit: 'GFLOP/s', value: (14 * flops) / both / 1e9 });
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const info = dv.runtimeInfo();
  console.log(`attention on ${info.cpuLevel}, ${info.threads} threads`);
  for (const r of benchAttention()) console.log(`${r.case.padEnd(32)} ${r.value.toFixed(2).padStart(10)} ${r.unit}`);
}
