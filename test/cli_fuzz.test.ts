/**
 * A fuzz test of the `diffvit` command line: for every command, hundreds of seeded random argument
 * vectors built from its options' boundary values (and typos, stray positionals, missing values),
 * each run up to the point where the command's checks end and its work begins. Every vector must end
 * in success or a one-line error with exit code 1 or 2 — never a stack trace or a changed file
 * outside the output folder. A few random valid vectors run to completion.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { BENCH_OPTIONS } from '../lib/cli/bench_command.js';
import { EVAL_SHAPES_OPTIONS } from '../lib/cli/eval.js';
import { EXPORT_OPTIONS } from '../lib/cli/export.js';
import { FID_OPTIONS } from '../lib/cli/fid.js';
import { INFO_OPTIONS } from '../lib/cli/info.js';
import { MAKE_CAPTIONS_OPTIONS } from '../lib/cli/make_captions.js';
import type { OptionSpec } from '../lib/cli/options.js';
import { PREPARE_OPTIONS } from '../lib/cli/prepare.js';
import { SAMPLE_OPTIONS } from '../lib/cli/sample.js';
import { TRAIN_OPTIONS } from '../lib/cli/train_options.js';
import * as dv from '../lib/index.js';
import { cli, type CliResult, snapshot } from './cli_harness.js';

const VECTORS = 500;
/** Per command, however fast or slow the machine: the vectors stop there (at least 50 run). */
const BUDGET_MS = 20_000;

const root = mkdtempSync(join(tmpdir(), 'diffvit-cli-fuzz-'));
const inputs = join(root, 'in'), outputs = join(root, 'out'), cwd = join(root, 'cwd');
const previousCwd = process.cwd();
const files = {
  checkpoint: join(inputs, 'model.safetensors'),
  training: join(inputs, 'run', 'checkpoint.safetensors'),
  text: join(inputs, 'notes.txt'),
  config: join(inputs, 'config.json'),
  badConfig: join(inputs, 'bad.json'),
  captions: join(inputs, 'captions.txt'),
  images: join(inputs, 'images'),
};
const TINY = { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 1, heads: 2 } as const;

beforeAll(async () => {
  for (const d of [inputs, outputs, cwd, files.images]) mkdirSync(d, { recursive: true });
  const model = new dv.DiffusionViT({ ...TINY, num_classes: 4 }, { seed: 1 });
  dv.saveCheckpoint(files.checkpoint, model);
  model.dispose();
  writeFileSync(files.text, 'not a checkpoint\n');
  writeFileSync(files.config, JSON.stringify({ model: TINY, warmupSteps: 1 }));
  writeFileSync(files.badConfig, JSON.stringify({ stepz: 3 }));
  writeFileSync(files.captions, 'a red circle\n');
  writeFileSync(join(files.images, 'a.png'), readFileSync(files.text)); // a corrupt image
  const r = await cli(['train', '--config', files.config, '--steps', '2', '--batch', '4', '--no-samples', '--precision', 'float32', '--out', join(inputs, 'run')]);
  expect(r.code, r.stderr).toBe(0);
  process.chdir(cwd);
});
afterAll(() => {
  process.chdir(previousCwd);
  rmSync(root, { recursive: true, force: true });
});

/** mulberry32: the vectors are the same on every run (a failure names its vector). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values worth trying for an option: its boundaries, junk, and paths of every kind. */
function candidates(name: string, spec: OptionSpec): string[] {
  const junk = ['', 'abc', '-1', '0', '2.5', 'NaN', 'Infinity', '1e309', ' 7', '0x10', '-0'];
  const paths = [files.checkpoint, files.training, files.text, files.config, inputs, join(inputs, 'missing'), ''];
  switch (spec.kind) {
    case 'int':
    case 'number': {
      const low = spec.kind === 'int' ? spec.min : spec.min ?? spec.above ?? 0;
      const high = spec.max ?? 1e6;
      return [...junk, String(low - 1), String(low), String(low + 1), String(high), String(high + 1), String(spec.default ?? 3), '1', '2'];
    }
    case 'choice':
      return [...spec.choices, ...spec.choices.map((c) => c.toUpperCase()), '', 'x'];
    case 'file':
    case 'dir':
      return [...paths, files.images];
    case 'out-file':
      return [join(outputs, 'a.png'), join(outputs, 'b.safetensors'), join(outputs, 'c.json'), join(outputs, 'deep', 'er', 'd.png'), outputs, join(outputs, 'x.jpg'), files.text, ''];
    case 'out-dir':
      return [join(outputs, 'folder'), join(outputs, 'new', 'folder'), outputs, files.text, ''];
    case 'string':
      return {
        labels: ['all', '0,1,2,3', '3', '4', '9', '-1', '0,,1', 'a', ''],
        data: ['shapes', `folder:${files.images}`, `folder:${inputs}`, 'cifar10:/nope', `cache:${files.text}`, `captions:${files.text}`, 'mnist:', 'bogus', ''],
        device: ['cpu', 'cuda', 'cuda:1', 'cpu:3', 'mirror', 'tpu', ''],
        'guidance-interval': ['1,inf', '0,1', '2,1', 'a,b', '1', ''],
        profile: ['', join(outputs, 'trace.json'), outputs],
        weights: [files.text, join(inputs, 'missing')],
        'ref-stats': [join(outputs, 'ref.safetensors'), files.text, join(inputs, 'missing')],
      }[name] ?? paths;
    default:
      return [];
  }
}

