/** `diffvit sample`: checkpoint -> PNG grid or a folder of PNGs (--profile: the built-in profiler around the sampling). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { generate, SAMPLERS, type SamplerName } from '../diffusion/sample.js';
import { imageGridPNG } from '../image/grid.js';
import { encodePNG } from '../image/png.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import type { FullModelConfig } from '../models/configs.js';
import { readSafetensorsFloats, readSafetensorsHeader } from '../models/safetensors_header.js';
import { tensor } from '../ops/creation.js';
import { profile, type ProfileReport } from '../profiler/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { HashTextEmbedder } from '../text/embedder.js';
import { deviceOption } from './device.js';
import { guidanceIntervalOption } from './guidance_interval.js';
import { SAMPLE_HELP } from './help.js';
import { optionalValue, profileOption, usageError } from './profile.js';
import { ProgressBar } from './progress.js';

export function parseLabels(spec: string | undefined, numClasses: number, count: number): Int32Array | null {
  if (spec === undefined) return numClasses ? Int32Array.from({ length: count }, (_, i) => i % numClasses) : null;
  if (!numClasses) throw new Error('diffvit sample: --labels given but the model is unconditional (num_classes 0)');
  if (spec === 'all') return Int32Array.from({ length: count * numClasses }, (_, i) => Math.floor(i / count));
  const labels = spec.split(',').map((s) => Number(s.trim()));
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l > numClasses) throw new Error(`diffvit sample: --labels expected classes in [0, ${numClasses}] (${numClasses} = unconditional), received '${spec}'`);
  }
  return Int32Array.from(labels);
}

/**
 * The (B·perCaption, L, C) context of --captions (hash-embedded lines) or --context (a safetensors
 * (B, L, C) or (L, C) tensor), each row repeated perCaption times; with the captions (or null).
 */
