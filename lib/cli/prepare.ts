/**
 * `diffvit prepare`: preprocess a dataset once into a memory-mapped cache file (lib/data/cache.ts),
 * then train from it with `diffvit train --data cache:FILE`.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { CachedDataset, writeDatasetCache } from '../data/cache.js';
import { createDataset } from '../data/dataset.js';
import { PREPARE_HELP } from './help.js';
import { ProgressBar } from './progress.js';
import { parseDataSpec } from './train.js';

export async function prepareCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' }, out: { type: 'string' }, 'image-size': { type: 'string' }, split: { type: 'string' },
      unlabelled: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(PREPARE_HELP);
    return 0;
  }
  if (!values.data) throw new Error('diffvit prepare: --data SPEC is required (see diffvit prepare --help)');
  if (!values.out) throw new Error('diffvit prepare: --out FILE is required, e.g. --out cifar10.dvcache');
  let imageSize: number | undefined;
  if (values['image-size'] !== undefined) {
    imageSize = Number(values['image-size']);
    if (!Number.isInteger(imageSize) || imageSize < 1) throw new Error(`diffvit prepare: --image-size expected a positive integer, received '${values['image-size']}'`);
  }
  const spec = parseDataSpec(values.data, imageSize ?? 0, 'diffvit prepare');
  // Folders have no natural size (each image is resized), so the size is the user's choice;
  // MNIST pads its 28×28 digits to 32 unless told otherwise.
  if (spec.kind === 'folder' && imageSize === undefined) {
    throw new Error('diffvit prepare: folder data needs --image-size N (the model\'s image size: 32 for CIFAR-10, 64 for CelebA, LSUN and CUB)');
  }
  if (spec.kind === 'mnist' && imageSize === undefined) spec.imageSize = 32;
  if (spec.kind === 'cache') throw new Error('diffvit prepare: --data is already a cache; give the source it was made from');
  if (values.split !== undefined) {
    if (values.split !== 'train' && values.split !== 'test') throw new Error(`diffvit prepare: --split expected train or test, received '${values.split}'`);
    if (spec.kind !== 'cifar10' && spec.kind !== 'mnist') throw new Error(`diffvit prepare: --split applies to cifar10: and mnist: data, not ${spec.kind}`);
    spec.split = values.split;
  }
  if (imageSize !== undefined && spec.kind !== 'folder' && spec.kind !== 'mnist') {
    throw new Error(`diffvit prepare: --image-size applies to folder: and mnist: data; ${spec.kind} images have a fixed size`);
  }

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