/** A random command line for `specs`: 0-6 options (some with a missing or =-joined value), typos, positionals. */
function vector(random: () => number, specs: Record<string, OptionSpec>, required: string[]): string[] {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const names = Object.keys(specs);
  const args: string[] = [];
  for (const name of required) if (random() < 0.8) args.push(`--${name}`, pick(candidates(name, specs[name])));
  const n = Math.floor(random() * 7);
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.06) {
      args.push(pick(['--stpes', '-x', 'positional', '--', '-', '--help=3', '--json=1', '--no-such']));
      continue;
    }
    const name = pick(names), spec = specs[name];
    const flag = 'short' in spec && spec.short && random() < 0.3 ? `-${spec.short}` : `--${name}`;
    if (spec.kind === 'flag') args.push(flag);
    else if (r < 0.12) args.push(flag); // its value missing
    else if (r < 0.2 && flag.startsWith('--')) args.push(`${flag}=${pick(candidates(name, spec))}`);
    else args.push(flag, pick(candidates(name, spec)));
  }
  return args;
}

/** The properties every outcome must have. */
function checkOutcome(argv: string[], r: CliResult): void {
  const where = `diffvit ${argv.join(' ')}\n${r.stderr}`;
  expect([0, 1, 2], where).toContain(r.code);
  expect(`${r.stdout}${r.stderr}`, where).not.toMatch(/^\s+at .*[(:]\d+/m);
  if (r.code !== 0) {
    const lines = r.stderr.trim().split('\n');
    expect(lines, where).toHaveLength(1);
    expect(lines[0], where).toMatch(/^diffvit[ .:]/);
  }
  if (r.code === 2) expect(r.reachedWork, where).toBe(false);
}

const COMMANDS: [command: string[], specs: Record<string, OptionSpec>, required: string[]][] = [
  [['train'], TRAIN_OPTIONS, []],
  [['sample'], SAMPLE_OPTIONS, ['checkpoint']],
  [['eval', 'shapes'], EVAL_SHAPES_OPTIONS, ['checkpoint']],
  [['eval', 'fid'], FID_OPTIONS, ['checkpoint', 'weights', 'save-stats']],
  [['prepare'], PREPARE_OPTIONS, ['data', 'out']],
  [['export'], EXPORT_OPTIONS, ['checkpoint', 'out']],
  [['make-captions'], MAKE_CAPTIONS_OPTIONS, ['out']],
  [['info'], INFO_OPTIONS, []],
  [['bench'], BENCH_OPTIONS, []],
];

describe('CLI fuzz: random and boundary argument vectors', () => {
  test.each(COMMANDS)('%j: every vector ends in success or a one-line error (exit 1/2), no file changed outside the output folder', async (command, specs, required) => {
    const random = rng(command.join(' ').length * 7919 + 17);
    const before = { inputs: snapshot(inputs), cwd: snapshot(cwd) };
    const counts = { ok: 0, usage: 0, failure: 0 };
    const start = performance.now();
    for (let i = 0; i < VECTORS && (i < 50 || performance.now() - start < BUDGET_MS); i++) {
      const argv = [...command, ...vector(random, specs, required)];
      const r = await cli(argv, { stopBeforeWork: true });
      checkOutcome(argv, r);
      counts[r.code === 0 ? 'ok' : r.code === 2 ? 'usage' : 'failure']++;
    }
    expect({ inputs: snapshot(inputs), cwd: snapshot(cwd) }).toEqual(before);
    // The vectors reach both sides of the checks.
    expect(counts.usage).toBeGreaterThan(0);
    if (command[0] !== 'info') expect(counts.ok + counts.failure).toBeGreaterThan(0);
  });

  test('random valid command lines run to completion: sample, export, make-captions, train', async () => {
    const random = rng(5);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
    const before = snapshot(inputs);
    const runs: string[][] = [];
    for (let i = 0; i < 12; i++) {
      runs.push(['sample', '--checkpoint', pick([files.checkpoint, files.training]), '-n', String(1 + Math.floor(random() * 3)), '--steps', String(1 + Math.floor(random() * 2)),
        '--sampler', pick(dv.SAMPLERS), '--guidance', pick(['0', '1', '2.5']), '--seed', String(Math.floor(random() * 1e9)),
        ...pick([[], ['--labels', pick(['all', '0,3', '4'])]]), ...pick([[], ['--churn', '0.5']]), ...pick([[], ['--batch', '2']]),
        ...(random() < 0.5 ? ['--out', join(outputs, `s${i}.png`), '--columns', String(1 + Math.floor(random() * 4))] : ['--folder', '--out', join(outputs, `s${i}`)])]);
    }
    runs.push(['export', '--checkpoint', files.training, '--out', join(outputs, 'e.safetensors'), pick(['--ema', '--raw'])]);
    runs.push(['export', '--checkpoint', files.checkpoint, '--out', join(outputs, 'm.safetensors'), '--raw']);
    runs.push(['make-captions', '--out', join(outputs, 'captions'), '-n', '3', '--size', '8', '--context-len', '2', '--context-dim', '4']);
    runs.push(['train', '--config', files.config, '--steps', '2', '--batch', '2', '--sample-every', '1', '--checkpoint-every', '1', '--out', join(outputs, 'run')]);
    for (const argv of runs) {
      const r = await cli(argv);
      checkOutcome(argv, r);
      expect(r.code, `diffvit ${argv.join(' ')}\n${r.stderr}`).toBe(0);
    }
    expect(snapshot(inputs)).toEqual(before);
    expect(existsSync(join(outputs, 'run', 'samples', 'final.png'))).toBe(true);
  });
});
