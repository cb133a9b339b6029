/**
 * createDataset (a DatasetSpec to its loader) and the built-in `shapes` source. The interfaces
 * live in ./types.js (the loaders import only those) and are re-exported here.
 */
import { CachedDataset } from './cache.js';
import { CaptionDataset } from './captions.js';
import { Cifar10Dataset } from './cifar10.js';
import { ImageFolderDataset } from './image_folder.js';
import { MnistDataset } from './mnist.js';
import { SHAPE_CLASSES, shapeImage } from './shapes.js';
import type { DatasetSpec, Example, ImageDataset } from './types.js';

export type { DatasetSpec, Example, ImageDataset } from './types.js';

export class ShapesDataset implements ImageDataset {
  readonly name = 'shapes';
  readonly channels = 3;
  readonly imageSize = 32;
  readonly numClasses = SHAPE_CLASSES.length;
  readonly classNames = SHAPE_CLASSES;
  constructor(
    readonly seed = 0,
    readonly size = 50_000,
  ) {}
  get(index: number): Example {
    return shapeImage(this.seed, index, this.imageSize);
  }
}

export function createDataset(spec: DatasetSpec): ImageDataset {
  switch (spec.kind) {
    case 'shapes':
      return new ShapesDataset(spec.seed ?? 0, spec.size ?? 50_000);
    case 'folder':
      return new ImageFolderDataset(spec.root, spec.imageSize);
    case 'cifar10':
      return new Cifar10Dataset(spec.root, spec.split ?? 'train');
    case 'mnist':
      return new MnistDataset(spec.root, spec.split ?? 'train', spec.imageSize ?? 32);
    case 'cache':
      return new CachedDataset(spec.path);
    case 'captions':
      return new CaptionDataset(spec.index, spec.imageSize);
  }
}
