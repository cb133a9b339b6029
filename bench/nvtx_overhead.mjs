#!/usr/bin/env node
/**
 * What the NVTX ranges around kernel calls (native/core/trace.h) cost per call: a 16-float
 * native.fill, the smallest kernel, called 300k times in a row, in a fresh process per case:
 *
 *   on      this build (NVTX compiled in), no tool attached: the cost everyone pays
 *   off     a build configured with -DDIFFVIT_NVTX=OFF (--off PATH/diffvit.node), if given
 *   tool    this build under diffvit's recorder (NVTX_INJECTION64_PATH, log to /dev/null): the
 *           cost of a range with its size message, logged; every call is an outermost range, so
 *           the recorder writes its two lines at once (one write(2) per call)
 *   phase   as tool, with every pass inside one phase range (nvtxRangePush), as in a training
 *           step: the recorder writes 64 KiB at a time
 *
 *   node bench/nvtx_overhead.mjs [--off /tmp/build-off/diffvit.node] [--calls 300000] [--rounds 5] [--cases on,off]
 *
 * (An OFF build: cmake -S . -B /tmp/build-off -G Ninja -DDIFFVIT_NVTX=OFF && cmake --build /tmp/build-off.)
 * Cases alternate round by round so drift in the machine's speed hits all of them; each prints
 * the median ns per call of its rounds (each round: the best of 3 passes over `calls` calls) and
 * the median of its per-round differences from 'on' (rounds run back to back, so on a busy
 * machine the paired difference is steadier than the difference of the medians).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function child(addon, calls, phase) {
  const native = createRequire(import.meta.url)(addon);
  const out = new native.NativeBuffer('cpu', 'float32', 16);
  const args = { out, offset: 0, n: 16, value: 1 };
  for (let i = 0; i < 20_000; i++) native.fill(args);  // warm-up (JIT, caches)
  let best = Infinity;
  for (let pass = 0; pass < 3; pass++) {
    if (phase) native.profilerRangePush('pass');
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) native.fill(args);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / calls);
    if (phase) native.profilerRangePop();
  }
  process.stdout.write(JSON.stringify({ ns: best, info: native.profilerInfo?.() ?? null }));
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const { values } = parseArgs({
  options: {
    child: { type: 'string' }, off: { type: 'string' }, phase: { type: 'boolean', default: false },
    calls: { type: 'string', default: '300000' }, rounds: { type: 'string', default: '5' }, cases: { type: 'string' },
  },
});
const calls = Number(values.calls);
if (values.child) {
  child(values.child, calls, values.phase);
} else {
  const on = join(root, 'build', 'Release', 'diffvit.node');
  const recorder = join(root, 'build', 'Release', 'libdiffvit_nvtx_recorder.so');
  const cases = [{ name: 'on', addon: on, env: {} }];
  if (values.off) cases.push({ name: 'off', addon: resolve(values.off), env: {} });
  if (existsSync(recorder)) {
    const env = { NVTX_INJECTION64_PATH: recorder, DIFFVIT_NVTX_LOG: '/dev/null' };
    cases.push({ name: 'tool', addon: on, env }, { name: 'phase', addon: on, env, phase: true });
  }
  if (values.cases) {
    const keep = values.cases.split(',');
    cases.splice(0, cases.length, ...cases.filter((c) => keep.includes(c.name)));
  }
  const results = Object.fromEntries(cases.map((c) => [c.name, []]));
  const infos = {};
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const c of cases) {
      const env = { ...process.env, DIFFVIT_THREADS: '1', ...c.env };
      delete env.NVTX_INJECTION64_PATH;
      Object.assign(env, c.env);
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', c.addon, '--calls', String(calls), ...(c.phase ? ['--phase'] : [])], { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${c.name}: ${r.stderr}`);
      const { ns, info } = JSON.parse(r.stdout);
      results[c.name].push(ns);
      infos[c.name] = info;
    }
  }
  for (const c of cases) {
    const v = results[c.name];
    const paired = c.name !== 'on' && results.on ? `, ${(median(v.map((x, i) => x - results.on[i])) >= 0 ? '+' : '') + median(v.map((x, i) => x - results.on[i])).toFixed(1)} vs on (paired)` : '';
    console.log(`${c.name.padEnd(5)} ${median(v).toFixed(1).padStart(7)} ns/call${paired}  (rounds: ${v.map((x) => x.toFixed(1)).join(', ')}; profilerInfo ${JSON.stringify(infos[c.name])})`);
  }
}
