/**
 * `diffvit train`: EDM training from the command line. With no arguments it trains the small
 * class-conditional IU-ViT preset on the built-in `shapes` data and samples a grid at the end.
 * Writes <out>/metrics.jsonl, <out>/samples/step-NNNNNN.png, <out>/checkpoint.safetensors,
 * <out>/loss.svg. Ctrl-C finishes the current step, saves a checkpoint and exits. --profile records
 * steps 3-12 with the built-in profiler: <out>/profile.trace.json and a table at the end.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';

import { PrefetchLoader } from '../data/prefetch.js';
import { generate } from '../diffusion/sample.js';
import { imageGridPNG } from '../image/grid.js';
import { lineChartSVG, smooth } from '../image/plot.js';
import { CaptionDataset } from '../data/captions.js';
import { createDataset } from '../data/dataset.js';
import { tensor } from '../ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { type FullModelConfig, fullConfig, type ModelConfig, PRESETS } from '../models/configs.js';
import { readSafetensorsHeader } from '../models/safetensors_header.js';
import { Profiler, type ProfileReport } from '../profiler/index.js';
import { autocast } from '../tensor/autocast.js';
import { fixedLengthAfter, StepBudget } from '../train/step_budget.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../train/trainer.js';
import { DEFAULT_MASK_RATIO } from './defaults.js';
import { deviceOption } from './device.js';
import { cliHooks, parseOptions, usage } from './options.js';
import { trainPrecision } from './precision.js';
import { profileOption, profileWindow } from './profile.js';
import { formatDuration, ProgressBar } from './progress.js';
import { checkDataPaths, CONFIG_KEY_OF_OPTION, parseDataSpec, readTrainConfigFile, TRAIN_OPTIONS } from './train_options.js';

export { parseDataSpec } from './train_options.js';

/** The files a run writes into its folder (--overwrite removes these, and only these). */
const RUN_FILES = ['checkpoint.safetensors', 'metrics.jsonl', 'config.json', 'loss.svg', 'profile.trace.json', 'samples'];

