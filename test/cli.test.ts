/**
 * The `diffvit` command line as a user meets it: runs never destroy earlier work, numbers and paths
 * are checked before any work with messages naming the option, the value and what is allowed,
 * usage errors exit 2, and every command's --help prints the defaults the code uses.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { COMMANDS } from '../lib/cli/cli.js';
import { BENCH_OPTIONS } from '../lib/cli/bench_command.js';
import { EVAL_SHAPES_OPTIONS } from '../lib/cli/eval.js';
import { EXPORT_OPTIONS } from '../lib/cli/export.js';
import { FID_OPTIONS } from '../lib/cli/fid.js';
import { INFO_OPTIONS } from '../lib/cli/info.js';
import { MAKE_CAPTIONS_OPTIONS } from '../lib/cli/make_captions.js';
import type { OptionSpec } from '../lib/cli/options.js';
import { nativePrecision, trainPrecision } from '../lib/cli/precision.js';
import { PREPARE_OPTIONS } from '../lib/cli/prepare.js';
import { SAMPLE_OPTIONS } from '../lib/cli/sample.js';
import { TRAIN_OPTIONS } from '../lib/cli/train_options.js';
import { DEFAULT_MASK_RATIO } from '../lib/cli/defaults.js';
import * as dv from '../lib/index.js';
import { cli, snapshot } from './cli_harness.js';

const dir = mkdtempSync(join(tmpdir(), 'diffvit-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A 2-block IU-ViT on the 32×32 shapes: a few training steps take well under a second. */
const TINY_MODEL = { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 2, heads: 2 };
const tinyConfig = join(dir, 'tiny.json');
const FAST = ['--config', tinyConfig, '--batch', '4', '--no-samples', '--precision', 'float32'];
/** A run of 2 steps: its folder and checkpoint. */
const run1 = join(dir, 'run1');
const run1Checkpoint = join(run1, 'checkpoint.safetensors');

beforeAll(async () => {
  writeFileSync(tinyConfig, JSON.stringify({ model: TINY_MODEL, warmupSteps: 1 }));
  const r = await cli(['train', ...FAST, '--steps', '2', '--out', run1]);
  expect(r.code, r.stderr).toBe(0);
});

const steps = (metrics: string) => readFileSync(metrics, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);

