/**
 * `diffvit train`: EDM training from the command line. With no arguments it trains the small
 * class-conditional IU-ViT preset on the built-in `shapes` data and samples a grid at the end.
 * Writes <out>/metrics.jsonl, <out>/samples/step-NNNNNN.png, <out>/checkpoint.safetensors,
 * <out>/loss.svg. Ctrl-C finishes the current step, saves a checkpoint and exits. --profile records
 * steps 3-12 with the built-in profiler: <out>/profile.trace.json and a table at the end.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { PrefetchLoader } from '../data/prefetch.js';
import { generate } from '../diffusion/sample.js';
import { imageGridPNG } from '../image/grid.js';
import { lineChartSVG, smooth } from '../image/plot.js';
import { CaptionDataset } from '../data/captions.js';
import { createDataset, type DatasetSpec } from '../data/dataset.js';
import { tensor } from '../ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { type ModelConfig, PRESETS } from '../models/configs.js';
import { Profiler, type ProfileReport } from '../profiler/index.js';
import { autocast } from '../tensor/autocast.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../train/trainer.js';
import { LR_SCHEDULES, type LrSchedule } from '../train/schedule.js';
import { deviceOption } from './device.js';
import { DEFAULT_PRESET, TRAIN_HELP } from './help.js';
import { precisionOption, trainPrecision } from './precision.js';
import { optionalValue, profileOption, profileWindow } from './profile.js';
import { ProgressBar } from './progress.js';

/** --data shapes | folder:PATH | cifar10:DIR | mnist:DIR | cache:FILE | captions:INDEX.jsonl; `command` prefixes the error. */
export function parseDataSpec(spec: string, imageSize: number, command = 'diffvit train'): DatasetSpec {
  const [kind, ...rest] = spec.split(':');
  const path = rest.join(':');
  if (kind === 'shapes' && !path) return { kind: 'shapes' };
  if (path && kind === 'folder') return { kind: 'folder', root: path, imageSize };
  if (path && kind === 'cifar10') return { kind: 'cifar10', root: path };
  if (path && kind === 'mnist') return { kind: 'mnist', root: path, imageSize };
  if (path && kind === 'cache') return { kind: 'cache', path };
  if (path && kind === 'captions') return { kind: 'captions', index: path, imageSize };
  throw new Error(`${command}: --data expected shapes, folder:PATH, cifar10:DIR, mnist:DIR, cache:FILE or captions:INDEX.jsonl, received '${spec}'`);
}

