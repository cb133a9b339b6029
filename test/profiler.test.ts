/**
 * The built-in profiler (lib/profiler): it sees every runKernel call and nothing when off, the
 * library's ranges nest as documented (train_step > forward/backward/metrics/optimizer/ema,
 * sample > step <i>), the Chrome trace has the trace-event fields, ranges close on throws, and the
 * CLI's --profile writes a trace and prints the table. Under an NVTX tool (diffvit's recorder, in a
 * child process on dist/) the same ranges arrive as NVTX ranges around the addon's kernel ranges.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';

import { backendOf } from '../lib/backend/backend.js';
import { KERNEL_NAMES, type KernelTable } from '../lib/backend/kernel_names.js';
import { optionalValue } from '../lib/cli/options.js';
import { profileWindow } from '../lib/cli/profile.js';
import { trainCommand } from '../lib/cli/train.js';
import * as dv from '../lib/index.js';
import { Profiler, type ProfileReport, profile, range, type ChromeTrace, type ChromeTraceEvent } from '../lib/profiler/index.js';
import { profilerState } from '../lib/profiler/recorder.js';
import { packageRoot } from '../lib/package_root.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { type NvtxLog, readNvtxLog } from './nvtx_log.js';

const TINY_MODEL: dv.ModelConfig = { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 2, heads: 2, num_classes: 4 };
const TINY: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: TINY_MODEL,
  data: { kind: 'shapes', seed: 0, size: 64 },
  batchSize: 4,
  steps: 6,
  matmulPrecision: 'float32',
};

const dir = mkdtempSync(join(tmpdir(), 'diffvit-profiler-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.restoreAllMocks();
  expect(profilerState.on, 'a test left a profiler recording').toBe(false);
});

/** Counts the CPU backend's kernel calls by wrapping its kernel table (restored by the returned function). */
function countKernelCalls(): { counts: Map<string, number>; restore: () => void } {
  const kernels = backendOf('cpu').kernels as Record<string, (args: unknown) => unknown>;
  const saved = { ...kernels };
  const counts = new Map<string, number>();
  for (const name of KERNEL_NAMES) {
    const kernel = saved[name];
    kernels[name] = (args: unknown) => {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return kernel(args);
    };
  }
  return { counts, restore: () => Object.assign(kernels, saved as Partial<KernelTable>) };
}

const complete = (trace: ChromeTrace) => trace.traceEvents.filter((e) => e.ph === 'X');
const inside = (child: ChromeTraceEvent, parent: ChromeTraceEvent) =>
  child.ts >= parent.ts && child.ts + child.dur! <= parent.ts + parent.dur! + 1e-6;

