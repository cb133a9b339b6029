/**
 * The async API's worker thread: loads the addon and the library in its own JS environment (the
 * backends register per environment; the native thread pool, allocator and CPU level are the
 * process's, shared with the main thread), builds the model or the trainer once from workerData,
 * then answers requests in order. See lib/async/sampler.ts and trainer.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { checkGuide } from '../diffusion/guidance.js';
import { generate } from '../diffusion/sample.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import { DiffusionViT } from '../models/diffusion_vit.js';
import { tensor } from '../ops/creation.js';
import { autocast, setMatmulPrecision } from '../tensor/autocast.js';
import type { Tensor } from '../tensor/tensor.js';
import { Trainer } from '../train/trainer.js';
import { CLOSE, type ModelSource, type Reply, type Request, type WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const stopping = new Int32Array(init.stop);
const port = parentPort!;
const post = (reply: Reply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

/** Thrown from a sampler step when the caller aborted (or disposed the worker). */
class Aborted extends Error {
  override name = 'AbortError';
}

function buildModel(source: ModelSource, device: string): DiffusionViT {
  if ('path' in source) {
    const { model, extra } = loadCheckpoint(source.path, { device });
    for (const t of extra.values()) t.dispose(); // a training checkpoint's optimiser state: not sampled
    return model;
  }
  const model = new DiffusionViT(source.config);
  const values = new Map<string, Tensor>(source.weights.map(([name, v, shape]) => [name, tensor(v, shape)]));
  try {
    model.loadStateDict(values);
    return model.to(device);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    for (const t of values.values()) t.dispose();
  }
}

let model: DiffusionViT | null = null;
let guide: DiffusionViT | null = null;
let trainer: Trainer | null = null;
try {
  // A Trainer without a matmulPrecision takes the default: the creating thread's, as in its own thread.
  setMatmulPrecision(init.precision);
  if (init.kind === 'sampler') {
    model = buildModel(init.model, init.device);
    if (init.guide) {
      guide = buildModel(init.guide, init.device);
      checkGuide(model, guide, init.op);
    }
  } else {
    trainer = init.resume ? Trainer.resume(init.resume.path, init.resume.overrides) : new Trainer(init.config!);
    model = trainer.model;
  }
  post({ type: 'ready', device: model.device, config: model.config, step: trainer?.step ?? 0 });
} catch (e) {
  model?.dispose();
  guide?.dispose();
  model = guide = null;
  post({ type: 'failed', message: (e as Error).message });
  port.close();
}

function handle(r: Request): void {
  // Queued behind a dispose(): its caller was answered already.
  if (Atomics.load(stopping, 0)) throw new Aborted('disposed');
  if (r.op === 'generate') {
    const abort = new Int32Array(r.abort);
    const check = () => {
      if (Atomics.load(abort, 0) || Atomics.load(stopping, 0)) throw new Aborted('aborted');
    };
    check(); // aborted while queued
    const { context: wire, ...options } = r.options;
    const context = wire ? tensor(wire.values, wire.shape) : null;
    try {
      const { images, shape } = autocast(r.precision, () =>
        generate(model!, {
          ...options,
          context,
          guide,
          onStep: (step, steps, sigma, batch = 0) => {
            check();
            if (r.progress) post({ type: 'step', id: r.id, step, steps, sigma, batch });
          },
        }),
      );
      post({ type: 'images', id: r.id, images, shape }, [images.buffer as ArrayBuffer]);
    } finally {
      context?.dispose();
    }
  } else if (r.op === 'step') {
    post({ type: 'trained', id: r.id, result: trainer!.trainStep() });
  } else {
    trainer!.save(r.path);
    post({ type: 'saved', id: r.id });
  }
}

port.on('message', (m: Request | typeof CLOSE) => {
  if (m === CLOSE) {
    // Freed here rather than left to the environment's teardown, which finalises each buffer.
    if (trainer) trainer.dispose();
    else model?.dispose();
    guide?.dispose();
    model = guide = trainer = null;
    port.close(); // the thread exits once this handler returns
    return;
  }
  try {
    if (!model) throw new Error('the worker has no model (its start failed)');
    handle(m);
  } catch (e) {
    const err = e as Error;
    post({ type: 'error', id: m.id, name: err.name, message: err.message });
  }
});
