/**
 * `diffvit eval fid`: Fréchet Inception Distance (and KID) with the FID Inception-v3.
 *
 *   diffvit eval fid --weights inception.safetensors --ref-stats cifar10.safetensors --data ../cifar-10-batches-bin
 *   diffvit eval fid --weights inception.safetensors --ref-stats cifar10.safetensors --checkpoint ckpt.safetensors --count 10000
 *   diffvit eval fid --weights inception.safetensors --ref-stats cifar10.safetensors --images samples/
 *   diffvit eval fid --ref-stats cifar10.safetensors --stats samples.safetensors
 *
 * This file's top level imports only Node built-ins and native-free modules, so FID_HELP can be
 * shown without the addon; the work is imported when the command runs.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { SAMPLERS, type SamplerName } from '../diffusion/samplers/names.js';
import { checkpointConfig } from './checkpoint_header.js';
import { DEFAULT_FID_GUIDANCE } from './defaults.js';
import { checkOutput, cliHooks, MAX_SEED, type OptionSpec, parseOptions, usage } from './options.js';
import { ProgressBar } from './progress.js';

export const FID_HELP = `diffvit eval fid (--data SRC | --checkpoint FILE | --images DIR | --stats FILE) [options]

Fréchet Inception Distance and Kernel Inception Distance on the pool3 features of the FID
Inception-v3 (TF 2015-12-05 weights as ported by pytorch-fid; convert
pt_inception-2015-12-05-6726825d.pth with scripts/convert_inception.py). Images are resized to
299×299 bilinearly as pytorch-fid does.

  reference statistics:    --weights W --ref-stats OUT --data shapes | CIFAR10_DIR | FOLDER [--count N]
  a checkpoint's samples:  --weights W --ref-stats REF --checkpoint CKPT --count N [--guidance W] [--labels all]
  a folder of images:      --weights W --ref-stats REF --images DIR
  two statistics files:    --ref-stats REF --stats FILE
  (--checkpoint and --images may also just --save-stats FILE, to compare later with --stats)

Options:
  --weights FILE        Inception weights (safetensors, pytorch-fid names; default $DIFFVIT_INCEPTION)
  --ref-stats FILE      reference statistics: written with --data, compared against otherwise
                        (also a pytorch-fid/EDM .npz with mu and sigma, e.g. EDM's cifar10-32x32.npz)
  --data SRC            'shapes', a CIFAR-10 binary directory (data_batch_*.bin, test_batch.bin)
                        or a folder of PNG/JPEG images (sub-folders are read too)
  --split train|test    CIFAR-10 split (default train)
  -n, --count N         --data: a seeded random subset of N images (default: all; shapes 10000)
                        --checkpoint: samples to draw (default 10000)
  --image-size S        folder images: centre crop resized to S (default: the first image's shorter side)
  --checkpoint FILE     sample a diffvit checkpoint (8-bit quantised, as saved PNGs)
  --labels L            class-conditional: 'all' (classes in turn, the default) or e.g. 0,3,4
  --guidance W          classifier-free guidance scale (default ${DEFAULT_FID_GUIDANCE}; 1 = none)
  --sampler NAME        ${SAMPLERS.join(' | ')} (default heun)
  --steps N             sampler steps (default 18; ddim 50)
  --seed N              seed (default 0; sample batch b uses seed + b; also the subset draws)
  --images DIR          a folder of generated images (PNG/JPEG)
  --stats FILE          statistics saved earlier (--save-stats), compared with --ref-stats
  --save-stats FILE     write the statistics of the samples/images
  --batch N             images per Inception pass (default 16)
  --sample-batch N      images sampled at once (default 64)
  --kid-features N      feature rows kept for KID (default 10000; 0: no KID)
  --kid-subsets N       KID subsets (default 100)
  --kid-subset-size N   rows per KID subset (default 1000)
  --device D            where --checkpoint's sampling runs: cpu (default), cuda or cuda:N (the
                        Inception network stays on the host)
  --json                print the result as JSON
  -h, --help            this text`;

export const FID_OPTIONS = {
  weights: { kind: 'string', arg: 'FILE' },
  'ref-stats': { kind: 'string', arg: 'FILE' },
  data: { kind: 'string', arg: 'SRC' },
  split: { kind: 'choice', choices: ['train', 'test'], arg: 'S', default: 'train' },
  count: { kind: 'int', short: 'n', min: 2, max: 10_000_000, arg: 'N' },
  'image-size': { kind: 'int', min: 1, max: 4096, arg: 'S' },
  checkpoint: { kind: 'file', arg: 'FILE' },
  labels: { kind: 'string', arg: 'L' },
  guidance: { kind: 'number', min: 0, max: 100, arg: 'W', default: DEFAULT_FID_GUIDANCE },
  sampler: { kind: 'choice', choices: SAMPLERS, arg: 'NAME', default: 'heun' },
  steps: { kind: 'int', min: 1, max: 10_000, arg: 'N', default: 18 },
  seed: { kind: 'int', min: 0, max: MAX_SEED, arg: 'N', default: 0 },
  images: { kind: 'dir', arg: 'DIR' },
  stats: { kind: 'file', arg: 'FILE' },
  'save-stats': { kind: 'out-file', arg: 'FILE' },
  batch: { kind: 'int', min: 1, max: 4096, arg: 'N', default: 16 },
  'sample-batch': { kind: 'int', min: 1, max: 4096, arg: 'N', default: 64 },
  'kid-features': { kind: 'int', min: 0, max: 10_000_000, arg: 'N', default: 10_000 },
  'kid-subsets': { kind: 'int', min: 1, max: 100_000, arg: 'N', default: 100 },
  'kid-subset-size': { kind: 'int', min: 2, max: 10_000_000, arg: 'N', default: 1000 },
  device: { kind: 'string', arg: 'D' },
  json: { kind: 'flag' },
} as const satisfies Record<string, OptionSpec>;

/** Labels for `count` samples: classes in turn ('all') or the given list repeated; null when unconditional. */
export function fidLabels(spec: string | undefined, numClasses: number, count: number): Int32Array | null {
  if (!numClasses) {
    if (spec !== undefined) usage('eval fid', '--labels given but the model is unconditional (num_classes 0)');
    return null;
  }
  if (spec === undefined || spec === 'all') return Int32Array.from({ length: count }, (_, i) => i % numClasses);
  const list = spec.split(',').map((s) => (s.trim() === '' ? Number.NaN : Number(s)));
  for (const l of list) {
    if (!Number.isInteger(l) || l < 0 || l > numClasses) {
      usage('eval fid', `--labels L expected 'all' or classes in [0, ${numClasses}] (${numClasses} = unconditional), received '${spec}'`);
    }
  }
  return Int32Array.from({ length: count }, (_, i) => list[i % list.length]);
}

