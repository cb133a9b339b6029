/**
 * The benchmark runner: runs benchmark families, prints one aligned table (bench, case, value,
 * baseline, ratio) and writes the rows with a description of the machine as JSON, to
 * bench/results/<name>-<date>.json or to --out.
 *
 *   node dist/bench/run.js [gemm|attention|fused|random|optim|model|train-step|all ...] [--out file.json]     (npm run bench -- ...)
 *   diffvit bench [gemm|attention|fused|random|optim|model|train-step|all] [--out file.json]     (the CLI loads this module: it registers the suite)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { packageRoot } from '../lib/package_root.js';
import { registerBenchSuite } from '../lib/cli/bench_suite.js';
import { cpuModel, logicalCores } from '../lib/cli/machine.js';
import { runtimeInfo, type RuntimeInfo } from '../lib/runtime.js';
import { benchAttention } from './attention.js';
import type { BenchRow } from './common.js';
import { benchFused } from './fused.js';
import { benchGemm } from './gemm.js';
import { benchModel, benchTrainStep } from './model.js';
import { benchOptim } from './optim.js';
import { benchRandom } from './random.js';

/** Every benchmark family, by the name the CLI takes. */
export const BENCHMARKS: Readonly<Record<string, () => BenchRow[] | Promise<BenchRow[]>>> = {
  gemm: () => benchGemm(),
  attention: () => benchAttention(),
  fused: () => benchFused(),
  random: () => benchRandom(),
  optim: () => benchOptim(),
  model: () => benchModel(),
  'train-step': () => benchTrainStep(),
};

export interface BenchReport {
  machine: { cpu: string; cores: number; node: string; diffvit: RuntimeInfo };
  date: string;
  rows: BenchRow[];
}

/** Expands 'all' and checks the names; throws an Error naming the valid ones otherwise. */
export function resolveBenchNames(names: readonly string[]): string[] {
  const known = Object.keys(BENCHMARKS);
  const list = names.length === 0 || names.includes('all') ? known : [...new Set(names)];
  const unknown = list.filter((n) => !known.includes(n));
  if (unknown.length) {
    throw new Error(`unknown benchmark ${unknown.map((n) => `'${n}'`).join(', ')} (expected ${[...known, 'all'].join(', ')})`);
  }
  return list;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 1 : a >= 10 ? 2 : 3);
}

/** The rows as one table with aligned columns (numbers right-aligned). */
export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['bench', 'case', 'value', 'baseline', 'ratio'];
  const cells = rows.map((r) => [
    r.bench,
    r.case,
    `${formatNumber(r.value)} ${r.unit}`,
    !r.baseline ? '-' : 'value' in r.baseline ? `${r.baseline.name} ${formatNumber(r.baseline.value)}` : `${r.baseline.name}: ${r.baseline.missing}`,
    r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
  const right = [false, false, true, false, true];
  const line = (row: string[]) => row.map((s, c) => (right[c] ? s.padStart(widths[c]) : s.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** A file-name-safe local timestamp: 2025-11-26T14-05-09. */
function stamp(d: Date): string {
  const p = (v: number) => String(v).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
}

/**
 * Runs the named benchmarks ('all' or none: every one), prints the table to stdout (progress to
 * stderr) and writes the JSON report. Returns the report and the path written.
 */
export async function runBenchmarks(names: string[], out?: string): Promise<{ report: BenchReport; file: string }> {
  const list = resolveBenchNames(names);
  const started = new Date();
  const rows: BenchRow[] = [];
  for (const name of list) {
    process.stderr.write(`bench: running ${name} ...\n`);
    const t0 = process.hrtime.bigint();
    const got = await BENCHMARKS[name]();
    rows.push(...got);
    process.stderr.write(`bench: ${name}: ${got.length} rows in ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s\n`);
  }
  const report: BenchReport = {
    machine: { cpu: cpuModel(), cores: logicalCores(), node: process.version, diffvit: runtimeInfo() },
    date: started.toISOString(),
    rows,
  };
  const label = list.length === Object.keys(BENCHMARKS).length ? 'all' : list.join('+');
  const file = resolve(out ?? join(packageRoot(), 'bench', 'results', `${label}-${stamp(started)}.json`));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  console.log(rows.length ? formatTable(rows) : '(no rows)');
  console.log(`\nwrote ${file}`);
  return { report, file };
}

// `diffvit bench` loads this module and runs the suite it registers (lib/cli/bench_suite.ts).
registerBenchSuite({ resolve: resolveBenchNames, run: runBenchmarks });

// Run directly: node dist/bench/run.js [names...] [--out file]
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    const { values, positionals } = parseArgs({ options: { out: { type: 'string' } }, allowPositionals: true });
    await runBenchmarks(positionals, values.out);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
}
