/**
 * NVTX ranges (native/core/trace.h): one range per kernel call, named after the kernel with its
 * sizes as the message, phase ranges pushed from JS around them, named pool threads. A child
 * process runs with diffvit's own NVTX tool (native/tools/nvtx_recorder.cpp) as the injection
 * library, and its log is read back as a tree (test/nvtx_log.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import { nvtxRangePop, nvtxRangePush, nvtxStatus } from '../lib/backend/cpu/runtime.js';
import { packageRoot } from '../lib/package_root.js';
import { type NvtxLog, type NvtxRange, rangesIn, readNvtxLog, sizesOf } from './nvtx_log.js';

const status = nvtxStatus();
const dist = join(packageRoot(), 'dist', 'lib', 'index.js');

test('profilerInfo says whether NVTX is compiled in and whether a tool is attached', () => {
  expect(typeof status.nvtx).toBe('boolean');
  // Only a run under a profiler (nsys, the recorder) has a tool: this test process normally not.
  expect(status.attached).toBe(status.nvtx && Boolean(process.env.NVTX_INJECTION64_PATH));
  expect(status.recorder === null || status.recorder.endsWith('libdiffvit_nvtx_recorder.so')).toBe(true);
  if (status.nvtx) expect(status.recorder, 'the recorder is built with NVTX').not.toBeNull();
  // Without a tool the ranges are no-ops, balanced or not; the argument is still checked.
  nvtxRangePush('a phase');
  nvtxRangePop();
  nvtxRangePop();
  expect(() => native.profilerRangePush(3 as unknown as string)).toThrow(/profilerRangePush: argument 'name' expected a string, received 3/);
  expect(() => (native.profilerRangePush as () => void)()).toThrow(/profilerRangePush/);
});

// The child: phases around ops and direct kernel calls; it counts every kernel call it makes
// (through the CPU backend's kernel table and the addon's exports) and prints the counts.
const CHILD = String.raw`
import { pathToFileURL } from 'node:url';
const root = process.argv[2];
const load = (p) => import(pathToFileURL(root + '/dist/lib/' + p).href);
const dv = await load('index.js');
const { native } = await load('backend/cpu/addon.js');
const runtime = await load('backend/cpu/runtime.js');

const calls = {};
const counted = (name, fn) => (...args) => { calls[name] = (calls[name] ?? 0) + 1; return fn(...args); };
const kernels = dv.resolveDevice('cpu').backend.kernels;
const names = Object.keys(native.kernelTable());
for (const name of names) {
  if (kernels[name]) kernels[name] = counted(name, kernels[name]);
  native[name] = counted(name, native[name]);  // the backend's copy() calls native.copyStrided
}

runtime.nvtxRangePush('nvtx-test/ops');
dv.scope(() => {
  const a = dv.randn([64, 32]), b = dv.randn([32, 128]);
  dv.matmul(a, b).data();
  const q = dv.randn([2, 3, 16, 8]), k = dv.randn([2, 3, 24, 8]), v = dv.randn([2, 3, 24, 8]);
  dv.attention(q, k, v).data();
  const x = dv.randn([10, 48]);
  dv.layerNorm(x, dv.ones([48]), dv.zeros([48])).data();
});
runtime.nvtxRangePop();

runtime.nvtxRangePush('nvtx-test/outer');
runtime.nvtxRangePush('nvtx-test/inner');
const buf = new native.NativeBuffer('cpu', 'float32', 16);
for (let i = 0; i < 5; i++) native.fill({ out: buf, offset: 0, n: 16, value: i });
let error = '';
try { native.fill({ out: buf, offset: 0, n: 17, value: 0 }); } catch (e) { error = e.message; }
try { native.fill({ out: buf, offset: 0, n: 16, value: 0, bogus: 1 }); } catch (e) { error += '\n' + e.message; }
runtime.nvtxRangePop();
runtime.nvtxRangePop();

await new Promise((resolve) => setTimeout(resolve, 100));  // the pool's workers have started and named themselves
process.stdout.write(JSON.stringify({ status: runtime.nvtxStatus(), calls, error, kernelNames: names }));
`;

describe.skipIf(!status.nvtx || !existsSync(dist))(
  `NVTX ranges seen by a tool${!status.nvtx ? ' (skipped: this addon was built without NVTX3 — CMake found no nvtx3/nvToolsExt.h; see DIFFVIT_NVTX)' : !existsSync(dist) ? ' (skipped: dist/ is not built; run npx tsc -p tsconfig.json)' : ''}`,
  () => {
    let child: { status: { nvtx: boolean; attached: boolean }; calls: Record<string, number>; error: string; kernelNames: string[] };
    let log: NvtxLog;

    test('a child process run under the recorder logs its ranges', () => {
      const dir = mkdtempSync(join(tmpdir(), 'diffvit-nvtx-'));
      try {
        const script = join(dir, 'child.mjs'), logPath = join(dir, 'nvtx.jsonl');
        writeFileSync(script, CHILD);
        const env: NodeJS.ProcessEnv = { ...process.env, NVTX_INJECTION64_PATH: status.recorder!, DIFFVIT_NVTX_LOG: logPath, DIFFVIT_THREADS: '3' };
        const r = spawnSync(process.execPath, [script, packageRoot()], { env, encoding: 'utf8', timeout: 120_000 });
        expect(r.status, `child failed:\n${r.stderr}`).toBe(0);
        child = JSON.parse(r.stdout);
        log = readNvtxLog(logPath);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      expect(child.status.nvtx).toBe(true);
      expect(child.status.attached).toBe(true);
      expect(log.events.find((e) => e.ev === 'domain')?.domain).toBe('diffvit');
    });

    test('every kernel call opens exactly one balanced range named after the kernel', () => {
      expect(log.unmatchedPops).toEqual([]);
      expect(log.open.map((r) => r.text)).toEqual([]);
      const kernelNames = new Set(child.kernelNames);
      const pushed: Record<string, number> = {};
      for (const r of log.ranges) {
        expect(r.domain).toBe('diffvit');
        if (kernelNames.has(r.name)) pushed[r.name] = (pushed[r.name] ?? 0) + 1;
        else expect(r.name.startsWith('nvtx-test/'), `a range that is neither a kernel nor a phase: ${r.text}`).toBe(true);
      }
      expect(pushed).toEqual(child.calls);
      for (const k of ['gemm', 'attentionForward', 'layerNorm', 'fill']) expect(child.calls[k], k).toBeGreaterThan(0);
      expect(log.ranges.every((r) => r.tid === log.mainTid), 'kernels are called from the main thread').toBe(true);
    });

    test("each kernel range carries the call's sizes as its message", () => {
      const ops = log.roots.find((r) => r.name === 'nvtx-test/ops')!;
      const inOps = (name: string): NvtxRange[] => rangesIn(ops.children, (r) => r.name === name);
      expect(inOps('gemm').map(sizesOf)).toContainEqual(expect.objectContaining({ m: 64, n: 128, k: 32 }));
      for (const r of inOps('gemm')) {
        expect(r.message).toMatch(/^batch=\d+ m=\d+ n=\d+ k=\d+$/);
        expect(r.text).toBe(`gemm ${r.message}`);
      }
      expect(inOps('attentionForward').map(sizesOf)).toEqual([{ batch: 2, heads: 3, nq: 16, nk: 24, d: 8 }]);
      expect(inOps('layerNorm').map(sizesOf)).toEqual([{ rows: 10, cols: 48 }]);
      // Offsets, strides, leading dimensions and scalars stay out of the message.
      for (const r of log.ranges) expect(r.message).not.toMatch(/Offset|Stride|ld[abcw]=|alpha|beta|eps|value|seed/);
    });

    test('phase ranges pushed from JS nest the kernel ranges of their calls', () => {
      expect(log.roots.map((r) => r.name)).toEqual(expect.arrayContaining(['nvtx-test/ops', 'nvtx-test/outer']));
      const ops = log.roots.find((r) => r.name === 'nvtx-test/ops')!;
      expect(ops.message).toBe('');
      expect(ops.children.length).toBeGreaterThan(3);
      expect(ops.children.every((r) => r.children.length === 0), 'a kernel range encloses nothing').toBe(true);
      for (const r of ops.children) expect(r.start >= ops.start && r.end! <= ops.end!).toBe(true);

      const outer = log.roots.find((r) => r.name === 'nvtx-test/outer')!;
      expect(outer.children.map((r) => r.name)).toEqual(['nvtx-test/inner']);
      const fills = outer.children[0].children;
      // Five calls, then one whose argument check fails (its range still closes), then one with an
      // unknown key (the checked entry, which reads the object by name: the same message).
      expect(fills.map((r) => r.text)).toEqual([...Array(5).fill('fill n=16'), 'fill n=17', 'fill n=16']);
      expect(child.error).toMatch(/diffvit\.fill: argument 'out'[^\n]*\n.*bogus/);
    });

    test('pool workers name their threads', () => {
      const names = [...log.threads.entries()].filter(([, name]) => name.startsWith('diffvit-w'));
      expect([...new Set(names.map(([, name]) => name))].sort()).toEqual(['diffvit-w1', 'diffvit-w2']);  // DIFFVIT_THREADS=3
      for (const [tid] of names) expect(tid).not.toBe(log.mainTid);
      for (const e of log.events.filter((e) => e.ev === 'thread')) expect(e.by, 'each worker names itself').toBe(e.tid);
    });
  },
);
