/**
 * `diffvit prepare`: preprocess a dataset once into a memory-mapped cache file (lib/data/cache.ts),
 * then train from it with `diffvit train --data cache:FILE`.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';

import { CachedDataset, writeDatasetCache } from '../data/cache.js';
import { createDataset } from '../data/dataset.js';
import { cliHooks, type OptionSpec, parseOptions, usage } from './options.js';
import { ProgressBar } from './progress.js';
import { checkDataPaths, parseDataSpec } from './train_options.js';

export const PREPARE_OPTIONS = {
  data: { kind: 'string', arg: 'SPEC', required: true },
  out: { kind: 'out-file', arg: 'FILE', required: true },
  'image-size': { kind: 'int', min: 1, max: 4096, arg: 'N' },
  split: { kind: 'choice', choices: ['train', 'test'], arg: 'train|test', default: 'train' },
  unlabelled: { kind: 'flag' },
} as const satisfies Record<string, OptionSpec>;

export async function prepareCommand(argv: string[]): Promise<number> {
  const { values, given } = parseOptions('prepare', argv, PREPARE_OPTIONS);
  const imageSize = values['image-size'];
  const spec = parseDataSpec(values.data, imageSize ?? 0, 'prepare');
  // Folders have no natural size (each image is resized), so the size is the user's choice;
  // MNIST pads its 28×28 digits to 32 unless told otherwise.
  if (spec.kind === 'folder' && imageSize === undefined) {
    usage('prepare', 'folder data needs --image-size N (the model\'s image size: 32 for CIFAR-10, 64 for CelebA, LSUN and CUB)');
  }
  if (spec.kind === 'mnist' && imageSize === undefined) spec.imageSize = 32;
  if (spec.kind === 'cache') usage('prepare', '--data is already a cache; give the source it was made from');
  if (spec.kind === 'captions') usage('prepare', '--data captions: cannot be cached (its captions and embeddings are separate files); train from it directly');
  if (given.has('split')) {
    if (spec.kind !== 'cifar10' && spec.kind !== 'mnist') usage('prepare', `--split applies to cifar10: and mnist: data, not ${spec.kind}`);
    spec.split = values.split as 'train' | 'test';
  }
  if (imageSize !== undefined && spec.kind !== 'folder' && spec.kind !== 'mnist') {
    usage('prepare', `--image-size applies to folder: and mnist: data; ${spec.kind} images have a fixed size`);
  }
  checkDataPaths('prepare', spec);
  cliHooks.beforeWork('prepare');

  const dataset = createDataset(spec);
  console.error(`diffvit prepare: ${dataset.name}: ${dataset.size} images, ${dataset.channels}×${dataset.imageSize}×${dataset.imageSize}, ` +
    `${values.unlabelled || !dataset.numClasses ? 'unlabelled' : `${dataset.numClasses} classes`} -> ${values.out}`);
  const bar = new ProgressBar(dataset.size, 'prepare');
  const t0 = Date.now();
  writeDatasetCache(dataset, values.out, {
    unlabelled: values.unlabelled,
    source: 'root' in spec ? { ...spec, root: resolve(spec.root) } : spec, // provenance: absolute paths
    onProgress: (done) => bar.update(done, { 'img/s': (done / Math.max((Date.now() - t0) / 1000, 1e-3)).toFixed(0) }),
  });
  // Read it back through the loader's path: header, length and labels are checked on open.
  const cached = new CachedDataset(values.out);
  const mib = statSync(values.out).size / (1 << 20);
  console.error(`diffvit prepare: wrote ${values.out} (${mib.toFixed(1)} MiB, ${cached.size} images${cached.numClasses ? `, classes ${cached.classNames.join(', ')}` : ''}) ` +
    `in ${((Date.now() - t0) / 1000).toFixed(1)} s; train with --data cache:${values.out}`);
  return 0;
}
