/** The dataset interface every source implements, and the built-in `shapes` source. */
import { CachedDataset } from './cache.js';
import { CaptionDataset } from './captions.js';
import { Cifar10Dataset } from './cifar10.js';
import { ImageFolderDataset } from './image_folder.js';
import { MnistDataset } from './mnist.js';
import { SHAPE_CLASSES, shapeImage } from './shapes.js';

export interface Example {
  pixels: Float32Array; // (C, H, W) in [-1, 1]
  label: number; // class index, or 0 for unlabelled data
  /** (L, C) context embedding (text conditioning), row-major; only datasets with contextLen/contextDim. */
  context?: Float32Array;
}

export interface ImageDataset {
  readonly name: string;
  /** Number of distinct examples (generated datasets: the length of one epoch). */
  readonly size: number;
  readonly channels: number;
  readonly imageSize: number;
  /** 0 for unlabelled data. */
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Context tokens L and features C per example, for datasets whose examples carry a context. */
  readonly contextLen?: number;
  readonly contextDim?: number;
  get(index: number): Example;
}

/** Serializable description of a dataset, so a loader worker can rebuild it. */
export type DatasetSpec =
  | { kind: 'shapes'; seed?: number; size?: number }
  | { kind: 'folder'; root: string; imageSize: number }
  | { kind: 'cifar10'; root: string; split?: 'train' | 'test' }
  | { kind: 'mnist'; root: string; split?: 'train' | 'test'; imageSize?: number }
  | { kind: 'cache'; path: string } // a file written by writeDatasetCache / `diffvit prepare`
  | { kind: 'captions'; index: string; imageSize: number };

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
