/**
 * Fused attention (native FlashAttention-2 kernels): forward and forward+backward in ms, plus the
 * achieved GFLOP/s (forward 4·B·H·Nq·Nk·D flops: Q Kᵀ and P V; backward 10·B·H·Nq·Nk·D: the
 * recomputed Q Kᵀ plus dV, dP, dQ and dK).
 *
 * The baseline is the twin's attention on the same shapes and layout (torch's
 * scaled_dot_product_attention where it exists, else its matmul-softmax-matmul).
 *
 *   npx tsc -p . && node dist/bench/attention.js
 */
import * as dv from '../lib/index.js';
import { attention } from '../lib/ops/attention.js';
import { type BenchRow, timeIt } from './common.js';
import { runTwinSnippet, twinMissing, twinThreadCounts } from './twin.js';

const CASES: [number, number, number, number][] = [
  [32, 4, 65, 64],
  [32, 4, 257, 64],
  [4, 4, 1025, 64],
];

/** The twin's attention forward and forward+backward, median ms per case (q, k, v sliced from one qkv), the faster of its thread counts. */
function twinTimes(): { fwd_ms: number; both_ms: number }[] | { missing: string } {
  const missing = twinMissing();
  if (missing) return { missing };
  const runs = twinThreadCounts().map((threads) => runTwinSnippet<{ fwd_ms: number; both_ms: number }[]>(`
def median_ms(fn, runs=7):
    fn(); fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return sorted(ts)[runs // 2] * 1e3
out = []
for B, H, N, D in ${JSON.stringify(CASES)}:
    qkv = torch.randn(B, N, 3, H, D).permute(2, 0, 3, 1, 4)
    q, k, v = (x.detach().requires_grad_() for x in qkv)
    dy = torch.randn(B, H, N, D)
    with torch.no_grad():
        fwd = median_ms(lambda: t.attention(q, k, v))
    def both():
        t.attention(q, k, v).backward(dy)
        for x in (q, k, v): x.grad = None
    out.append({"fwd_ms": fwd, "both_ms": median_ms(both)})
print(json.dumps(out))`, threads));
  return runs[0].map((_, i) => ({ fwd_ms: Math.min(...runs.map((r) => r[i].fwd_ms)), both_ms: Math.min(...runs.map((r) => r[i].both_ms)) }));
}

export function benchAttention(): BenchRow[] {
  const rows: BenchRow[] = [];
  const twin = twinTimes();
  const versus = (i: number, key: 'fwd_ms' | 'both_ms', ms: number): Pick<BenchRow, 'baseline' | 'ratio'> =>
    'missing' in twin
      ? { baseline: { name: 'pytorch twin', missing: twin.missing } }
      : { baseline: { name: 'pytorch twin', value: twin[i][key] }, ratio: twin[i][key] / ms };
  for (const [i, [B, H, N, D]] of CASES.entries()) {
    dv.scope(() => {
      // Read in place from a (B, N, 3, H, D) tensor, as the model's qkv projection hands them over.
      const qkv = dv.randn([B, N, 3, H, D]);
      const [q, k, v] = [0, 1, 2].map((i) => dv.detach(qkv.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3])));
      const dy = dv.randn([B, H, N, D]);
      const name = `B=${B} H=${H} N=${N} D=${D}`;
      const flops = B * H * N * N * D;

      const fwd = timeIt(() => dv.noGrad(() => attention(q, k, v)).dispose());
      rows.push({ bench: 'attention', case: `${name} fwd`, unit: 'ms', value: fwd * 1e3, ...versus(i, 'fwd_ms', fwd * 1e3) });
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
      rows.push({ bench: 'attention', case: `${name} fwd+bwd`, unit: 'ms', value: both * 1e3, ...versus(i, 'both_ms', both * 1e3) });
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