describe('a run never destroys earlier work', () => {
  test('train into a folder that holds a run is refused before any work — with good options or bad (--batch 0)', async () => {
    const before = snapshot(run1);
    for (const extra of [[], ['--batch', '0']]) {
      const r = await cli(['train', ...FAST, '--steps', '3', '--out', run1, ...extra]);
      expect(r.code).toBe(2);
      expect(r.reachedWork).toBe(false);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const r = await cli(['train', ...FAST, '--steps', '3', '--out', run1]);
    expect(r.stderr).toMatch(/^diffvit train: --out .*run1 holds earlier work \(checkpoint\.safetensors, config\.json, loss\.svg, \.\.\.\): continue its run with --resume .*checkpoint\.safetensors, replace it with --overwrite, or choose another --out\. See 'diffvit train --help'\.$/m);
    expect(snapshot(run1)).toEqual(before);
  });

  test('a run that fails before its first step writes nothing — with --overwrite the earlier run stays whole', async () => {
    const before = snapshot(run1);
    const empty = join(dir, 'no-images');
    mkdirSync(empty, { recursive: true });
    const r = await cli(['train', ...FAST, '--steps', '3', '--out', run1, '--overwrite', '--data', `folder:${empty}`, '--image-size', '32']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no-images/);
    expect(snapshot(run1)).toEqual(before);
    const fresh = join(dir, 'fresh');
    expect((await cli(['train', ...FAST, '--steps', '3', '--out', fresh, '--data', `folder:${empty}`, '--image-size', '32'])).code).toBe(1);
    expect(existsSync(fresh)).toBe(false);
  });

  test('--resume without --out continues in the checkpoint\'s folder: one metrics file, config.json, the later checkpoint', async () => {
    const copy = join(dir, 'resumed');
    mkdirSync(copy);
    for (const f of ['checkpoint.safetensors', 'metrics.jsonl', 'config.json']) writeFileSync(join(copy, f), readFileSync(join(run1, f)));
    const r = await cli(['train', '--resume', join(copy, 'checkpoint.safetensors'), '--steps', '4', '--no-samples']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/output in .*resumed, resumed at step 2/);
    expect(steps(join(copy, 'metrics.jsonl'))).toEqual([1, 2, 3, 4]);
    const config = JSON.parse(readFileSync(join(copy, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ steps: 4, batchSize: 4, model: TINY_MODEL, run: { resumedAtStep: 2 } });
    const { metadata } = dv.readSafetensorsHeader(join(copy, 'checkpoint.safetensors'));
    expect(JSON.parse(metadata.trainer).step).toBe(4);
    // A finished run is not silently "resumed" into nothing.
    const done = await cli(['train', '--resume', join(copy, 'checkpoint.safetensors')]);
    expect(done.code).toBe(2);
    expect(done.stderr).toMatch(/the run in .* is complete \(step 4 of 4\): give --steps N > 4 to train on/);
    // --resume keeps the run's model and data.
    const changed = await cli(['train', '--resume', join(copy, 'checkpoint.safetensors'), '--steps', '6', '--preset', 'iuvit-s/2']);
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/--preset cannot change them/);
  });

  test('the run\'s full config is saved as config.json; the default folder is named after the config file, with -2 when taken', async () => {
    const config = JSON.parse(readFileSync(join(run1, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ steps: 2, batchSize: 4, lr: dv.DEFAULT_TRAIN_CONFIG.lr, data: { kind: 'shapes' }, model: TINY_MODEL, matmulPrecision: 'float32' });
    expect(config.run).toMatchObject({ out: run1, samples: false, resumedFrom: null });
    // A new IU-ViT run trains on masked tokens by default (docs/training-notes.md §15).
    expect(config).toMatchObject({ maskRatio: DEFAULT_MASK_RATIO, maskUntil: 0.75 });
    // The default folder, from a working directory holding runs/<preset>-shapes already.
    const cwd = process.cwd();
    const work = join(dir, 'cwd');
    mkdirSync(join(work, 'runs', 'tiny-shapes'), { recursive: true });
    writeFileSync(join(work, 'runs', 'tiny-shapes', 'metrics.jsonl'), '');
    process.chdir(work);
    try {
      const r = await cli(['train', '--config', tinyConfig, '--steps', '1', '--batch', '2', '--no-samples']);
      expect(r.code, r.stderr).toBe(0);
      expect(readdirSync(join(work, 'runs')).sort()).toEqual(['tiny-shapes', 'tiny-shapes-2']);
      expect(existsSync(join(work, 'runs', 'tiny-shapes-2', 'checkpoint.safetensors'))).toBe(true);
      expect(readFileSync(join(work, 'runs', 'tiny-shapes', 'metrics.jsonl'), 'utf8')).toBe('');
      // A preset's run is named after the preset ('/' as '_'): checked up to the work.
      const preset = await cli(['train', '--preset', 'iuvit-t/8', '--steps', '1'], { stopBeforeWork: true });
      expect(preset.code, preset.stderr).toBe(0);
    } finally {
      process.chdir(cwd);
    }
  });
});

test('masked tokens by default only where the model can drop them: a U-Net and --mask-ratio 0 train on every token, a config file may set the ratio', async () => {
  const unetConfig = join(dir, 'unet.json');
  writeFileSync(unetConfig, JSON.stringify({ model: { arch: 'unet', img_size: 32, in_chans: 3, dim: 8, heads: 2, channels: [4], norm_groups: 2 } }));
  const ratio = async (name: string, args: string[]) => {
    const out = join(dir, `mask-${name}`);
    const r = await cli(['train', ...args, '--steps', '1', '--batch', '2', '--no-samples', '--precision', 'float32', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).maskRatio;
  };
  expect(await ratio('unet', ['--config', unetConfig])).toBe(0);
  expect(await ratio('off', ['--config', tinyConfig, '--mask-ratio', '0'])).toBe(0);
  const half = join(dir, 'half.json');
  writeFileSync(half, JSON.stringify({ model: TINY_MODEL, maskRatio: 0.5 }));
  expect(await ratio('file', ['--config', half])).toBe(0.5);
});

describe('--minutes sizes a run by wall time', () => {
  test('the step count is chosen as the run goes and kept in config.json and the checkpoint', async () => {
    const out = join(dir, 'timed');
    const r = await cli(['train', ...FAST, '--minutes', '0.03', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/0\.03 minutes \(steps sized to them as the run goes\) of batch 4/);
    expect(r.stderr).toMatch(/done at step \d+ after \d\d:\d\d of the 0\.03-minute budget/);
    const done = steps(join(out, 'metrics.jsonl'));
    const total = done.length;
    // Whatever the machine's speed: at least one estimate (a budget spent by then ends the run there).
    expect(total).toBeGreaterThanOrEqual(dv.RESIZE_EVERY);
    expect(done).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ steps: total, run: { minutes: 0.03 } });
    const { metadata } = dv.readSafetensorsHeader(join(out, 'checkpoint.safetensors'));
    expect(JSON.parse(metadata.train_config).steps).toBe(total);
  });

  test('a config file\'s steps are kept (only a run with no step count at all is sized by time)', async () => {
    const counted = join(dir, 'counted.json'), out = join(dir, 'counted');
    writeFileSync(counted, JSON.stringify({ model: TINY_MODEL, warmupSteps: 1, steps: 3 }));
    const r = await cli(['train', '--config', counted, '--batch', '4', '--no-samples', '--precision', 'float32', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/3 steps of batch 4/);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject({ steps: 3, run: { minutes: null } });
  });

  test('with --steps or --resume it is a usage error', async () => {
    const both = await cli(['train', ...FAST, '--minutes', '1', '--steps', '5', '--out', join(dir, 'never')], { stopBeforeWork: true });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^diffvit train: --minutes M and --steps N both set the run's length: give one of them/);
    const resumed = await cli(['train', '--resume', run1Checkpoint, '--minutes', '1'], { stopBeforeWork: true });
    expect(resumed.code).toBe(2);
    expect(resumed.stderr).toMatch(/--minutes sizes a new run; a resumed run keeps the step count it was given/);
  });
});

describe('numbers and paths are checked before any work', () => {
  /** Runs a command line stopped before its work; expects a usage error (exit 2) with this one-line message. */
  const rejected = async (argv: string[], message: RegExp) => {
    const r = await cli(argv, { stopBeforeWork: true });
    expect(r.reachedWork, argv.join(' ')).toBe(false);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(message);
  };

  test('the reported bad numbers: sample --count 0 / 2.5, --columns 0; train --batch -4, --steps -5', async () => {
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--count', '0'], /^diffvit sample: --count N expected an integer from 1 to 100000, received '0'\. See 'diffvit sample --help'\.$/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '-n', '2.5'], /--count N expected an integer from 1 to 100000, received '2\.5'/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--columns', '0'], /--columns N expected an integer from 1 to 1024, received '0'/);
    await rejected(['train', '--batch', '-4'], /^diffvit train: --batch N expected an integer from 1 to 65536, received '-4'/);
    await rejected(['train', '--steps', '-5'], /--steps N expected an integer from 1 to 1000000000, received '-5'/);
    await rejected(['train', '--lr', 'NaN'], /--lr X expected a number > 0 and <= 10, received 'NaN'/);
    await rejected(['train', '--label-dropout', '1.5'], /--label-dropout P expected a number from 0 to 1, received '1\.5'/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--seed', '-1'], /--seed N expected an integer from 0 to 4294967295, received '-1'/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--labels', '0,9'], /--labels L expected 'all' or classes in \[0, 4\]/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--sampler', 'huen'], /--sampler NAME expected one of heun, euler, ddim, dpmpp2m, received 'huen' \(did you mean heun\?\)/);
    await rejected(['train', '--stpes', '3'], /^diffvit train: unknown option '--stpes' \(did you mean --steps\?\)/);
  });

  test('sample: an existing folder or a non-.png --out is refused before sampling; --folder takes a folder', async () => {
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--out', dir], /--out PATH expected a file to write, not an existing folder/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--out', join(dir, 'x.jpg')], /--out PATH expected a \.png file, received '.*x\.jpg'/);
    await rejected(['sample', '--checkpoint', run1Checkpoint, '--folder', '--out', tinyConfig], /--out PATH expected a folder, not an existing file/);
    await rejected(['sample', '--checkpoint', join(dir, 'nope.safetensors')], /--checkpoint FILE expected an existing file \(no such file\)/);
    const ok = await cli(['sample', '--checkpoint', run1Checkpoint, '--count', '3', '--steps', '2', '--out', join(dir, 'three.png')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readFileSync(join(dir, 'three.png')).subarray(1, 4).toString()).toBe('PNG');
  });

  test('sample --guide (autoguidance): a checkpoint of the same kind guides, one of other classes or sizes is refused before any work', async () => {
    const guide = join(dir, 'guide.safetensors');
    const weak = new dv.DiffusionViT({ ...TINY_MODEL, num_classes: 4 } as dv.ModelConfig, { seed: 7 });
    dv.saveCheckpoint(guide, weak);
    weak.dispose();
    const args = ['sample', '--checkpoint', run1Checkpoint, '--labels', 'all', '-n', '1', '--steps', '3', '--guidance', '3'];
    expect((await cli([...args, '--out', join(dir, 'cfg.png')])).code).toBe(0);
    const guided = await cli([...args, '--guide', guide, '--out', join(dir, 'auto.png')]);
    expect(guided.code, guided.stderr).toBe(0);
    expect(readFileSync(join(dir, 'auto.png')).equals(readFileSync(join(dir, 'cfg.png')))).toBe(false);
    const threeClasses = join(dir, 'guide-3.safetensors');
    const other = new dv.DiffusionViT({ ...TINY_MODEL, num_classes: 3 } as dv.ModelConfig);
    dv.saveCheckpoint(threeClasses, other);
    other.dispose();
    await rejected([...args, '--guide', threeClasses, '--out', join(dir, 'never.png')], /^diffvit sample: --guide .*guide-3\.safetensors: expected a model with the --checkpoint's num_classes \(4\), the guide has 3\./);
    await rejected(['eval', 'shapes', '--checkpoint', run1Checkpoint, '--guide', threeClasses], /^diffvit eval shapes: --guide .*: expected a model with the --checkpoint's num_classes \(4\), the guide has 3\./);
    const notCheckpoint = await cli([...args, '--guide', tinyConfig, '--out', join(dir, 'never.png')], { stopBeforeWork: true });
    expect([notCheckpoint.code, notCheckpoint.reachedWork]).toEqual([1, false]);
    expect(notCheckpoint.stderr).toMatch(/tiny\.json: header length \d+ does not fit the 108-byte file \(truncated or not safetensors\)/);
    expect(existsSync(join(dir, 'never.png'))).toBe(false);
  });

  test('--config: the file is named in every error; unknown keys are refused with the nearest valid name', async () => {
    const config = (name: string, body: string) => {
      const path = join(dir, name);
      writeFileSync(path, body);
      return path;
    };
    const typo = config('typo.json', JSON.stringify({ batchsize: 8 }));
    await rejected(['train', '--config', typo], new RegExp(`^diffvit train: --config ${typo}: unknown key 'batchsize' \\(did you mean 'batchSize'\\?\\); keys: model, data, steps, batchSize`));
    await rejected(['train', '--config', config('model-typo.json', JSON.stringify({ model: { ...TINY_MODEL, heds: 2 } }))], /model-typo\.json: 'model' has an unknown key 'heds' \(did you mean 'heads'\?\)/);
    await rejected(['train', '--config', config('bad.json', '{ "steps": ')], /bad\.json: not valid JSON/);
    await rejected(['train', '--config', config('neg.json', JSON.stringify({ batchSize: -4 }))], /neg\.json: 'batchSize' expected an integer from 1 to 65536, received -4/);
    await rejected(['train', '--config', config('data.json', JSON.stringify({ data: { kind: 'shapes', sise: 3 } }))], /data\.json: 'data' of kind 'shapes' has an unknown key 'sise' \(did you mean 'size'\?\)/);
    await rejected(['train', '--config', config('preset.json', JSON.stringify({ model: 'iuvit-xs/5' }))], /preset\.json: 'model' expected a preset .* received 'iuvit-xs\/5' \(did you mean iuvit-xs\/4\?\)/);
  });

  test('eval shapes checks the checkpoint\'s classes before its classifier; eval without an evaluation and a missing required option exit 2', async () => {
    const threeClasses = join(dir, 'three-classes.safetensors');
    const model = new dv.DiffusionViT({ ...TINY_MODEL, num_classes: 3 } as dv.ModelConfig);
    dv.saveCheckpoint(threeClasses, model);
    model.dispose();
    const classifier = join(dir, 'classifier.safetensors');
    await rejected(['eval', 'shapes', '--checkpoint', threeClasses, '--classifier', classifier], /expected a class-conditional model of the 4 shapes classes, the checkpoint has num_classes 3/);
    expect(existsSync(classifier)).toBe(false);
    await rejected(['eval'], /^diffvit eval: which evaluation\? shapes or fid\./);
    await rejected(['eval', 'shapes', '--checkpoint', run1Checkpoint, '--device', 'tpu'], /^diffvit eval shapes: --device D: argument '--device' expected one of the devices of this build/);
    await rejected(['eval', 'fid', '--data', 'shapes', '--ref-stats', join(dir, 'ref.safetensors'), '--weights', tinyConfig, '--device', 'cpu'], /--device applies to --checkpoint \(its sampling\)/);
    await rejected(['eval', 'shape'], /unknown evaluation 'shape' \(available: shapes, fid\) \(did you mean shapes\?\)/);
    await rejected(['sample'], /^diffvit sample: --checkpoint FILE is required\./);
    await rejected(['export', '--checkpoint', run1Checkpoint], /^diffvit export: --out FILE is required\./);
    await rejected(['traim'], /^diffvit: unknown command 'traim' \(did you mean train\?\)\. Commands: train, prepare/);
  });
});

describe('diffvit export', () => {
  test('writes the EMA weights (default) or the raw ones; the file loads; an existing --out needs --force', async () => {
    const out = join(dir, 'weights.safetensors');
    const r = await cli(['export', '--checkpoint', run1Checkpoint, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote .*weights\.safetensors \(EMA weights of step 2: \d+ tensors, [\d.]+ MiB\)/);
    const { model } = dv.loadCheckpoint(out);
    const { model: fromRun } = dv.loadCheckpoint(run1Checkpoint);
    for (const [name, t] of model.stateDict()) expect(t.data()).toEqual(fromRun.stateDict().get(name)!.data());
    model.dispose();
    fromRun.dispose();
    expect(statSync(out).size).toBeLessThan(statSync(run1Checkpoint).size / 3);

    const again = await cli(['export', '--checkpoint', run1Checkpoint, '--out', out, '--raw']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--out .*weights\.safetensors exists: give --force to replace it/);
    const raw = await cli(['export', '--checkpoint', run1Checkpoint, '--out', out, '--raw', '--force']);
    expect(raw.code, raw.stderr).toBe(0);
    expect(dv.readSafetensorsHeader(out).metadata.weights).toBe('raw');
    expect((await cli(['export', '--checkpoint', run1Checkpoint, '--out', join(dir, 'w.bin')])).stderr).toMatch(/--out FILE expected a \.safetensors file/);
  });
});

/** Each command's help (as `diffvit <command> --help` prints it) and its option specs. */
const HELP_CASES: [argv: string[], specs: Record<string, OptionSpec>][] = [
  [['train', '--help'], TRAIN_OPTIONS],
  [['prepare', '--help'], PREPARE_OPTIONS],
  [['sample', '--help'], SAMPLE_OPTIONS],
  [['eval', '--help'], EVAL_SHAPES_OPTIONS],
  [['eval', 'fid', '--help'], FID_OPTIONS],
  [['export', '--help'], EXPORT_OPTIONS],
  [['make-captions', '--help'], MAKE_CAPTIONS_OPTIONS],
  [['info', '--help'], INFO_OPTIONS],
  [['bench', '--help'], BENCH_OPTIONS],
];

/**
 * Defaults the help describes in words where the code has no single value (the option's value
 * depends on others), with why.
 */
const DESCRIBED_DEFAULTS: Record<string, string> = {
  'train --profile': 'the trace goes into the run folder, <out>/profile.trace.json',
  'train --steps': 'as many as fit --minutes, or the config file\'s steps',
  'sample --out': 'samples.png, or the folder samples/ with --folder',
  'eval --classifier': 'a versioned file in ~/.cache/diffvit',
  'eval fid --weights': 'from $DIFFVIT_INCEPTION',
  'eval fid --count': 'all the data, or 10000 samples of a checkpoint',
  'prepare --image-size': 'required for folders; MNIST pads to 32',
};

/** The help's option blocks: `--name` -> its text (continuation lines included). */
function helpBlocks(help: string): Map<string, string> {
  const blocks = new Map<string, string>();
  let current: string | null = null;
  for (const line of help.split('\n')) {
    const start = /^ {2}(?:-\w, )?--([a-z0-9-]+)/.exec(line);
    if (start) {
      current = start[1];
      blocks.set(current, line);
    } else if (current && /^ {6,}\S/.test(line)) {
      blocks.set(current, blocks.get(current) + ' ' + line.trim());
    } else {
      current = null;
    }
  }
  return blocks;
}

describe('help, defaults and exit codes agree', () => {
  test.each(HELP_CASES)('%j: every option documented, every default printed as the code has it', async (argv, specs) => {
    const r = await cli(argv);
    expect(r.code).toBe(0);
    const blocks = helpBlocks(r.stdout);
    const command = argv.slice(0, -1).join(' ');
    expect([...blocks.keys()].sort()).toEqual([...Object.keys(specs), 'help'].sort());
    for (const [name, spec] of Object.entries(specs)) {
      const block = blocks.get(name)!;
      // "(default X" / "default X;" — a value; "default:" introduces words (see DESCRIBED_DEFAULTS)
      const printed = /\bdefault ([^\s;),:]+)/.exec(block)?.[1];
      const key = `${command} --${name}`;
      if ('default' in spec && spec.default !== undefined) {
        expect(printed, `${key}: the help should print (default ${spec.default})`).toBe(String(spec.default));
      } else if (printed !== undefined) {
        expect(DESCRIBED_DEFAULTS[key], `${key}: the help prints a default (${printed}) the code does not have`).toBeDefined();
      }
      if ('short' in spec && spec.short) expect(block, key).toMatch(new RegExp(`^ {2}-${spec.short}, --${name}\\b`));
    }
  });

  test('exit codes: 0 for help and version, 2 for usage errors everywhere, 1 for failures while running', async () => {
    expect((await cli(['--version'])).stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
    expect((await cli([])).code).toBe(2);
    expect((await cli(['help', 'sample'])).stdout).toMatch(/^diffvit sample --checkpoint FILE/);
    for (const name of Object.keys(COMMANDS)) {
      const r = await cli([name, '--no-such-option'], { stopBeforeWork: true });
      expect(r.code, name).toBe(2);
      expect(r.stderr, name).toMatch(new RegExp(`^diffvit ${name}: unknown option '--no-such-option'.* See 'diffvit ${name} --help'\\.\\n$`));
    }
    const corrupt = join(dir, 'corrupt.safetensors');
    writeFileSync(corrupt, 'not a safetensors file at all');
    const r = await cli(['sample', '--checkpoint', corrupt]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/corrupt\.safetensors/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('info reports the precision train runs at', async () => {
    const r = await cli(['info', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).trainPrecision).toEqual(trainPrecision());
    expect((await cli(['info'])).stdout).toMatch(new RegExp(`^matmul +train: ${trainPrecision().precision} `, 'm'));
  });

  test('train\'s default precision: bf16 on AMX and on AMD\'s vdpbf16ps, float32 on Intel\'s vdpbf16ps and without native bf16', () => {
    const xeon = 'Intel(R) Xeon(R) Platinum 8488C', epyc = 'AMD EPYC 9R14 96-Core Processor';
    expect(nativePrecision('amx', xeon)).toEqual({ precision: 'bf16', source: 'native bf16' });
    expect(nativePrecision('avx512bf16', xeon)).toEqual({ precision: 'float32', source: 'intel vdpbf16ps' });
    expect(nativePrecision('avx512bf16', 'Intel(R) Xeon(R) Processor')).toEqual({ precision: 'float32', source: 'intel vdpbf16ps' });
    expect(nativePrecision('avx512bf16', epyc)).toEqual({ precision: 'bf16', source: 'native bf16' });
    expect(nativePrecision('avx512bf16', 'unknown')).toEqual({ precision: 'bf16', source: 'native bf16' });
    for (const cpu of [xeon, epyc]) expect(nativePrecision('emulated', cpu)).toEqual({ precision: 'float32', source: 'default' });
  });
});
