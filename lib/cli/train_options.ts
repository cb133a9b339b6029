/**
 * The options of `diffvit train` and its --config file, checked before any work: the command
 * line through the shared parser, the config file key by key (unknown keys rejected with the
 * nearest valid name, the file named in every error). Native-free: the help test imports it.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';

import { LR_SCHEDULES } from '../train/schedule.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from '../train/config.js';
import { MODEL_CONFIG_KEYS, PRESETS } from '../models/configs.js';
import type { DatasetSpec } from '../data/types.js';
import { DEFAULT_GUIDANCE, DEFAULT_PRESET, DEFAULT_TRAIN_MINUTES } from './defaults.js';
import { didYouMean, MAX_SEED, numberProblem, type OptionSpec, usage } from './options.js';
import { jsonErrorMessage } from '../json_message.js';

export const TRAIN_OPTIONS = {
  preset: { kind: 'choice', choices: Object.keys(PRESETS), arg: 'NAME', default: DEFAULT_PRESET },
  config: { kind: 'file', arg: 'FILE' },
  data: { kind: 'string', arg: 'SPEC', default: 'shapes' },
  'image-size': { kind: 'int', min: 1, max: 4096, arg: 'N' },
  unconditional: { kind: 'flag' },
  steps: { kind: 'int', min: 1, max: 1e9, arg: 'N' },
  minutes: { kind: 'number', above: 0, max: 1e6, arg: 'M', default: DEFAULT_TRAIN_MINUTES },
  batch: { kind: 'int', min: 1, max: 65536, arg: 'N', default: DEFAULT_TRAIN_CONFIG.batchSize },
  lr: { kind: 'number', above: 0, max: 10, arg: 'X', default: DEFAULT_TRAIN_CONFIG.lr },
  'lr-schedule': { kind: 'choice', choices: LR_SCHEDULES, arg: 'S', default: DEFAULT_TRAIN_CONFIG.lrSchedule },
  warmup: { kind: 'int', min: 0, max: 1e9, arg: 'N', default: DEFAULT_TRAIN_CONFIG.warmupSteps },
  'ema-halflife': { kind: 'number', min: 0, arg: 'N', default: DEFAULT_TRAIN_CONFIG.emaHalfLifeImages },
  'ema-rampup': { kind: 'number', above: 0, arg: 'R', default: DEFAULT_TRAIN_CONFIG.emaRampup },
  'label-dropout': { kind: 'number', min: 0, max: 1, arg: 'P', default: DEFAULT_TRAIN_CONFIG.labelDropout },
  seed: { kind: 'int', min: 0, max: MAX_SEED, arg: 'N', default: DEFAULT_TRAIN_CONFIG.seed },
  'mask-ratio': { kind: 'number', min: 0, below: 1, arg: 'R' },
  'mask-until': { kind: 'number', min: 0, max: 1, arg: 'F', default: DEFAULT_TRAIN_CONFIG.maskUntil },
  'model-guidance': { kind: 'number', min: 0, below: 1, arg: 'W', default: DEFAULT_TRAIN_CONFIG.modelGuidance },
  precision: { kind: 'choice', choices: ['float32', 'bf16'], arg: 'P' },
  device: { kind: 'string', arg: 'D' },
  'cuda-graph': { kind: 'flag' },
  out: { kind: 'out-dir', arg: 'DIR' },
  overwrite: { kind: 'flag' },
  'checkpoint-every': { kind: 'int', min: 1, max: 1e9, arg: 'N', default: 500 },
  'sample-every': { kind: 'int', min: 0, max: 1e9, arg: 'N', default: 800 },
  'no-samples': { kind: 'flag' },
  guidance: { kind: 'number', min: 0, max: 100, arg: 'W', default: DEFAULT_GUIDANCE },
  resume: { kind: 'file', arg: 'FILE' },
  profile: { kind: 'string', optionalValue: true, arg: '[FILE]' },
} as const satisfies Record<string, OptionSpec>;

/** The TrainConfig key each training option sets (a flag overrides the config file's value). */
export const CONFIG_KEY_OF_OPTION = {
  steps: 'steps', batch: 'batchSize', lr: 'lr', 'lr-schedule': 'lrSchedule', warmup: 'warmupSteps',
  'ema-halflife': 'emaHalfLifeImages', 'ema-rampup': 'emaRampup', 'label-dropout': 'labelDropout', seed: 'seed',
  precision: 'matmulPrecision', 'mask-ratio': 'maskRatio', 'mask-until': 'maskUntil',
  'model-guidance': 'modelGuidance',
} as const satisfies Partial<Record<keyof typeof TRAIN_OPTIONS, keyof TrainConfig>>;

/** Config-file keys without an option of their own, and how each is checked. */
const OTHER_CONFIG_KEYS: Record<string, OptionSpec | 'boolean' | 'clip' | 'string'> = {
  weightDecay: { kind: 'number', min: 0, max: 10 },
  gradClip: 'clip',
  hflip: 'boolean',
  maxNonFinite: { kind: 'int', min: 0, max: 1e9 },
  P_mean: { kind: 'number', min: -20, max: 20 },
  P_std: { kind: 'number', above: 0, max: 20 },
  device: 'string',
  cudaGraph: 'boolean',
};

const CONFIG_KEYS = ['model', 'data', ...Object.values(CONFIG_KEY_OF_OPTION), ...Object.keys(OTHER_CONFIG_KEYS)];