/** A seeded random subset of `count` of `size` indices, in increasing order (reads stay sequential). */
function subset(size: number, count: number, seed: number): Int32Array {
  const idx = Int32Array.from({ length: size }, (_, i) => i);
  let s = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = i + Math.floor((s / 4294967296) * (size - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, count).sort();
}

export async function fidCommand(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(FID_HELP);
    return 0;
  }
  const { values, given } = parseOptions('eval fid', argv, FID_OPTIONS);
  const modes = (['data', 'checkpoint', 'images', 'stats'] as const).filter((m) => values[m] !== undefined);
  // (device.ts loads the addon: imported here, not at the top)
  const { device } = (await import('./device.js')).deviceOption('eval fid', values.device, false);
  if (device !== undefined && values.checkpoint === undefined) usage('eval fid', '--device applies to --checkpoint (its sampling); the other modes run on the host');
  if (modes.length !== 1) {
    usage('eval fid', `give exactly one of --data (reference statistics), --checkpoint, --images or --stats, received ${modes.length ? modes.map((m) => '--' + m).join(', ') : 'none'}`);
  }
  const mode = modes[0];
  const refPath = values['ref-stats'];
  if (mode === 'data' && !refPath) usage('eval fid', '--data needs --ref-stats FILE (where to write the reference statistics)');
  if (mode === 'stats' && !refPath) usage('eval fid', '--stats needs --ref-stats FILE (the statistics to compare with)');
  if (!refPath && !values['save-stats']) usage('eval fid', `--${mode} needs --ref-stats FILE (to compare with) or --save-stats FILE (to keep the statistics)`);
  if (refPath !== undefined) {
    if (mode === 'data') checkOutput('eval fid', 'ref-stats', { kind: 'out-file', arg: 'FILE' }, refPath);
    else if (!existsSync(refPath)) usage('eval fid', `--ref-stats ${refPath}: no such file (make it with --data)`);
    else checkOutput('eval fid', 'ref-stats', { kind: 'file', arg: 'FILE' }, refPath);
  }
  const { seed, batch: batchSize, 'kid-features': kidFeatures } = values;
  const kidOptions = { subsets: values['kid-subsets'], subsetSize: values['kid-subset-size'], seed };
  const sampler = values.sampler as SamplerName;
  const weights = mode === 'stats' ? undefined : values.weights ?? process.env.DIFFVIT_INCEPTION;
  if (mode !== 'stats') {
    if (!weights) usage('eval fid', '--weights FILE is required (the FID Inception-v3 as safetensors: convert pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth with scripts/convert_inception.py)');
    if (!existsSync(weights)) usage('eval fid', `--weights ${weights}: no such file`);
  }
  if (mode === 'data' && values.data !== 'shapes' && !(existsSync(values.data!) && statSync(values.data!).isDirectory())) {
    usage('eval fid', `--data SRC expected 'shapes' or a folder, received '${values.data}' (no such folder)`);
  }
  // A checkpoint's conditioning, from its header: checked before any sampling.
  let labels: Int32Array | null = null;
  if (mode === 'checkpoint') {
    const c = checkpointConfig('eval fid', values.checkpoint!);
    if (c.context_dim) usage('eval fid', `--checkpoint ${values.checkpoint} is text-conditioned (context_dim ${c.context_dim}); eval fid samples class-conditional or unconditional models`);
    labels = fidLabels(values.labels, c.num_classes, values.count ?? 10_000);
  }
  cliHooks.beforeWork('eval fid');
  const fidLib = await import('../eval/fid.js');
  if (mode === 'stats') {
    const stats = fidLib.loadStats(values.stats!);
    report(fidLib, stats, refPath!, `the statistics in ${values.stats} (${stats.metadata.source ?? (stats.count ? `${stats.count} images` : 'image count not recorded')})`, values.stats!, kidOptions, values.json);
    return 0;
  }

  const { loadInception } = await import('../eval/inception.js');
  const { createDataset } = await import('../data/dataset.js');
  type Source = import('../eval/fid.js').ImageSource;

  // ---- the images ----
  let bar: ProgressBar | null = null;
  let source: Source;
  let describeSource: string;
  let quantize = false;
  let cleanup = () => {};
  if (mode === 'data' || mode === 'images') {
    const root = (mode === 'data' ? values.data : values.images)!;
    let dataset;
    if (mode === 'data' && root === 'shapes') {
      dataset = createDataset({ kind: 'shapes', seed, size: values.count ?? 10_000 });
    } else {
      const isCifar = existsSync(join(root, 'data_batch_1.bin')) || existsSync(join(root, 'test_batch.bin'));
      if (mode === 'data' && isCifar) {
        dataset = createDataset({ kind: 'cifar10', root, split: values.split as 'train' | 'test' });
      } else {
        let size = values['image-size'] ?? 0;
        if (!size) {
          const { ImageFolderDataset } = await import('../data/image_folder.js');
          const { decodeImage } = await import('../image/decode.js');
          const first = new ImageFolderDataset(root, 1).file(0);
          const img = decodeImage(readFileSync(first), first);
          size = Math.min(img.width, img.height);
        }
        dataset = createDataset({ kind: 'folder', root, imageSize: size });
      }
    }
    const count = Math.min(dataset.size, values.count ?? dataset.size);
    source = fidLib.datasetSource(dataset, count < dataset.size ? subset(dataset.size, count, seed) : undefined);
    describeSource = `${count} images of ${dataset.name}${count < dataset.size ? ` (random subset of ${dataset.size}, seed ${seed})` : ''}`;
  } else {
    const { loadCheckpoint } = await import('../models/checkpoint.js');
    const { generate } = await import('../diffusion/sample.js');
    const { model, extra } = loadCheckpoint(values.checkpoint!, { device });
    for (const t of extra.values()) t.dispose();
    cleanup = () => model.dispose();
    const c = model.config;
    const count = values.count ?? 10_000;
    const guidance = values.guidance;
    const steps = given.has('steps') ? values.steps : sampler === 'ddim' ? 50 : values.steps;
    const sampleBatch = values['sample-batch'];
    const per = c.in_chans * c.img_size * c.img_size;
    // Samples are drawn in batches of sampleBatch (batch b with seed + b) and handed out in
    // Inception batches.
    let buffer: Float64Array | null = null, bufferStart = 0, bufferCount = 0;
    source = {
      count,
      read(start, n) {
        const pixels = new Float32Array(n * per);
        for (let filled = 0; filled < n;) {
          const at = start + filled;
          if (!buffer || at < bufferStart || at >= bufferStart + bufferCount) {
            const b = Math.floor(at / sampleBatch);
            bufferStart = b * sampleBatch;
            bufferCount = Math.min(sampleBatch, count - bufferStart);
            buffer = generate(model, {
              count: bufferCount, labels: labels ? labels.subarray(bufferStart, bufferStart + bufferCount) : null, sampler, steps, guidance,
              seed: seed + b, onStep: (i, total) => bar?.update(bufferStart, { sampling: `${i}/${total}` }),
            }).images;
          }
          const take = Math.min(n - filled, bufferStart + bufferCount - at);
          pixels.set(buffer.subarray((at - bufferStart) * per, (at - bufferStart + take) * per), filled * per);
          filled += take;
        }
        return { pixels, channels: c.in_chans, height: c.img_size, width: c.img_size };
      },
    };
    quantize = true;
    describeSource = `${count} samples of ${values.checkpoint} (${sampler}, ${steps} steps, guidance ${guidance}${labels ? `, labels ${values.labels ?? 'all'}` : ''}, seed ${seed})`;
  }

  // ---- features and statistics ----
  const net = loadInception(weights!);
  bar = new ProgressBar(source.count, mode === 'data' ? 'reference statistics' : mode === 'checkpoint' ? 'sample + Inception' : 'Inception features');
  let stats;
  try {
    stats = fidLib.computeStats(net, source, { batchSize, kidFeatures, seed, quantize, onProgress: (done) => bar?.update(done) });
  } finally {
    net.dispose();
    cleanup();
  }
  const meta = { source: describeSource };
  if (mode === 'data') {
    fidLib.saveStats(refPath!, stats, meta);
    if (values.json) console.log(JSON.stringify({ refStats: refPath, count: stats.count, kidFeatures: stats.kidCount }));
    else console.error(`diffvit eval fid: wrote the statistics of ${describeSource} to ${refPath}`);
    return 0;
  }
  if (values['save-stats']) {
    fidLib.saveStats(values['save-stats'], stats, meta);
    console.error(`diffvit eval fid: wrote the statistics of ${describeSource} to ${values['save-stats']}`);
  }
  if (refPath) report(fidLib, stats, refPath, describeSource, '--kid-features 0', kidOptions, values.json);
  return 0;
}