function scheduleOption(v: string | undefined): LrSchedule | undefined {
  if (v === undefined || (LR_SCHEDULES as readonly string[]).includes(v)) return v as LrSchedule | undefined;
  throw new Error(`diffvit train: --lr-schedule expected ${LR_SCHEDULES.join(' or ')}, received '${v}'`);
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: optionalValue(argv, 'profile'),
    options: {
      preset: { type: 'string' }, config: { type: 'string' }, data: { type: 'string' }, 'image-size': { type: 'string' },
      unconditional: { type: 'boolean' }, steps: { type: 'string' },
      batch: { type: 'string' }, lr: { type: 'string' }, 'lr-schedule': { type: 'string' }, warmup: { type: 'string' }, 'ema-halflife': { type: 'string' }, 'ema-rampup': { type: 'string' },
      'label-dropout': { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' },
      'checkpoint-every': { type: 'string' }, 'sample-every': { type: 'string' }, 'no-samples': { type: 'boolean' }, guidance: { type: 'string' },
      resume: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      precision: { type: 'string' }, profile: { type: 'string' }, device: { type: 'string' }, 'cuda-graph': { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(TRAIN_HELP);
    return 0;
  }
  // Where the run executes, checked before anything is read or built.
  const placement = deviceOption('diffvit train', values.device, values['cuda-graph']);
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`diffvit train: --${name} expected a number, received '${v}'`);
    return n;
  };
  const fromFile = values.config ? (JSON.parse(readFileSync(values.config, 'utf8')) as Partial<TrainConfig>) : {};
  const preset = values.preset ?? (typeof fromFile.model === 'string' ? fromFile.model : undefined) ?? DEFAULT_PRESET;
  // A model object in the config file is the base unless --preset replaces it.
  const fileModel = fromFile.model && typeof fromFile.model === 'object' && !values.preset ? fromFile.model : null;
  if (!fileModel && !PRESETS[preset]) throw new Error(`diffvit train: unknown preset '${preset}'; presets: ${Object.keys(PRESETS).join(', ')}`);

  const overrides: Partial<TrainConfig> = Object.fromEntries(Object.entries({
    steps: num('steps', values.steps), batchSize: num('batch', values.batch), lr: num('lr', values.lr),
    warmupSteps: num('warmup', values.warmup), emaHalfLifeImages: num('ema-halflife', values['ema-halflife']),
    emaRampup: num('ema-rampup', values['ema-rampup']),
    labelDropout: num('label-dropout', values['label-dropout']), seed: num('seed', values.seed),
    matmulPrecision: precisionOption(values.precision), lrSchedule: scheduleOption(values['lr-schedule']),
    device: placement.device, cudaGraph: placement.cudaGraph || undefined,
  }).filter(([, v]) => v !== undefined));
  const base = fileModel ?? PRESETS[preset];
  const data = values.data ? parseDataSpec(values.data, num('image-size', values['image-size']) ?? base.img_size) : (fromFile.data ?? { kind: 'shapes' as const });
  // The model follows the data: its image size and channels, and unless --unconditional its
  // conditioning — the context shape of caption data (text-to-image), else the data's classes. A
  // config file's model keeps the keys it sets; the conditioning it leaves out follows the data.
  const dataset = createDataset(data);
  if (values['image-size'] !== undefined && data.kind === 'cache' && dataset.imageSize !== Number(values['image-size'])) {
    throw new Error(`diffvit train: --image-size ${values['image-size']}, but ${data.path} holds ${dataset.imageSize}×${dataset.imageSize} images (prepare another cache for that size)`);
  }
  const text = !values.unconditional && dataset.contextDim ? { context_dim: dataset.contextDim, context_len: dataset.contextLen! } : null;
  const conditioning = { num_classes: values.unconditional || text ? 0 : dataset.numClasses, ...text };
  const unconditional = values.unconditional ? { num_classes: 0, context_dim: 0, context_len: 0 } : {};
  const modelConfig: ModelConfig = values.preset || !fromFile.model
    ? { ...base, img_size: dataset.imageSize, in_chans: dataset.channels, ...conditioning }
    : { ...conditioning, ...(fromFile.model as ModelConfig), ...unconditional };
  const config: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, matmulPrecision: trainPrecision().precision, ...fromFile, data, model: modelConfig, ...overrides };
  const out = values.out ?? join('runs', `${preset.replace('/', '_')}-${data.kind}`);
  const tracePath = profileOption(values.profile, () => join(out, 'profile.trace.json'));
  mkdirSync(join(out, 'samples'), { recursive: true });
  const checkpointEvery = num('checkpoint-every', values['checkpoint-every']) ?? 500;
  const sampleEvery = num('sample-every', values['sample-every']) ?? 800;
  const guidance = num('guidance', values.guidance) ?? 2;

  const trainer = values.resume ? Trainer.resume(values.resume, overrides) : new Trainer(config);
  // The run's precision is in its config: every step runs in autocast(cfg.matmulPrecision), and so
  // do the sample grids; the process default is untouched. (Checkpoints written before the option
  // have none: the Trainer records the process default they ran at.)
  const cfg = trainer.config;
  const ckptPath = join(out, 'checkpoint.safetensors');
  const metricsPath = join(out, 'metrics.jsonl');
  if (!values.resume && existsSync(metricsPath)) writeFileSync(metricsPath, '');
  const modelName = typeof cfg.model === 'string' ? cfg.model : values.preset || !fromFile.model ? preset : `${cfg.model.arch} model of ${values.config}`;
  console.error(`diffvit train: ${modelName} (${(trainer.model.numParameters() / 1e6).toFixed(2)} M parameters), ` +
    `${cfg.steps} steps of batch ${cfg.batchSize} on ${cfg.data.kind}, ${cfg.matmulPrecision} matmuls, on ${trainer.device}${cfg.cudaGraph ? ' (CUDA graph)' : ''}, ` +
    `output in ${out}${values.resume ? `, resumed at step ${trainer.step}` : ''}`);

  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error('\ndiffvit train: interrupted — saving a checkpoint after this step (Ctrl-C again to quit now)');
  };
  process.on('SIGINT', onSigint);
  const bar = new ProgressBar(cfg.steps, 'train', trainer.step);
  const losses: [number, number][] = [];
  const t0 = Date.now();
  const startStep = trainer.step;
  const mc = trainer.model.config;
  const numClasses = mc.num_classes;
  // Text models: the grids use the contexts (and labels) of the data's first 16 examples, listed in samples/captions.txt.
  const gridExamples = mc.context_dim ? Array.from({ length: Math.min(16, trainer.sampler.dataset.size) }, (_, i) => trainer.sampler.dataset.get(i)) : [];
  if (gridExamples.length && trainer.sampler.dataset instanceof CaptionDataset) {
    const d = trainer.sampler.dataset;
    writeFileSync(join(out, 'samples', 'captions.txt'), gridExamples.map((_, i) => d.caption(i) ?? `(example ${i}: no caption)`).join('\n') + '\n');
  }
  const sampleGrid = (name: string) => {
    let labels = numClasses ? Int32Array.from({ length: Math.max(16, 2 * numClasses) }, (_, i) => i % numClasses) : null;
    let context: Tensor | null = null;
    if (gridExamples.length) {
      const n = gridExamples.length, size = mc.context_len * mc.context_dim, rows = new Float32Array(n * size);
      gridExamples.forEach((ex, i) => rows.set(ex.context!, i * size));
      context = tensor(rows, [n, mc.context_len, mc.context_dim]); // (B, L, C)
      labels = numClasses ? Int32Array.from(gridExamples, (ex) => ex.label) : null;
    }
    const conditioned = Boolean(labels || context);
    const { images, shape } = trainer.withEmaWeights((model) => autocast(cfg.matmulPrecision, () => generate(model, { labels, context, count: 16, guidance: conditioned ? guidance : 1, seed: 1 })));
    context?.dispose();
    writeFileSync(join(out, 'samples', name), imageGridPNG(images, shape[0], shape[1], shape[2], shape[3], { columns: context ? 4 : numClasses || 4, scale: 2 }));
  };
  // --profile: the built-in profiler over a window of steps (see profileWindow), its trace written
  // when the window closes, its table printed at the end of the run.
  const [profileFrom, profileTo] = tracePath ? profileWindow(startStep, cfg.steps) : [Infinity, Infinity];
  let profiler: Profiler | null = null;
  let profileReport = null as ProfileReport | null; // (set in stopProfile)
  const stopProfile = () => {
    if (!profiler) return;
    profileReport = profiler.stop();
    profiler = null;
    profileReport.writeChromeTrace(tracePath!);
  };
  const loader = new PrefetchLoader(cfg.data, trainer.sampler.options);
  try {
    while (trainer.step < cfg.steps && !interrupted) {
      if (trainer.step === profileFrom && profileTo > profileFrom) profiler = new Profiler().start();
      // Awaiting the prefetched batch also lets the event loop see Ctrl-C between steps.
      const r = trainer.trainStep(await loader.get(trainer.step));
      losses.push([r.step, r.loss]);
      const imgPerSec = ((trainer.step - startStep) * cfg.batchSize) / ((Date.now() - t0) / 1000);
      appendFileSync(metricsPath, JSON.stringify({ step: r.step, loss: r.loss, grad_norm: r.gradNorm, lr: r.lr, skipped: r.skipped, img_per_s: imgPerSec, time: (Date.now() - t0) / 1000 }) + '\n');
      bar.update(r.step, { loss: r.loss.toFixed(4), 'img/s': imgPerSec.toFixed(1) });
      if (r.step % checkpointEvery === 0) trainer.save(ckptPath);
      if (!values['no-samples'] && sampleEvery > 0 && r.step % sampleEvery === 0 && r.step < cfg.steps) sampleGrid(`step-${String(r.step).padStart(6, '0')}.png`);
      if (trainer.step === profileTo) stopProfile();
    }
  } finally {
    stopProfile();
    await loader.close();
    process.off('SIGINT', onSigint);
    trainer.save(ckptPath);
    if (losses.length) {
      writeFileSync(join(out, 'loss.svg'), lineChartSVG([
        { name: 'loss', points: losses, colour: '#9ab' },
        { name: 'moving average (50)', points: smooth(losses, 50), colour: '#c33' },
      ], { title: 'EDM training loss', xLabel: 'step', yLabel: 'loss', logY: true }));
    }
  }
  if (!interrupted && !values['no-samples']) sampleGrid('final.png');
  if (profileReport) {
    const steps = profileReport.ranges.find((r) => r.path === 'train_step')?.count ?? 0;
    console.log(`diffvit train: profile of ${steps} step${steps === 1 ? '' : 's'} (${profileFrom + 1}-${profileFrom + steps})\n${profileReport.table()}`);
    console.error(`diffvit train: Chrome trace of the profiled steps in ${tracePath} (open in chrome://tracing or https://ui.perfetto.dev)`);
  }
  console.error(`diffvit train: ${interrupted ? 'stopped' : 'done'} at step ${trainer.step}; checkpoint ${ckptPath}, ${values['no-samples'] ? 'no samples' : `samples in ${join(out, 'samples')}`}, loss curve ${join(out, 'loss.svg')}`);
  trainer.dispose();
  return 0;
}