/** The keys each data kind takes (lib/data/types.ts DatasetSpec). */
const DATA_KEYS: Record<DatasetSpec['kind'], readonly string[]> = {
  shapes: ['seed', 'size'], folder: ['root', 'imageSize'], cifar10: ['root', 'split'],
  mnist: ['root', 'split', 'imageSize'], cache: ['path'], captions: ['index', 'imageSize'],
};

/** --data shapes | folder:PATH | cifar10:DIR | mnist:DIR | cache:FILE | captions:INDEX.jsonl. */
export function parseDataSpec(spec: string, imageSize: number, command = 'train'): DatasetSpec {
  const [kind, ...rest] = spec.split(':');
  const path = rest.join(':');
  if (kind === 'shapes' && !path) return { kind: 'shapes' };
  if (path && kind === 'folder') return { kind: 'folder', root: path, imageSize };
  if (path && kind === 'cifar10') return { kind: 'cifar10', root: path };
  if (path && kind === 'mnist') return { kind: 'mnist', root: path, imageSize };
  if (path && kind === 'cache') return { kind: 'cache', path };
  if (path && kind === 'captions') return { kind: 'captions', index: path, imageSize };
  return usage(command, `--data SPEC expected shapes, folder:PATH, cifar10:DIR, mnist:DIR, cache:FILE or captions:INDEX.jsonl, received '${spec}'`);
}

/** The data's files must exist before any work: --data folder:PATH and the like. */
export function checkDataPaths(command: string, data: DatasetSpec): void {
  const path = 'root' in data ? data.root : 'path' in data ? data.path : 'index' in data ? data.index : null;
  if (path === null) return;
  const folder = 'root' in data;
  if (!existsSync(path) || statSync(path).isDirectory() !== folder) {
    usage(command, `--data ${data.kind}:${path}: no such ${folder ? 'folder' : 'file'}${existsSync(path) ? ` (it is a ${folder ? 'file' : 'folder'})` : ''}`);
  }
}

/**
 * Reads and checks a --config file: a JSON object whose keys are TrainConfig's (model: a preset
 * name or a model config object; data: a DatasetSpec object). Every error names the file.
 */
export function readTrainConfigFile(path: string): Partial<TrainConfig> {
  const fail = (what: string): never => usage('train', `--config ${path}: ${what}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(e instanceof SyntaxError ? `not valid JSON (${jsonErrorMessage(e)})` : `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) fail('expected a JSON object of training options');
  const config = parsed as Record<string, unknown>;
  const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `'${v}'` : JSON.stringify(v));
  for (const [key, v] of Object.entries(config)) {
    if (!CONFIG_KEYS.includes(key)) fail(`unknown key '${key}'${didYouMean(key, CONFIG_KEYS, "'", "'")}; keys: ${CONFIG_KEYS.join(', ')}`);
    const option = Object.entries(CONFIG_KEY_OF_OPTION).find(([, k]) => k === key)?.[0] as keyof typeof TRAIN_OPTIONS | undefined;
    const spec = option ? TRAIN_OPTIONS[option] : OTHER_CONFIG_KEYS[key];
    if (spec === undefined) continue; // model, data: below
    if (spec === 'boolean' || spec === 'string') {
      if (typeof v !== spec) fail(`'${key}' expected a ${spec}, received ${typeName(v)}`);
    } else if (spec === 'clip') {
      if (v !== null && !(typeof v === 'number' && v > 0 && Number.isFinite(v))) fail(`'${key}' expected a number > 0 or null (no clipping), received ${typeName(v)}`);
    } else if (spec.kind === 'choice') {
      if (typeof v !== 'string' || !(spec.choices as readonly string[]).includes(v)) fail(`'${key}' expected one of ${spec.choices.join(', ')}, received ${typeName(v)}`);
    } else {
      const problem = typeof v === 'number' ? numberProblem(spec, v) : 'a number';
      if (problem) fail(`'${key}' expected ${problem}, received ${typeName(v)}`);
    }
  }
  const model = config.model;
  if (typeof model === 'string') {
    if (!PRESETS[model]) fail(`'model' expected a preset (${Object.keys(PRESETS).join(', ')}) or a model config object, received '${model}'${didYouMean(model, Object.keys(PRESETS))}`);
  } else if (model !== undefined) {
    if (!model || typeof model !== 'object' || Array.isArray(model)) fail(`'model' expected a preset name or a model config object, received ${typeName(model)}`);
    for (const key of Object.keys(model as object)) {
      if (!MODEL_CONFIG_KEYS.includes(key)) fail(`'model' has an unknown key '${key}'${didYouMean(key, MODEL_CONFIG_KEYS, "'", "'")}; model keys: ${MODEL_CONFIG_KEYS.join(', ')}`);
    }
  }
  const data = config.data;
  if (data !== undefined) {
    if (!data || typeof data !== 'object' || Array.isArray(data)) fail(`'data' expected an object such as { "kind": "shapes" }, received ${typeName(data)}`);
    const kind = (data as { kind?: unknown }).kind;
    const kinds = Object.keys(DATA_KEYS);
    if (typeof kind !== 'string' || !kinds.includes(kind)) fail(`'data.kind' expected one of ${kinds.join(', ')}, received ${typeName(kind)}`);
    const allowed = ['kind', ...DATA_KEYS[kind as DatasetSpec['kind']]];
    for (const key of Object.keys(data as object)) {
      if (!allowed.includes(key)) fail(`'data' of kind '${kind}' has an unknown key '${key}'${didYouMean(key, allowed, "'", "'")}; keys: ${allowed.join(', ')}`);
    }
  }
  return config as Partial<TrainConfig>;
}