/** Loads the reference statistics, prints FID and (where both sides kept feature rows) KID. */
function report(fidLib: typeof import('../eval/fid.js'), stats: import('../eval/fid.js').FidStats, refPath: string,
  describeSource: string, statsOrigin: string, kidOptions: import('../eval/fid.js').KidOptions, json = false): void {
  const ref = fidLib.loadStats(refPath);
  if (ref.dim !== stats.dim) throw new Error(`diffvit eval fid: ${refPath} holds ${ref.dim}-d statistics, the compared ones are ${stats.dim}-d`);
  const distance = fidLib.fid(stats, ref);
  let kid: { mean: number; std: number; subsets: number; subsetSize: number } | null = null;
  let kidNote = '';
  if (!stats.kidFeatures) kidNote = `KID not computed (no feature rows kept: ${statsOrigin})`;
  else if (!ref.kidFeatures) kidNote = `KID not computed (${refPath} holds no feature rows)`;
  else kid = { ...fidLib.kid(stats, ref, kidOptions), subsets: kidOptions.subsets ?? 100 };
  if (json) {
    console.log(JSON.stringify({ fid: distance, kid, count: stats.count, refCount: ref.count, source: describeSource, refStats: refPath }, null, 2));
  } else {
    console.log(`FID  ${distance.toFixed(4)}   (${describeSource} vs ${ref.count ? `${ref.count} reference images in ` : ''}${refPath})`);
    console.log(kid ? `KID  ${kid.mean.toFixed(6)} ± ${kid.std.toFixed(6)}   (${kid.subsets} subsets of ${kid.subsetSize})` : kidNote);
  }
}