describe('profiling a training run', () => {
  let trainer: Trainer;
  let result: dv.StepResult[];
  let report: ProfileReport;
  let counts: Map<string, number>;
  beforeAll(() => {
    trainer = new Trainer(TINY);
    trainer.trainStep(); // warm-up, not recorded
    const counter = countKernelCalls();
    counts = counter.counts;
    try {
      ({ result, report } = profile(() => [trainer.trainStep(), trainer.trainStep()]));
    } finally {
      counter.restore();
    }
  });
  afterAll(() => trainer.dispose());

  test('returns the result of fn', () => {
    expect(result.map((r) => r.step)).toEqual([2, 3]);
  });

  test('the table counts every runKernel call, by kernel', () => {
    const rows = new Map(report.kernels.map((r) => [r.name, r.count]));
    expect(rows).toEqual(counts);
    expect(report.kernelCalls).toBe([...counts.values()].reduce((a, b) => a + b, 0));
    // The GEMMs are there, with their FLOPs (2·m·n·k per product) and a rate.
    const gemm = report.kernels.find((r) => r.name === 'gemm')!;
    const linear = report.kernels.find((r) => r.name === 'linearAct')!;
    for (const r of [gemm, linear]) {
      expect(r.count).toBeGreaterThan(0);
      expect(r.flops).toBeGreaterThan(0);
      expect(r.gflops).toBeGreaterThan(0);
      expect(r.bytes).toBeGreaterThan(0);
      expect(r.meanMs).toBeCloseTo(r.totalMs / r.count, 12);
      expect(r.minMs).toBeLessThanOrEqual(r.maxMs);
    }
    // Sorted by total time; the percentages add up to 100.
    for (let i = 1; i < report.kernels.length; i++) expect(report.kernels[i].totalMs).toBeLessThanOrEqual(report.kernels[i - 1].totalMs);
    expect(report.kernels.reduce((s, r) => s + r.percent, 0)).toBeCloseTo(100, 6);
    expect(report.kernelMs).toBeLessThanOrEqual(report.wallMs);
  });

  test('table() lists the kernels by total time and the ranges with their kernel time', () => {
    const text = report.table();
    const lines = text.split('\n');
    const kernelLines = lines.filter((l) => /^(gemm|linearAct|adamwMany|binary)\s/.test(l));
    expect(kernelLines.length).toBe(4);
    expect(text).toMatch(/GFLOP\/s/);
    expect(text).toMatch(new RegExp(`^total\\s+${report.kernelCalls}\\s`, 'm'));
    for (const phase of ['forward', 'backward', 'metrics', 'optimizer', 'ema']) expect(text).toMatch(new RegExp(`^  ${phase}\\s+2\\s`, 'm'));
    expect(text).toMatch(/^train_step\s+2\s/m);
    // groupBy 'op' splits by op and precision; the calls still add up; limit keeps the first rows.
    const byOp = report.summary('op');
    expect(byOp.some((r) => r.name === 'gemm(float32)')).toBe(true);
    expect(byOp.some((r) => /^binary\((add|mul|sub|div)\)$/.test(r.name))).toBe(true);
    expect(byOp.reduce((s, r) => s + r.count, 0)).toBe(report.kernelCalls);
    expect(report.summary('shape').some((r) => /^gemm\(batch=\d+ m=\d+ n=\d+ k=\d+/.test(r.name))).toBe(true);
    expect(report.table({ limit: 3 })).toMatch(/\(\d+ more rows\)/);
  });

  test('ranges: train_step > data, forward, backward, metrics, optimizer, ema, with the kernel time inside', () => {
    const paths = report.ranges.map((r) => r.path);
    // data: trainStep() without a batch loads it (the CLI passes prefetched batches: no data range).
    expect(paths).toEqual(['train_step', ...['data', 'forward', 'backward', 'metrics', 'optimizer', 'ema'].map((p) => `train_step/${p}`)]);
    const step = report.ranges[0];
    expect(step.count).toBe(2);
    expect(step.kernelCalls).toBe(report.kernelCalls); // every kernel of the recording ran inside a step
    const phases = report.ranges.slice(1);
    expect(phases.reduce((s, r) => s + r.kernelCalls, 0)).toBe(report.kernelCalls); // and inside one phase
    for (const r of report.ranges) expect(r.kernelMs).toBeLessThanOrEqual(r.totalMs + 1e-9);
  });

  test('the Chrome trace parses, has the trace-event fields and nests the phases in the steps', () => {
    const path = join(dir, 'train.trace.json');
    report.writeChromeTrace(path);
    const trace = JSON.parse(readFileSync(path, 'utf8')) as ChromeTrace;
    expect(Array.isArray(trace.traceEvents)).toBe(true);
    expect(trace.displayTimeUnit).toBe('ms');
    const events = complete(trace);
    expect(events.length).toBe(report.events.length);
    for (const e of events) {
      expect(typeof e.name).toBe('string');
      expect(['kernel', 'range']).toContain(e.cat);
      expect(Number.isFinite(e.ts) && e.ts >= 0).toBe(true);
      expect(Number.isFinite(e.dur) && e.dur! >= 0).toBe(true);
      expect(e.pid).toBe(process.pid);
      expect(Number.isInteger(e.tid)).toBe(true);
    }
    expect(trace.traceEvents.filter((e) => e.ph === 'M').map((e) => e.name)).toEqual(['process_name', 'thread_name']);
    // Kernel events carry their dims and costs; gemm's FLOPs are 2·batch·m·n·k.
    const gemm = events.find((e) => e.name === 'gemm')!;
    const a = gemm.args as Record<string, number>;
    expect(a.flops).toBe(2 * a.batch * a.m * a.n * a.k);
    expect(a).not.toHaveProperty('aOffset');
    // Two steps, each holding one of every phase, in order; every kernel inside a step.
    const steps = events.filter((e) => e.name === 'train_step');
    expect(steps.length).toBe(2);
    for (const s of steps) {
      const phases = events.filter((e) => e.cat === 'range' && e !== s && inside(e, s));
      expect(phases.map((e) => e.name)).toEqual(['data', 'forward', 'backward', 'metrics', 'optimizer', 'ema']);
      for (let i = 1; i < phases.length; i++) expect(phases[i].ts).toBeGreaterThanOrEqual(phases[i - 1].ts + phases[i - 1].dur! - 1e-6);
    }
    for (const k of events.filter((e) => e.cat === 'kernel')) {
      expect(steps.some((s) => inside(k, s))).toBe(true);
      const phases = events.filter((e) => e.cat === 'range' && e.name !== 'train_step' && inside(k, e));
      expect(phases.length).toBe(1);
    }
  });
});

describe('profiler on and off', () => {
  test('off, nothing is recorded: kernels before and after a recording are not in it', () => {
    expect(profilerState.on).toBe(false);
    expect(dv.profiler.status().recording).toBe(false);
    const a = dv.randn([8, 8]);
    const p = new Profiler().start();
    expect(profilerState.on).toBe(true);
    expect(dv.profiler.status().recording).toBe(true);
    const report = p.stop();
    expect(profilerState.on).toBe(false);
    const b = dv.scope(() => dv.matmul(a, a).add(a));
    expect(report.events).toEqual([]);
    expect(report.kernels).toEqual([]);
    expect(p.stop()).toBe(report); // stop() again: the same report
    expect(() => p.start()).toThrow(/already recorded/);
    // A recording holds only what ran inside it.
    const { report: one } = profile(() => dv.scope(() => dv.matmul(a, b)).dispose());
    expect(one.kernels.map((r) => [r.name, r.count])).toEqual([['gemm', 1]]);
    expect(one.kernels[0].flops).toBe(2 * 8 * 8 * 8);
    for (const t of [a, b]) t.dispose();
  });

  test('recordings do not nest', () => {
    expect(() => profile(() => profile(() => 1))).toThrow(/already recording/);
    expect(profilerState.on).toBe(false);
  });

  test('a throwing fn stops the recording and closes its ranges', () => {
    expect(() => profile(() => range('outer', () => {
      throw new Error('boom');
    }))).toThrow('boom');
    expect(profilerState.on).toBe(false);

    const p = new Profiler().start();
    const x = dv.zeros([4]);
    expect(() => range('outer', () => range('inner', () => {
      dv.scope(() => x.add(x));
      throw new Error('boom');
    }))).toThrow('boom');
    range('after', () => dv.scope(() => x.mul(x)));
    const report = p.stop();
    x.dispose();
    // 'after' is beside 'outer', not inside it: the throw closed both ranges.
    expect(report.ranges.map((r) => r.path)).toEqual(['outer', 'outer/inner', 'after']);
    const trace = complete(report.toChromeTrace());
    const [outer, inner, after] = ['outer', 'inner', 'after'].map((n) => trace.find((e) => e.name === n)!);
    expect(inside(inner, outer)).toBe(true);
    expect(after.ts).toBeGreaterThanOrEqual(outer.ts + outer.dur! - 1e-6);
    expect(report.ranges.find((r) => r.path === 'outer/inner')!.kernelCalls).toBe(1);
    // range() returns fn's result.
    expect(range('plain', () => 42)).toBe(42);
  });

  test('ranges open when the recording starts or stops are left out; the kernels in them are kept', () => {
    const x = dv.zeros([4]);
    let report!: ProfileReport;
    range('before', () => {
      const p = new Profiler().start();
      range('spanning', () => {
        dv.scope(() => x.add(x));
        report = p.stop();
      });
    });
    expect(report.ranges).toEqual([]);
    expect(report.kernelCalls).toBe(1);
    expect(complete(report.toChromeTrace()).map((e) => e.cat)).toEqual(['kernel']);
    x.dispose();
  });

  test('profile(async fn) records until the Promise settles', async () => {
    const x = dv.ones([4]);
    const { result, report } = await profile(async () => {
      await new Promise((r) => setTimeout(r, 1));
      return dv.scope(() => x.add(x).sum().item());
    });
    expect(result).toBe(8);
    expect(report.kernelCalls).toBeGreaterThan(0);
    await expect(profile(async () => {
      throw new Error('async boom');
    })).rejects.toThrow('async boom');
    expect(profilerState.on).toBe(false);
    x.dispose();
  });
});

describe('sampling ranges', () => {
  test('sample > step <i>, one per sampler step', () => {
    const model = new dv.DiffusionViT(TINY_MODEL, { seed: 0 });
    for (const [sampler, steps] of [['heun', 3], ['euler', 2], ['dpmpp2m', 3]] as const) {
      const { report } = profile(() => dv.generate(model, { count: 2, steps, sampler, seed: 1 }));
      expect(report.ranges.map((r) => [r.path, r.count])).toEqual([['sample', 1], ['sample/step *', steps]]);
      const names = complete(report.toChromeTrace()).filter((e) => e.cat === 'range').map((e) => e.name);
      expect(names).toEqual(['sample', ...Array.from({ length: steps }, (_, i) => `step ${i}`)]);
      expect(report.ranges[0].kernelCalls).toBe(report.kernelCalls);
    }
    model.dispose();
  });
});

describe('diffvit train --profile', () => {
  test('a bare --profile, or one followed by an option, takes no value', () => {
    expect(optionalValue(['--profile'], 'profile')).toEqual(['--profile=']);
    expect(optionalValue(['--profile', '--steps', '3'], 'profile')).toEqual(['--profile=', '--steps', '3']);
    expect(optionalValue(['--profile', 'x.json', '--steps', '3'], 'profile')).toEqual(['--profile', 'x.json', '--steps', '3']);
    expect(optionalValue(['--profile=y.json'], 'profile')).toEqual(['--profile=y.json']);
  });

  test('the window: steps 3-12, or the whole of a run of 1-2 steps', () => {
    expect(profileWindow(0, 100)).toEqual([2, 12]);
    expect(profileWindow(0, 5)).toEqual([2, 5]);
    expect(profileWindow(0, 2)).toEqual([0, 2]);
    expect(profileWindow(40, 41)).toEqual([40, 41]);
    expect(profileWindow(40, 100)).toEqual([42, 52]);
  });

  test('writes the trace into the run folder and prints the table; a directory is a usage error', async () => {
    const config = join(dir, 'cli.json'), out = join(dir, 'cli-run');
    writeFileSync(config, JSON.stringify({ model: { ...TINY_MODEL, depth: 1 }, data: TINY.data }));
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const common = ['--config', config, '--batch', '2', '--out', out, '--no-samples', '--precision', 'float32'];
    expect(await trainCommand([...common, '--steps', '4', '--profile'])).toBe(0);
    const trace = JSON.parse(readFileSync(join(out, 'profile.trace.json'), 'utf8')) as ChromeTrace;
    expect(complete(trace).filter((e) => e.name === 'train_step').length).toBe(2); // steps 3 and 4
    const printed = log.mock.calls.map((c) => String(c[0])).join('\n');
    expect(printed).toMatch(/profile of 2 steps \(3-4\)/);
    expect(printed).toMatch(/^train_step\s+2\s/m);

    const file = join(dir, 'elsewhere', 'mine.json');
    expect(await trainCommand([...common, '--overwrite', '--steps', '1', '--profile', file])).toBe(0);
    expect(existsSync(file)).toBe(true);
    await expect(trainCommand([...common, '--overwrite', '--steps', '1', '--profile', dir])).rejects.toMatchObject({
      name: 'UsageError',
      message: expect.stringMatching(/^diffvit train: --profile \[FILE\] expected a file for the Chrome trace, received the folder/),
    });
  });
});

// The child (on dist/): one training step and one sampling run recorded by the built-in profiler
// while diffvit's NVTX recorder logs the ranges, then ranges around a throw.
const NVTX_CHILD = String.raw`
import { pathToFileURL } from 'node:url';
const dv = await import(pathToFileURL(process.argv[2] + '/dist/lib/index.js').href);
const model = ${JSON.stringify({ ...TINY_MODEL, depth: 1 })};
const trainer = new dv.Trainer({ ...dv.DEFAULT_TRAIN_CONFIG, model, data: { kind: 'shapes', seed: 0, size: 16 }, batchSize: 2, steps: 2, matmulPrecision: 'float32' });
const { report } = dv.profile(() => {
  trainer.trainStep();
  dv.generate(trainer.model, { count: 1, steps: 2, sampler: 'euler' });
});
let error = '';
try {
  dv.profiler.range('outer', () => dv.profiler.range('inner', () => { throw new Error('boom'); }));
} catch (e) { error = e.message; }
dv.profiler.range('after', () => 0);
trainer.dispose();
process.stdout.write(JSON.stringify({ status: dv.profiler.status(), error, ranges: report.ranges.map((r) => r.path) }));
`;

const nvtx = dv.profiler.status();
const distProfiler = join(packageRoot(), 'dist', 'lib', 'profiler', 'index.js');
describe.skipIf(!nvtx.nvtx || !nvtx.recorder || !existsSync(distProfiler))(
  `NVTX: the library's ranges under a tool${!nvtx.nvtx ? ' (skipped: the addon has no NVTX)' : !existsSync(distProfiler) ? ' (skipped: dist/ is not built with lib/profiler; npx tsc -p tsconfig.json)' : ''}`,
  () => {
    let child: { status: { attached: boolean }; error: string; ranges: string[] };
    let log: NvtxLog;

    beforeAll(() => {
      const tmp = mkdtempSync(join(tmpdir(), 'diffvit-profiler-nvtx-'));
      try {
        const script = join(tmp, 'child.mjs'), logPath = join(tmp, 'nvtx.jsonl');
        writeFileSync(script, NVTX_CHILD);
        const env = { ...process.env, NVTX_INJECTION64_PATH: nvtx.recorder!, DIFFVIT_NVTX_LOG: logPath, DIFFVIT_THREADS: '1' };
        const r = spawnSync(process.execPath, [script, packageRoot()], { env, encoding: 'utf8', timeout: 120_000 });
        expect(r.status, `child failed:\n${r.stderr}`).toBe(0);
        child = JSON.parse(r.stdout);
        log = readNvtxLog(logPath);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    test('every range is balanced, including the ones a throw left', () => {
      expect(child.status.attached).toBe(true);
      expect(log.unmatchedPops).toEqual([]);
      expect(log.open.map((r) => r.text)).toEqual([]);
      expect(child.error).toBe('boom');
      const outer = log.roots.find((r) => r.name === 'outer')!;
      expect(outer.children.map((r) => r.name)).toEqual(['inner']);
      expect(log.roots.find((r) => r.name === 'after')!.parent).toBeNull();
    });

    test('train_step > data, forward, backward, metrics, optimizer, ema and sample > step <i>, as in the built-in trace', () => {
      const step = log.roots.find((r) => r.name === 'train_step')!;
      const kernels = new Set(KERNEL_NAMES as readonly string[]);
      expect(step.children.filter((c) => !kernels.has(c.name)).map((c) => c.name)).toEqual(['data', 'forward', 'backward', 'metrics', 'optimizer', 'ema']);
      for (const phase of ['forward', 'backward']) expect(step.children.find((c) => c.name === phase)!.children.some((k) => kernels.has(k.name))).toBe(true);
      const sample = log.roots.find((r) => r.name === 'sample')!;
      expect(sample.children.filter((c) => !kernels.has(c.name)).map((c) => c.name)).toEqual(['step 0', 'step 1']);
      expect(child.ranges).toEqual(['train_step', ...['data', 'forward', 'backward', 'metrics', 'optimizer', 'ema'].map((p) => `train_step/${p}`), 'sample', 'sample/step *']);
    });
  },
);
