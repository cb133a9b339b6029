/**
 * Loader worker: rebuilds the dataset from its spec and answers "batch k" requests with
 * transferred buffers, so decoding and augmentation run on another thread than the training step.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { createDataset, type DatasetSpec } from './dataset.js';
import { BatchSampler, type LoaderOptions } from './loader.js';

const { spec, options, stop } = workerData as { spec: DatasetSpec; options: LoaderOptions; stop: SharedArrayBuffer };
const stopping = new Int32Array(stop);
const sampler = new BatchSampler(createDataset(spec), options);

// 'close' arrives after the queued requests: closing the port lets the thread exit between batches.
parentPort!.on('message', (k: number | 'close') => {
  if (k === 'close') return parentPort!.close();
  if (Atomics.load(stopping, 0)) return; // closing: the queued prefetches are not wanted
  try {
    const b = sampler.batch(k);
    const transfer = [b.images.buffer as ArrayBuffer, b.labels.buffer as ArrayBuffer];
    if (b.context) transfer.push(b.context.buffer as ArrayBuffer);
    parentPort!.postMessage({ k, images: b.images, labels: b.labels, context: b.context }, transfer);
  } catch (e) {
    parentPort!.postMessage({ k, error: (e as Error).message });
  }
});