export function loadSampleContext(c: FullModelConfig, captionsFile: string | undefined, contextFile: string | undefined, perCaption: number): { context: Tensor; rows: number; captions: string[] | null } {
  if (captionsFile && contextFile) throw new Error('diffvit sample: give --captions or --context, not both');
  if (!c.context_dim) throw new Error(`diffvit sample: --${captionsFile ? 'captions' : 'context'} given but the model has no context (context_dim 0: not a text-to-image model)`);
  const L = c.context_len, C = c.context_dim, size = L * C;
  let rowsData: Float32Array, captions: string[] | null = null;
  if (captionsFile) {
    let text: string;
    try {
      text = readFileSync(captionsFile, 'utf8');
    } catch (e) {
      throw new Error(`diffvit sample: --captions ${captionsFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    captions = text.split('\n').map((l) => l.trim()).filter((l) => l);
    if (!captions.length) throw new Error(`diffvit sample: --captions ${captionsFile}: no captions (one per line)`);
    rowsData = new HashTextEmbedder(L, C).embedBatch(captions);
  } else {
    const header = readSafetensorsHeader(contextFile!);
    const names = [...header.entries.keys()];
    const key = header.entries.has('context') ? 'context' : names.length === 1 ? names[0] : null;
    if (!key) throw new Error(`diffvit sample: --context ${contextFile}: expected a tensor 'context' (or a single tensor), found ${names.join(', ') || 'none'}`);
    const shape = header.entries.get(key)!.shape;
    const ok = (shape.length === 3 && shape[1] === L && shape[2] === C) || (shape.length === 2 && shape[0] === L && shape[1] === C);
    if (!ok || shape[0] === 0) throw new Error(`diffvit sample: --context ${contextFile}: tensor '${key}' expected shape (B, ${L}, ${C}) or (${L}, ${C}) for this model, received [${shape.join(', ')}]`);
    rowsData = readSafetensorsFloats(header, key);
  }
  const rows = rowsData.length / size;
  const values = new Float32Array(rows * perCaption * size);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < perCaption; j++) values.set(rowsData.subarray(r * size, (r + 1) * size), (r * perCaption + j) * size);
  }
  return { context: tensor(values, [rows * perCaption, L, C]), rows, captions };
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: optionalValue(argv, 'profile'),
    options: {
      checkpoint: { type: 'string' }, out: { type: 'string' }, folder: { type: 'boolean' }, count: { type: 'string', short: 'n' },
      labels: { type: 'string' }, captions: { type: 'string' }, context: { type: 'string' }, sampler: { type: 'string' }, steps: { type: 'string' }, guidance: { type: 'string' },
      'guidance-interval': { type: 'string' }, churn: { type: 'string' }, seed: { type: 'string' }, columns: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      profile: { type: 'string' }, device: { type: 'string' }, 'cuda-graph': { type: 'boolean' }, batch: { type: 'string' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(SAMPLE_HELP);
    return 0;
  }
  if (!values.checkpoint) throw new Error('diffvit sample: --checkpoint FILE is required (see diffvit sample --help)');
  const sampler = (values.sampler ?? 'heun') as SamplerName;
  if (!SAMPLERS.includes(sampler)) throw new Error(`diffvit sample: --sampler expected one of ${SAMPLERS.join(', ')}, received '${sampler}'`);
  const int = (name: string, v: string | undefined, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`diffvit sample: --${name} expected a number, received '${v}'`);
    return n;
  };
  // Where the sampling runs, and the CUDA graph's conditions, checked before the checkpoint is read.
  const placement = deviceOption('diffvit sample', values.device, values['cuda-graph']);
  const churn = int('churn', values.churn, 0);
  if (placement.cudaGraph && sampler === 'heun' && churn > 0) {
    throw usageError(`option '--cuda-graph' needs a deterministic sampler, but --churn ${churn} draws new noise at every step (a CUDA graph would replay the same noise): use --churn 0`);
  }
  const batch = values.batch === undefined ? undefined : int('batch', values.batch, 0);
  if (batch !== undefined && (!Number.isInteger(batch) || batch < 1)) throw usageError(`option '--batch N' expected an integer >= 1, received '${values.batch}'`);
  const out = values.out ?? (values.folder ? 'samples' : 'samples.png');
  // --profile [FILE]: the trace beside the images (samples.png -> samples.trace.json; a folder: FILE/profile.trace.json).
  const tracePath = profileOption(values.profile, () => values.folder ? join(out, 'profile.trace.json') : join(dirname(out), `${basename(out, extname(out))}.trace.json`));
  const { model, extra } = loadCheckpoint(values.checkpoint, { device: placement.device });
  for (const t of extra.values()) t.dispose();
  const c = model.config;
  const text = values.captions !== undefined || values.context !== undefined;
  const count = int('count', values.count, text ? 1 : values.labels === 'all' ? 4 : 16);
  let labels: Int32Array | null;
  let context: Tensor | null = null;
  let captions: string[] | null = null;
  if (text) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`diffvit sample: --count expected images per caption >= 1, received ${count}`);
    const loaded = loadSampleContext(c, values.captions, values.context, count);
    context = loaded.context;
    captions = loaded.captions;
    // a text model with classes too: --labels gives one class per caption (default: all the null class)
    const perCaption = values.labels === undefined ? null : parseLabels(values.labels, c.num_classes, loaded.rows);
    if (perCaption && perCaption.length !== loaded.rows) throw new Error(`diffvit sample: --labels expected one label per caption (${loaded.rows}), received ${perCaption.length}`);
    labels = c.num_classes ? Int32Array.from({ length: loaded.rows * count }, (_, i) => (perCaption ? perCaption[Math.floor(i / count)] : c.num_classes)) : null;
  } else {
    labels = parseLabels(values.labels, c.num_classes, count);
  }
  const steps = int('steps', values.steps, sampler === 'ddim' ? 50 : 18);
  const evals = sampler === 'heun' ? 2 * steps - 1 : steps;
  const total = context ? context.shape[0] : labels ? labels.length : count;
  const batches = batch === undefined ? 1 : Math.ceil(total / batch);
  const bar = new ProgressBar(steps * batches, `sample (${sampler}, ${evals} evaluations${batches > 1 ? ` per batch, ${batches} batches` : ''}${placement.cudaGraph ? ', CUDA graph' : ''})`);
  let generated: ReturnType<typeof generate>;
  let report: ProfileReport | null = null;
  try {
    const options = {
      labels, context, count, sampler, steps, guidance: int('guidance', values.guidance, 1),
      guidanceInterval: guidanceIntervalOption('sample', values['guidance-interval']), churn,
      seed: int('seed', values.seed, 0), onStep: (i: number, _n: number, _s: number, b = 0) => bar.update(b * steps + i),
      batchSize: batch, cudaGraph: placement.cudaGraph,
    };
    if (tracePath) ({ result: generated, report } = profile(() => generate(model, options)));
    else generated = generate(model, options);
  } finally {
    context?.dispose();
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
    const columns = values.columns ? int('columns', values.columns, 0) : (labels && values.labels === 'all') || (text && count > 1) ? count : undefined;
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
