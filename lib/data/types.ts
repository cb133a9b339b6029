/**
 * The dataset interface every source implements and the serializable spec of the built-in
 * sources. Loaders import only this module; lib/data/dataset.ts (createDataset) imports the loaders.
 */

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
