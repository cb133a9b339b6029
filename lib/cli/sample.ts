/** `diffvit sample`: checkpoint -> PNG grid or a folder of PNGs (--profile: the built-in profiler around the sampling). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

import { generate, SAMPLERS, type SamplerName } from '../diffusion/sample.js';
import { imageGridPNG } from '../image/grid.js';
import { encodePNG } from '../image/png.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import type { FullModelConfig } from '../models/configs.js';
import { readSafetensorsFloats, readSafetensorsHeader } from '../models/safetensors_header.js';
import { tensor } from '../ops/creation.js';
import { profile, type ProfileReport } from '../profiler/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { HashTextEmbedder } from '../text/embedder.js';
import { deviceOption } from './device.js';
import { guideOption } from './guide.js';
import { guidanceIntervalOption } from './guidance_interval.js';
import { checkpointConfig } from './checkpoint_header.js';
import { DEFAULT_GUIDANCE } from './defaults.js';
import { checkOutput, cliHooks, MAX_SEED, type OptionSpec, parseOptions, usage } from './options.js';
import { profileOption } from './profile.js';
import { ProgressBar } from './progress.js';

export function parseLabels(spec: string | undefined, numClasses: number, count: number): Int32Array | null {
  if (spec === undefined) return numClasses ? Int32Array.from({ length: count }, (_, i) => i % numClasses) : null;
  if (!numClasses) usage('sample', '--labels given but the model is unconditional (num_classes 0)');
  if (spec === 'all') return Int32Array.from({ length: count * numClasses }, (_, i) => Math.floor(i / count));
  const labels = spec.split(',').map((s) => (s.trim() === '' ? Number.NaN : Number(s)));
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l > numClasses) usage('sample', `--labels L expected 'all' or classes in [0, ${numClasses}] (${numClasses} = unconditional), received '${spec}'`);
  }
  return Int32Array.from(labels);
}

/**
 * The (B·perCaption, L, C) context of --captions (hash-embedded lines) or --context (a safetensors
 * (B, L, C) or (L, C) tensor), each row repeated perCaption times; with the captions (or null).
 */
