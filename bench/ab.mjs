#!/usr/bin/env node
/**
 * Before/after benchmark of two builds of diffvit on this machine, in one run: the training step
 * of iuvit-xs/4 and iuvit-t/4 (batch 32, float32 and bf16 GEMMs) and 64-image Heun sampling
 * (18 steps, 35 evaluations). Each case runs in a fresh process per build, the builds alternate
 * round by round (so drift in the machine's speed hits both), and the medians are compared. The
 * first losses and a checksum of the samples must be bit-identical between the builds (training
 * without gradient clipping: since the seam the gradient norm is one float32 reduction on the
 * device, so a clipped step's scale may differ from the old float64 host sum in its last bit).
 *
 *   node bench/ab.mjs BEFORE_ROOT AFTER_ROOT [--rounds 5] [--cases train:iuvit-xs/4,sample] [--in-process] [--out bench/results/ab.json]
 *
 * --in-process loads both builds into this one process and alternates them case by case: no
 * process start-up, page-cache or memory-placement differences between the sides, so on a noisy
 * VM its medians are steadier (2026-12-06, Zen 4 VM: reruns of separate-process rounds moved
 * the same case between -4.6 % and +11.9 %; in-process runs stayed within +0.3 % .. +2.4 %).
 *
 * A root is a checkout with `npm ci` done (dist/ and build/ present), e.g. a `git worktree` of
 * the earlier commit. Plain JavaScript over each build's public API, so any two versions compare.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const CASES = [
  'train:iuvit-xs/4:float32', 'train:iuvit-xs/4:bf16', 'train:iuvit-t/4:float32', 'train:iuvit-t/4:bf16',
  'sample:iuvit-xs/4', 'sample:iuvit-t/4',
];

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Runs one case in this process against the build at `root`: { ms, check }. */
async function child(root, spec) {
  const dv = await import(pathToFileURL(resolve(root, 'dist/lib/index.js')).href);
  const [kind, preset, precision] = spec.split(':');
  if (kind === 'train') {
    const trainer = new dv.Trainer({ ...dv.DEFAULT_TRAIN_CONFIG, model: dv.PRESETS[preset], data: { kind: 'shapes' }, batchSize: 32, matmulPrecision: precision, gradClip: null });
    const losses = [];
    for (let i = 0; i < 3; i++) losses.push(trainer.trainStep().loss); // warm-up, and the bit-identity check
    const times = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      losses.push(trainer.trainStep().loss);
      times.push(performance.now() - t0);
    }
    trainer.dispose();
    return { ms: median(times), check: losses.map((l) => l.toPrecision(17)).join(',') };
  }
  const model = new dv.DiffusionViT({ ...dv.PRESETS[preset], num_classes: 4 }, { seed: 1 });
  const run = () => dv.generate(model, { count: 64, steps: 18, seed: 3 });
  run(); // warm-up
  const times = [];
  let images;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    images = run().images;
    times.push(performance.now() - t0);
  }
  const check = createHash('sha256').update(Buffer.from(images.buffer)).digest('hex').slice(0, 16);
  return { ms: median(times), check };
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: {
  child: { type: 'string' }, rounds: { type: 'string', default: '5' }, out: { type: 'string' }, cases: { type: 'string' },
  'in-process': { type: 'boolean', default: false },
} });

if (values.child) {
  process.stdout.write(JSON.stringify(await child(positionals[0], values.child)) + '\n');
} else {
  const [before, after] = positionals.map((p) => resolve(p));
  if (!before || !after) throw new Error('usage: node bench/ab.mjs BEFORE_ROOT AFTER_ROOT [--rounds N] [--out file.json]');
  const rounds = Number(values.rounds);
  // --cases keeps the cases starting with any of its comma-separated prefixes.
  const prefixes = values.cases?.split(',');
  const cases = prefixes ? CASES.filter((c) => prefixes.some((p) => c.startsWith(p))) : CASES;
  const results = Object.fromEntries(cases.map((c) => [c, { before: [], after: [], checks: { before: new Set(), after: new Set() } }]));
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      // Alternate which build goes first from round to round.
      for (const [side, root] of r % 2 ? [['after', after], ['before', before]] : [['before', before], ['after', after]]) {
        let ms, check;
        if (values['in-process']) {
          ({ ms, check } = await child(root, c));
        } else {
          const p = spawnSync(process.execPath, ['--expose-gc', new URL(import.meta.url).pathname, '--child', c, root], { encoding: 'utf8' });
          if (p.status !== 0) throw new Error(`${side} ${c} failed:\n${p.stderr}`);
          ({ ms, check } = JSON.parse(p.stdout.trim().split('\n').pop()));
        }
        results[c][side].push(ms);
        results[c].checks[side].add(check);
        process.stderr.write(`round ${r + 1}/${rounds} ${c} ${side}: ${ms.toFixed(1)} ms\n`);
      }
    }
  }
  const rows = cases.map((c) => {
    const x = results[c], b = median(x.before), a = median(x.after);
    const identical = x.checks.before.size === 1 && x.checks.after.size === 1 && [...x.checks.before][0] === [...x.checks.after][0];
    return { case: c, beforeMs: b, afterMs: a, afterOverBefore: a / b, identical, before: x.before, after: x.after };
  });
  for (const r of rows) {
    console.log(`${r.case.padEnd(26)} before ${r.beforeMs.toFixed(1).padStart(7)} ms  after ${r.afterMs.toFixed(1).padStart(7)} ms  ${((r.afterOverBefore - 1) * 100).toFixed(1).padStart(5)} %  ${r.identical ? 'bit-identical' : 'RESULTS DIFFER'}`);
  }
  if (values.out) writeFileSync(values.out, JSON.stringify({ date: new Date().toISOString(), before, after, rounds, inProcess: values['in-process'], rows }, null, 2) + '\n');
}