/** What a folder already holds (nothing when it does not exist). */
function earlierWork(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** `base`, or base-2, base-3, ... : the first that does not exist or is empty. */
function freshFolder(base: string): string {
  for (let i = 1; ; i++) {
    const dir = i === 1 ? base : `${base}-${i}`;
    if (!earlierWork(dir).length) return dir;
  }
}

/** The step and config of the run in a training checkpoint (read from its header only). */
function resumeState(path: string): { step: number; config: TrainConfig } {
  const { metadata } = readSafetensorsHeader(path);
  if (!metadata.train_config || !metadata.trainer) {
    usage('train', `--resume ${path}: a model-only checkpoint (no trainer state); resume from the checkpoint.safetensors a run wrote`);
  }
  return { step: (JSON.parse(metadata.trainer) as { step: number }).step, config: JSON.parse(metadata.train_config) as TrainConfig };
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values, given } = parseOptions('train', argv, TRAIN_OPTIONS);
  // Where the run executes, checked before anything is read or built.
  const placement = deviceOption('train', values.device, values['cuda-graph']);
  const resumed = values.resume ? resumeState(values.resume) : null;
  if (resumed) {
    const fixed = (['config', 'preset', 'data', 'image-size', 'unconditional'] as const).filter((o) => given.has(o));
    if (fixed.length) usage('train', `--resume continues a run with its own model and data: --${fixed[0]} cannot change them (start a new run instead)`);
  }
  if (given.has('minutes')) {
    if (given.has('steps')) usage('train', `--minutes M and --steps N both set the run's length: give one of them`);
    if (resumed) usage('train', `--minutes sizes a new run; a resumed run keeps the step count it was given (raise it with --steps N)`);
  }
  const fromFile = values.config ? readTrainConfigFile(values.config) : {};
  // A new run without a step count (no --steps, none in its config file) is sized by wall time.
  const minutes = !resumed && (given.has('minutes') || (!given.has('steps') && fromFile.steps === undefined)) ? values.minutes : undefined;
  const preset = given.has('preset') || typeof fromFile.model !== 'string' ? values.preset : fromFile.model;
  // A model object in the config file is the base unless --preset replaces it.
  const fileModel = fromFile.model && typeof fromFile.model === 'object' && !given.has('preset') ? fromFile.model : null;

  const overrides: Partial<TrainConfig> = {};
  for (const [option, key] of Object.entries(CONFIG_KEY_OF_OPTION)) {
    if (given.has(option as keyof typeof TRAIN_OPTIONS)) Object.assign(overrides, { [key]: values[option as keyof typeof CONFIG_KEY_OF_OPTION] });
  }
  if (placement.device !== undefined) overrides.device = placement.device;
  if (placement.cudaGraph) overrides.cudaGraph = true;
  if (minutes !== undefined) overrides.steps = StepBudget.PLACEHOLDER_STEPS; // until the first estimate
  const steps = resumed ? (overrides.steps ?? resumed.config.steps) : undefined;
  if (resumed && steps! <= resumed.step) {
    usage('train', given.has('steps') ? `--steps N expected more than the ${resumed.step} steps the checkpoint has done, received '${steps}'`
      : `the run in ${values.resume} is complete (step ${resumed.step} of ${steps}): give --steps N > ${resumed.step} to train on`);
  }
  const base = fileModel ?? PRESETS[preset];
  const imageSize = values['image-size'];
  const data = resumed ? resumed.config.data : given.has('data') || !fromFile.data ? parseDataSpec(values.data, imageSize ?? base.img_size) : fromFile.data;
  if (imageSize !== undefined && (data.kind === 'shapes' || data.kind === 'cifar10')) {
    usage('train', `--image-size applies to folder:, mnist:, captions: and cache: data; ${data.kind} images are 32×32`);
  }
  checkDataPaths('train', data);

  // The run's folder: a resumed run continues in its checkpoint's folder; a new one never lands on
  // earlier work (the default name gets a free -2, -3, ...; an --out that holds files needs --overwrite).
  const runName = fileModel ? basename(values.config!, extname(values.config!)) : preset.replace('/', '_');
  const defaultOut = join('runs', `${runName}-${data.kind}`);
  const out = values.out ?? (values.resume ? dirname(values.resume) : values.overwrite ? defaultOut : freshFolder(defaultOut));
  const ownFolder = values.resume !== undefined && resolve(out) === resolve(dirname(values.resume));
  const earlier = earlierWork(out);
  if (earlier.length && !ownFolder && !values.overwrite) {
    const shown = earlier.slice(0, 3).join(', ') + (earlier.length > 3 ? ', ...' : '');
    const resumable = existsSync(join(out, 'checkpoint.safetensors')) ? `continue its run with --resume ${join(out, 'checkpoint.safetensors')}, ` : '';
    usage('train', `--out ${out} holds earlier work (${shown}): ${resumable}replace it with --overwrite, or choose another --out`);
  }
  const tracePath = profileOption('train', values.profile, () => join(out, 'profile.trace.json'));
  const { 'checkpoint-every': checkpointEvery, 'sample-every': sampleEvery, guidance } = values;
  cliHooks.beforeWork('train');

  let trainer: Trainer;
  if (resumed) {
    trainer = Trainer.resume(values.resume!, overrides);
  } else {
    // The model follows the data: its image size and channels, and unless --unconditional its
    // conditioning — the context shape of caption data (text-to-image), else the data's classes. A
    // config file's model keeps the keys it sets; the conditioning it leaves out follows the data.
    const dataset = createDataset(data);
    if (imageSize !== undefined && data.kind === 'cache' && dataset.imageSize !== imageSize) {
      throw new Error(`diffvit train: --image-size ${imageSize}, but ${data.path} holds ${dataset.imageSize}×${dataset.imageSize} images (prepare another cache for that size)`);
    }
    const text = !values.unconditional && dataset.contextDim ? { context_dim: dataset.contextDim, context_len: dataset.contextLen! } : null;
    const conditioning = { num_classes: values.unconditional || text ? 0 : dataset.numClasses, ...text };
    const unconditional = values.unconditional ? { num_classes: 0, context_dim: 0, context_len: 0 } : {};
    const modelConfig: ModelConfig = !fileModel
      ? { ...base, img_size: dataset.imageSize, in_chans: dataset.channels, ...conditioning }
      : { ...conditioning, ...fileModel, ...unconditional };
    let full: FullModelConfig;
    try {
      full = fullConfig(modelConfig);
    } catch (e) {
      if (fileModel) usage('train', `--config ${values.config}: ${(e as Error).message.replace(/^diffvit\.modelConfig: /, "'model': ")}`);
      throw e;
    }
    const { model: _model, data: _data, ...fileOptions } = fromFile;
    // Masked-token training by default where the model can drop tokens (docs/training-notes.md §15).
    const maskRatio = full.arch === 'unet' || full.rope ? 0 : DEFAULT_MASK_RATIO;
    trainer = new Trainer({ ...DEFAULT_TRAIN_CONFIG, maskRatio, matmulPrecision: trainPrecision().precision, ...fileOptions, data, model: modelConfig, ...overrides });
  }
  // The run's precision is in its config: every step runs in autocast(cfg.matmulPrecision), and so
  // do the sample grids; the process default is untouched. (Checkpoints written before the option
  // have none: the Trainer records the process default they ran at.)
  const cfg = trainer.config;
  // --minutes: the step count follows the run's measured rate (the final grid and checkpoint get
  // 1 % of the budget until a grid has been timed).
  const budget = minutes !== undefined
    ? new StepBudget(minutes * 60, trainer.step, minutes * 0.6, fixedLengthAfter(cfg.lrSchedule ?? 'constant'), (from, to, n) => trainer.relativeRunCost(from, to, n))
    : null;
  const ckptPath = join(out, 'checkpoint.safetensors');
  const metricsPath = join(out, 'metrics.jsonl');
  const modelName = typeof cfg.model === 'string' ? cfg.model : fileModel ? `${cfg.model.arch} model of ${values.config}` : resumed ? `${cfg.model.arch} model of ${values.resume}` : preset;
  console.error(`diffvit train: ${modelName} (${(trainer.model.numParameters() / 1e6).toFixed(2)} M parameters), ` +
    `${budget ? `${minutes} minutes (steps sized to them as the run goes)` : `${cfg.steps} steps`} of batch ${cfg.batchSize} on ${cfg.data.kind}, ${cfg.matmulPrecision} matmuls, on ${trainer.device}${cfg.cudaGraph ? ' (CUDA graph)' : ''}, ` +
    `output in ${out}${resumed ? `, resumed at step ${trainer.step}` : ''}`);

  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error('\ndiffvit train: interrupted — saving a checkpoint after this step (Ctrl-C again to quit now)');
  };
  process.on('SIGINT', onSigint);
  const bar = new ProgressBar(budget ? Number.NaN : cfg.steps, 'train', trainer.step); // --minutes: unknown until the first estimate
  const losses: [number, number][] = [];
  const t0 = Date.now();
  const startStep = trainer.step;
  const mc = trainer.model.config;
  const numClasses = mc.num_classes;
  // Text models: the grids use the contexts (and labels) of the data's first 16 examples, listed in samples/captions.txt.
  const gridExamples = mc.context_dim ? Array.from({ length: Math.min(16, trainer.sampler.dataset.size) }, (_, i) => trainer.sampler.dataset.get(i)) : [];
  // Nothing is written before the first step has succeeded: then the folder is made (an
  // --overwrite'n run's files removed first), the config saved and the metrics started.
  let started = false;
  // config.json: the full TrainConfig and how the run was asked for (under --minutes, rewritten with
  // the step count of the moment at each checkpoint and when it is fixed, and at the end).
  const writeRunConfig = () => writeFileSync(join(out, 'config.json'), JSON.stringify({
    ...cfg, run: { out, checkpointEvery, sampleEvery, samples: !values['no-samples'], guidance, minutes: minutes ?? null, resumedFrom: values.resume ?? null, resumedAtStep: resumed ? startStep : null },
  }, null, 2) + '\n');
  const startRunFolder = () => {
    started = true;
    if (values.overwrite && !ownFolder) for (const f of RUN_FILES) rmSync(join(out, f), { recursive: true, force: true });
    mkdirSync(join(out, 'samples'), { recursive: true });
    // A resumed run drops the metrics logged after its checkpoint (they are about to be redone).
    const kept = ownFolder && existsSync(metricsPath)
      ? readFileSync(metricsPath, 'utf8').split('\n').filter((line) => line && (JSON.parse(line) as { step: number }).step <= startStep).map((line) => line + '\n').join('')
      : '';
    writeFileSync(metricsPath, kept);
    writeRunConfig();
    if (gridExamples.length && trainer.sampler.dataset instanceof CaptionDataset) {
      const d = trainer.sampler.dataset;
      writeFileSync(join(out, 'samples', 'captions.txt'), gridExamples.map((_, i) => d.caption(i) ?? `(example ${i}: no caption)`).join('\n') + '\n');
    }
  };
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
  let checkpointSeconds = 0; // the last checkpoint's write
  try {
    while (trainer.step < cfg.steps && !interrupted) {
      if (trainer.step === profileFrom && profileTo > profileFrom) profiler = new Profiler().start();
      // Awaiting the prefetched batch also lets the event loop see Ctrl-C between steps.
      const r = trainer.trainStep(await loader.get(trainer.step));
      if (!started) startRunFolder();
      losses.push([r.step, r.loss]);
      const elapsed = (Date.now() - t0) / 1000;
      const imgPerSec = ((trainer.step - startStep) * cfg.batchSize) / elapsed;
      appendFileSync(metricsPath, JSON.stringify({ step: r.step, loss: r.loss, grad_norm: r.gradNorm, lr: r.lr, skipped: r.skipped, img_per_s: imgPerSec, time: elapsed }) + '\n');
      if (budget && !budget.isFixed) {
        const total = budget.resize(r.step, elapsed, cfg.steps);
        if (total !== null) trainer.setSteps(bar.total = total);
        if (budget.isFixed) writeRunConfig();
      }
      bar.update(r.step, { loss: r.loss.toFixed(4), 'img/s': imgPerSec.toFixed(1) });
      // The budget times the grids and checkpoints apart from the steps: the final ones cost as much.
      if (r.step % checkpointEvery === 0) {
        const saveStart = Date.now();
        trainer.save(ckptPath);
        if (budget) writeRunConfig();
        checkpointSeconds = (Date.now() - saveStart) / 1000;
        budget?.recordPeriodic('checkpoint', checkpointEvery, checkpointSeconds);
      }
      if (!values['no-samples'] && sampleEvery > 0 && r.step % sampleEvery === 0 && r.step < cfg.steps) {
        const gridStart = Date.now();
        sampleGrid(`step-${String(r.step).padStart(6, '0')}.png`);
        const gridSeconds = (Date.now() - gridStart) / 1000;
        budget?.recordPeriodic('grid', sampleEvery, gridSeconds);
        budget?.setEndSeconds(gridSeconds + checkpointSeconds);
      }
      if (trainer.step === profileTo) stopProfile();
    }
  } finally {
    stopProfile();
    await loader.close();
    process.off('SIGINT', onSigint);
    if (started) trainer.save(ckptPath);
    if (started && budget) writeRunConfig(); // the count it ended with (a short run ends before its total is fixed)
    if (losses.length) {
      writeFileSync(join(out, 'loss.svg'), lineChartSVG([
        { name: 'loss', points: losses, colour: '#9ab' },
        { name: 'moving average (50)', points: smooth(losses, 50), colour: '#c33' },
      ], { title: 'EDM training loss', xLabel: 'step', yLabel: 'loss', logY: true }));
    }
  }
  if (!started) {
    trainer.dispose();
    console.error(`diffvit train: stopped before the first step; nothing written`);
    return 0;
  }
  if (!interrupted && !values['no-samples']) sampleGrid('final.png');
  if (profileReport) {
    const steps = profileReport.ranges.find((r) => r.path === 'train_step')?.count ?? 0;
    console.log(`diffvit train: profile of ${steps} step${steps === 1 ? '' : 's'} (${profileFrom + 1}-${profileFrom + steps})\n${profileReport.table()}`);
    console.error(`diffvit train: Chrome trace of the profiled steps in ${tracePath} (open in chrome://tracing or https://ui.perfetto.dev)`);
  }
  const took = budget ? ` after ${formatDuration((Date.now() - t0) / 1000)} of the ${minutes}-minute budget` : '';
  console.error(`diffvit train: ${interrupted ? 'stopped' : 'done'} at step ${trainer.step}${took}; checkpoint ${ckptPath}, ${values['no-samples'] ? 'no samples' : `samples in ${join(out, 'samples')}`}, loss curve ${join(out, 'loss.svg')}`);
  trainer.dispose();
  return 0;
}