export function loadSampleContext(c: FullModelConfig, captionsFile: string | undefined, contextFile: string | undefined, perCaption: number): { context: Tensor; rows: number; captions: string[] | null } {
  if (captionsFile && contextFile) usage('sample', 'give --captions or --context, not both');
  if (!c.context_dim) usage('sample', `--${captionsFile ? 'captions' : 'context'} given but the model has no context (context_dim 0: not a text-to-image model)`);
  const L = c.context_len, C = c.context_dim, size = L * C;
  let rowsData: Float32Array, captions: string[] | null = null;
  if (captionsFile) {
    let text: string;
    try {
      text = readFileSync(captionsFile, 'utf8');
    } catch (e) {
      usage('sample', `--captions ${captionsFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    captions = text.split('\n').map((l) => l.trim()).filter((l) => l);
    if (!captions.length) usage('sample', `--captions ${captionsFile}: no captions (one per line)`);
    rowsData = new HashTextEmbedder(L, C).embedBatch(captions);
  } else {
    const header = readSafetensorsHeader(contextFile!);
    const names = [...header.entries.keys()];
    const key = header.entries.has('context') ? 'context' : names.length === 1 ? names[0] : null;
    if (!key) usage('sample', `--context ${contextFile}: expected a tensor 'context' (or a single tensor), found ${names.join(', ') || 'none'}`);
    const shape = header.entries.get(key)!.shape;
    const ok = (shape.length === 3 && shape[1] === L && shape[2] === C) || (shape.length === 2 && shape[0] === L && shape[1] === C);
    if (!ok || shape[0] === 0) usage('sample', `--context ${contextFile}: tensor '${key}' expected shape (B, ${L}, ${C}) or (${L}, ${C}) for this model, received [${shape.join(', ')}]`);
    rowsData = readSafetensorsFloats(header, key);
  }
  const rows = rowsData.length / size;
  const values = new Float32Array(rows * perCaption * size);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < perCaption; j++) values.set(rowsData.subarray(r * size, (r + 1) * size), (r * perCaption + j) * size);
  }
  return { context: tensor(values, [rows * perCaption, L, C]), rows, captions };
}

export const SAMPLE_OPTIONS = {
  checkpoint: { kind: 'file', arg: 'FILE', required: true },
  out: { kind: 'string', arg: 'PATH' },
  folder: { kind: 'flag' },
  count: { kind: 'int', short: 'n', min: 1, max: 100_000, arg: 'N', default: 16 },
  labels: { kind: 'string', arg: 'L' },
  captions: { kind: 'file', arg: 'FILE' },
  context: { kind: 'file', arg: 'FILE' },
  sampler: { kind: 'choice', choices: SAMPLERS, arg: 'NAME', default: 'heun' },
  steps: { kind: 'int', min: 1, max: 10_000, arg: 'N', default: 18 },
  guidance: { kind: 'number', min: 0, max: 100, arg: 'W', default: DEFAULT_GUIDANCE },
  'guidance-interval': { kind: 'string', arg: 'LO,HI' },
  guide: { kind: 'file', arg: 'FILE' },
  churn: { kind: 'number', min: 0, max: 1000, arg: 'S', default: 0 },
  seed: { kind: 'int', min: 0, max: MAX_SEED, arg: 'N', default: 0 },
  device: { kind: 'string', arg: 'D' },
  batch: { kind: 'int', min: 1, max: 100_000, arg: 'N' },
  'cuda-graph': { kind: 'flag' },
  columns: { kind: 'int', min: 1, max: 1024, arg: 'N' },
  profile: { kind: 'string', optionalValue: true, arg: '[FILE]' },
} as const satisfies Record<string, OptionSpec>;

export async function sampleCommand(argv: string[]): Promise<number> {
  const { values, given } = parseOptions('sample', argv, SAMPLE_OPTIONS);
  const sampler = values.sampler as SamplerName;
  // Where the sampling runs, and the CUDA graph's conditions, checked before the checkpoint is read.
  const placement = deviceOption('sample', values.device, values['cuda-graph']);
  const churn = values.churn;
  if (placement.cudaGraph && sampler === 'heun' && churn > 0) {
    usage('sample', `--cuda-graph needs a deterministic sampler, but --churn ${churn} draws new noise at every step (a CUDA graph would replay the same noise): use --churn 0`);
  }
  const out = values.out ?? (values.folder ? 'samples' : 'samples.png');
  if (values.folder) checkOutput('sample', 'out', { kind: 'out-dir', arg: 'PATH' }, out);
  else checkOutput('sample', 'out', { kind: 'out-file', arg: 'PATH', extensions: ['.png'] }, out);
  // --profile [FILE]: the trace beside the images (samples.png -> samples.trace.json; a folder: FILE/profile.trace.json).
  const tracePath = profileOption('sample', values.profile, () => values.folder ? join(out, 'profile.trace.json') : join(dirname(out), `${basename(out, extname(out))}.trace.json`));
  const guidanceInterval = guidanceIntervalOption('sample', values['guidance-interval']);
  // The model's conditioning, from the checkpoint's header, decides what --labels and the text options may be.
  const c = checkpointConfig('sample', values.checkpoint);
  const text = values.captions !== undefined || values.context !== undefined;
  const count = given.has('count') ? values.count : text ? 1 : values.labels === 'all' ? 4 : values.count;
  let labels: Int32Array | null;
  let loaded: ReturnType<typeof loadSampleContext> | null = null;
  let model: DiffusionViT, total: number;
  let guide: DiffusionViT | null = null;
  // The text context is a tensor: freed if a check, or the checkpoint, fails after it is made.
  try {
    if (text) {
      loaded = loadSampleContext(c, values.captions, values.context, count);
      // a text model with classes too: --labels gives one class per caption (default: all the null class)
      const perCaption = values.labels === undefined ? null : parseLabels(values.labels, c.num_classes, loaded.rows);
      if (perCaption && perCaption.length !== loaded.rows) usage('sample', `--labels L expected one label per caption (${loaded.rows}), received ${perCaption.length}`);
      labels = c.num_classes ? Int32Array.from({ length: loaded.rows * count }, (_, i) => (perCaption ? perCaption[Math.floor(i / count)] : c.num_classes)) : null;
    } else {
      labels = parseLabels(values.labels, c.num_classes, count);
    }
    total = loaded ? loaded.context.shape[0] : labels ? labels.length : count;
    if (total > SAMPLE_OPTIONS.count.max) usage('sample', `${total} images asked for (--count × labels or captions); at most ${SAMPLE_OPTIONS.count.max} a call`);
    const guidePath = guideOption('sample', values.guide, c);
    cliHooks.beforeWork('sample');
    if (guidePath) guide = loadCheckpoint(guidePath, { device: placement.device }).model;
    ({ model } = loadCheckpoint(values.checkpoint, { device: placement.device }));
  } catch (e) {
    loaded?.context.dispose();
    guide?.dispose();
    throw e;
  }
  const context = loaded?.context ?? null;
  const captions = loaded?.captions ?? null;
  const steps = given.has('steps') ? values.steps : sampler === 'ddim' ? 50 : values.steps;
  const evals = sampler === 'heun' ? 2 * steps - 1 : steps;
  const batch = values.batch;
  const batches = batch === undefined ? 1 : Math.ceil(total / batch);
  const bar = new ProgressBar(steps * batches, `sample (${sampler}, ${evals} evaluations${batches > 1 ? ` per batch, ${batches} batches` : ''}${placement.cudaGraph ? ', CUDA graph' : ''})`);
  let generated: ReturnType<typeof generate>;
  let report: ProfileReport | null = null;
  try {
    const options = {
      labels, context, count, sampler, steps, guidance: values.guidance, guidanceInterval, guide, churn,
      seed: values.seed, onStep: (i: number, _n: number, _s: number, b = 0) => bar.update(b * steps + i),
      batchSize: batch, cudaGraph: placement.cudaGraph,
    };
    if (tracePath) ({ result: generated, report } = profile(() => generate(model, options)));
    else generated = generate(model, options);
  } finally {
    context?.dispose();
    guide?.dispose();
  }
  const { images, shape } = generated;
  const [B, C, H, W] = shape;
  if (values.folder) {
    mkdirSync(out, { recursive: true });
    for (let b = 0; b < B; b++) {
      const rgb = new Uint8Array(H * W * 3);
      for (let p = 0; p < H * W; p++) {
        for (let ch = 0; ch < 3; ch++) rgb[p * 3 + ch] = Math.max(0, Math.min(255, Math.round((images[(b * C + (C === 1 ? 0 : ch)) * H * W + p] + 1) * 127.5)));
      }
      const tag = text ? `-caption${Math.floor(b / count)}` : labels ? `-class${labels[b]}` : '';
      writeFileSync(join(out, `${String(b).padStart(5, '0')}${tag}.png`), encodePNG(rgb, W, H));
    }
  } else {
    mkdirSync(dirname(out) || '.', { recursive: true });
    // one row per caption when there are several images per caption
    const columns = values.columns ?? ((labels && values.labels === 'all') || (text && count > 1) ? count : undefined);
    writeFileSync(out, imageGridPNG(images, B, C, H, W, { columns, scale: H <= 32 ? 2 : 1 }));
  }
  console.error(`diffvit sample: wrote ${B} images to ${out}`);
  // each caption's images are consecutive (a grid row each when --count > 1; files tagged -captionN)
  if (captions) console.error(captions.map((cap, i) => `  caption ${i}: ${cap}`).join('\n'));
  if (report && tracePath) {
    report.writeChromeTrace(tracePath);
    console.log(`diffvit sample: profile of ${B} images, ${sampler}, ${steps} steps\n${report.table()}`);
    console.error(`diffvit sample: Chrome trace in ${tracePath} (open in chrome://tracing or https://ui.perfetto.dev)`);
  }
  model.dispose();
  return 0;
}
