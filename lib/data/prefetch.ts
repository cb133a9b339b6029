/**
 * Runs the BatchSampler ahead of training on a worker thread: while step k trains, batches
 * k+1 … k+depth are decoded. Batch k is the same as BatchSampler.batch(k) (a pure function of k),
 * so prefetching never changes a run. Without the compiled worker (running from TypeScript
 * sources) it falls back to loading on the calling thread. close() stops the worker between
 * batches rather than terminating it mid-batch: Node aborts the whole process when a worker is
 * terminated inside zlib (a PNG being decoded).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { packageRoot } from '../package_root.js';
import { createDataset, type DatasetSpec } from './dataset.js';
import { type Batch, BatchSampler, type LoaderOptions } from './loader.js';

export class PrefetchLoader {
  private readonly worker: Worker | null;
  private readonly local: BatchSampler | null;
  private readonly pending = new Map<number, { resolve: (b: Batch) => void; reject: (e: Error) => void; promise: Promise<Batch> }>();
  private failure: Error | null = null;
  /** Set to 1 by close(): the worker skips the requests still queued. */
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private exited: Promise<void> | null = null;
  private closed = false;

  constructor(spec: DatasetSpec, options: LoaderOptions, readonly depth = 2) {
    const script = join(packageRoot(), 'dist', 'lib', 'data', 'worker.js');
    if (existsSync(script)) {
      this.worker = new Worker(script, { workerData: { spec, options, stop: this.stopFlag.buffer } });
      this.local = null;
      this.exited = new Promise((resolve) => this.worker!.once('exit', () => resolve()));
      this.worker.on('message', (m: { k: number; images?: Float32Array; labels?: Int32Array; context?: Float32Array; error?: string }) => {
        const p = this.pending.get(m.k);
        if (!p) return;
        if (m.error) p.reject(new Error(m.error));
        else p.resolve(m.context ? { images: m.images!, labels: m.labels!, context: m.context } : { images: m.images!, labels: m.labels! });
      });
      this.worker.on('error', (e) => {
        this.failure = e;
        for (const p of this.pending.values()) p.reject(e);
      });
    } else {
      this.worker = null;
      this.local = new BatchSampler(createDataset(spec), options);
    }
  }

  /** True when batches are prepared on a worker thread. */
  get threaded(): boolean {
    return this.worker !== null;
  }

  private request(k: number): Promise<Batch> {
    let p = this.pending.get(k);
    if (!p) {
      let resolve!: (b: Batch) => void, reject!: (e: Error) => void;
      const promise = new Promise<Batch>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Batches queued ahead may never be awaited (the run stops, or fails on an earlier batch):
      // their failure must not surface as an unhandled rejection. get() awaits the promise itself.
      promise.catch(() => {});
      p = { resolve, reject, promise };
      this.pending.set(k, p);
      if (this.failure) reject(this.failure);
      else this.worker!.postMessage(k);
    }
    return p.promise;
  }

  /** Batch k; queues k+1 … k+depth behind it. */
  async get(k: number): Promise<Batch> {
    if (this.closed) throw new Error(`diffvit.PrefetchLoader: get(${k}) after close()`);
    if (this.local) return this.local.batch(k);
    for (let i = 0; i <= this.depth; i++) this.request(k + i);
    const batch = await this.request(k);
    this.pending.delete(k);
    return batch;
  }

  /** Stops the worker after the batch it is working on (at most a minute, then it is terminated). */
  async close(): Promise<void> {
    if (!this.worker || this.closed) return;
    this.closed = true;
    Atomics.store(this.stopFlag, 0, 1);
    this.worker.postMessage('close');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 60_000)));
    if ((await Promise.race([this.exited!, timeout])) === 'timeout') await this.worker.terminate();
    clearTimeout(timer);
    const closed = new Error('diffvit.PrefetchLoader: closed');
    for (const p of this.pending.values()) p.reject(closed);
    this.pending.clear();
  }
}
