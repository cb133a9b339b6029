/**
 * Sampling off the calling thread, for servers: generate() runs on a worker thread, so the event
 * loop keeps serving while images are sampled.
 *
 *   const sampler = await dv.SamplingWorker.create('run/checkpoint.safetensors');
 *   const { images, shape } = await sampler.generate({ count: 8, seed: 1, signal });  // = generate()'s, bit for bit
 *   await sampler.dispose();
 *
 * The worker gets the weights once (a checkpoint it reads itself, or host copies of a model's
 * parameters, transferred) and keeps its model for every call; calls run one at a time, in order.
 * dv.generateAsync(modelOrPath, options) is the one-shot form (a worker for one call).
 * Autoguidance: give the worker its guide model at the start,
 *
 *   const sampler = await dv.SamplingWorker.create('run/checkpoint.safetensors', { guide: 'early/checkpoint.safetensors' });
 *
 * and every call guides away from it (generate()'s `guide`), or pass `guide` to generateAsync.
 */
import { resolveDevice, type Device } from '../backend/backend.js';
import type { GenerateOptions } from '../diffusion/sample.js';
import type { FullModelConfig } from '../models/configs.js';
import { DiffusionViT } from '../models/diffusion_vit.js';
import { describe } from '../ops/util.js';
import { autocast, getMatmulPrecision, matmulPrecision } from '../tensor/autocast.js';
import { Tensor } from '../tensor/tensor.js';
import { WorkerHost } from './host.js';
import type { HostWeights, ModelSource, WireGenerateOptions, WorkerInit } from './protocol.js';

/**
 * generate()'s options but the guide model (autoguidance's guide is loaded into the worker once,
 * by SamplingWorker.create's or generateAsync's `guide`), and an AbortSignal that stops the
 * sampling at its next step.
 */
export interface AsyncGenerateOptions extends Omit<GenerateOptions, 'guide'> {
  /**
   * Aborting rejects the call at once with the signal's reason; the worker stops at its next
   * sampler step and is ready for the next call.
   */
  signal?: AbortSignal;
}

export interface SamplingWorkerOptions {
  /**
   * Where the worker's model lives: default the model's own device, or 'cpu' for a checkpoint
   * path. (generate's `device` option, as in generate(), must then name this device or be left out.)
   */
  device?: Device;
  /**
   * Autoguidance: the weaker model every call guides away from (generate()'s `guide`), a
   * DiffusionViT (its weights are copied) or a checkpoint path; it goes to the worker's device.
   */
  guide?: DiffusionViT | string;
}

// Every option generate() takes, checked so that a typo fails before a worker starts.
const OPTION_KEYS = Object.keys({
  count: 1, labels: 1, context: 1, sampler: 1, steps: 1, guidance: 1, guidanceInterval: 1, seed: 1, sigmaMin: 1,
  sigmaMax: 1, rho: 1, churn: 1, onStep: 1, device: 1, batchSize: 1, cudaGraph: 1, signal: 1,
} satisfies Record<keyof AsyncGenerateOptions, 1>);

/** generateAsync's options: a call's, and the guide model of its worker. */
export interface GenerateAsyncOptions extends AsyncGenerateOptions {
  /** Autoguidance (generate()'s `guide`): a DiffusionViT or a checkpoint path. */
  guide?: DiffusionViT | string;
}

/** Checks what generate() itself cannot (what crosses threads, unknown keys); errors name `op` and the option. */
function checkOptions(op: string, options: unknown): GenerateAsyncOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new Error(`diffvit.${op}: argument 'options' expected an object of generate() options, received ${describe(options)}`);
  }
  const o = options as GenerateAsyncOptions;
  for (const key of Object.keys(o)) {
    if (key === 'guide') {
      if (op === 'generateAsync') continue;
      throw new Error(`diffvit.${op}: option 'guide' (autoguidance) is the worker's: give it to SamplingWorker.create`);
    }
    if (!OPTION_KEYS.includes(key)) throw new Error(`diffvit.${op}: unknown option '${key}' (options: ${OPTION_KEYS.join(', ')})`);
  }
  if (o.onStep !== undefined && typeof o.onStep !== 'function') {
    throw new Error(`diffvit.${op}: option 'onStep' expected a function, received ${describe(o.onStep)}`);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new Error(`diffvit.${op}: option 'signal' expected an AbortSignal, received ${describe(o.signal)}`);
  }
  if (o.context != null && (!(o.context instanceof Tensor) || o.context.isDisposed)) {
    throw new Error(`diffvit.${op}: option 'context' expected a live Tensor, received ${describe(o.context)}`);
  }
  return o;
}

/** The options as they cross to the worker: the context's values go (read back to the host if it lives on a device). */
function wireOptions(o: AsyncGenerateOptions): WireGenerateOptions {
  const { onStep: _onStep, signal: _signal, context, ...rest } = o;
  return { ...rest, context: context ? { values: context.data(), shape: [...context.shape] } : null };
}

function checkModel(op: string, arg: string, model: DiffusionViT): void {
  if (model.parameters().some((p) => p.isDisposed)) {
    throw new Error(`diffvit.${op}: argument '${arg}' is a disposed model (its parameters were freed by dispose())`);
  }
}

/**
 * A model (argument `arg`) as it crosses to the worker: a checkpoint path as it is, a
 * DiffusionViT as host copies of its parameters (read back from a device), to be transferred.
 */
function modelSource(op: string, arg: string, model: unknown): { source: ModelSource; transfer: ArrayBuffer[] } {
  if (typeof model === 'string' && model !== '') return { source: { path: model }, transfer: [] };
  if (!(model instanceof DiffusionViT)) {
    throw new Error(`diffvit.${op}: argument '${arg}' expected a DiffusionViT or a checkpoint path, received ${describe(model)}`);
  }
  checkModel(op, arg, model);
  const weights: HostWeights = [...model.stateDict()].map(([name, t]) => [name, t.data(), [...t.shape]]);
  return { source: { config: model.config, weights }, transfer: weights.map(([, v]) => v.buffer as ArrayBuffer) };
}

/** What the worker builds, and the buffers transferred to it. */
function samplerInit(op: string, model: unknown, options: unknown): { init: WorkerInit; transfer: ArrayBuffer[] } {
  if (typeof options !== 'object' || options === null) throw new Error(`diffvit.${op}: argument 'options' expected an object, received ${describe(options)}`);
  const o = options as SamplingWorkerOptions;
  for (const key of Object.keys(o)) if (key !== 'device' && key !== 'guide') throw new Error(`diffvit.${op}: unknown option '${key}' (options: device, guide)`);
  const main = modelSource(op, 'model', model);
  const guide = o.guide === undefined ? null : modelSource(op, 'guide', o.guide);
  // Default: a model's own device; a checkpoint's, the CPU.
  const device = resolveDevice(o.device ?? (model instanceof DiffusionViT ? model.device : 'cpu'), op).device;
  return {
    init: { kind: 'sampler', model: main.source, guide: guide?.source ?? null, device, op, stop: new SharedArrayBuffer(4), precision: getMatmulPrecision() },
    transfer: [...main.transfer, ...(guide?.transfer ?? [])],
  };
}

/** SamplingWorker.create with errors naming `op` (set by the class). */
let startSampler: (op: string, model: unknown, options: unknown) => Promise<SamplingWorker>;

export class SamplingWorker {
  private constructor(
    private readonly host: WorkerHost,
    /** The model's full config. */
    readonly config: FullModelConfig,
    /** Where the worker's model lives ('cpu', 'cuda:0', ...). */
    readonly device: string,
  ) {}

  /**
   * Starts a worker with a snapshot of `model`'s weights (later changes to the model are not
   * seen), or with the checkpoint at a path (as loadCheckpoint reads it: the EMA weights of a
   * training checkpoint). Rejects with the loader's error (e.g. a missing file) after the worker
   * has exited.
   */
  static create(model: DiffusionViT | string, options: SamplingWorkerOptions = {}): Promise<SamplingWorker> {
    return startSampler('SamplingWorker.create', model, options);
  }

  static {
    // Here, where the private constructor is in reach; generateAsync uses it too.
    startSampler = async (op, model, options) => {
      const { init, transfer } = samplerInit(op, model, options);
      const host = new WorkerHost('SamplingWorker', init, transfer);
      try {
        const ready = await host.ready;
        return new SamplingWorker(host, ready.config, ready.device);
      } catch (e) {
        await host.dispose();
        throw e;
      }
    };
  }

  /**
   * generate() on the worker's model: the same images for the same options, bit for bit (the
   * matmul precision is the caller's at this call). onStep runs on the calling thread after each
   * step. Rejects with generate()'s error message for bad options.
   */
  generate(options: AsyncGenerateOptions = {}): Promise<{ images: Float64Array; shape: number[] }> {
    return new Promise((resolve, reject) => {
      const op = 'SamplingWorker.generate';
      const wire = wireOptions(checkOptions(op, options)); // a throw here rejects
      const { signal, onStep } = options;
      if (signal?.aborted) return reject(signal.reason);
      const abort = new Int32Array(new SharedArrayBuffer(4));
      // The call settles now; the worker sees the flag at its next step and drops the call.
      const stop = (reason: unknown) => {
        Atomics.store(abort, 0, 1);
        reject(reason);
      };
      const onAbort = () => stop(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.host
        .request({ op: 'generate', options: wire, precision: matmulPrecision(), progress: onStep !== undefined, abort: abort.buffer as SharedArrayBuffer }, (m) => {
          try {
            onStep!(m.step, m.steps, m.sigma, m.batch);
          } catch (e) {
            stop(e); // as in generate(): a throwing onStep ends the call with its error
          }
        })
        .then((m) => (m.type === 'images' ? resolve({ images: m.images, shape: m.shape }) : reject(new Error(`diffvit.${op}: unexpected reply '${m.type}'`))), reject)
        .finally(() => signal?.removeEventListener('abort', onAbort));
    });
  }

  /** Stops the worker (a call in flight is aborted at its next step) and frees its model. */
  dispose(): Promise<void> {
    return this.host.dispose();
  }
}

/**
 * generate() on a worker thread, for one call: starts a SamplingWorker for `model` (a
 * DiffusionViT, whose weights are copied to it, or a checkpoint path; and the guide model, if
 * any, likewise), samples, disposes it. The options are checked before the worker starts. For
 * repeated calls keep a SamplingWorker: it loads the weights once.
 */
export async function generateAsync(model: DiffusionViT | string, options: GenerateAsyncOptions = {}): Promise<{ images: Float64Array; shape: number[] }> {
  const { guide, ...call } = checkOptions('generateAsync', options);
  // The caller's precision at the call: its autocast scope has closed by the time the worker is up.
  const precision = matmulPrecision();
  // A model's worker copy stays on the model's device (generate's 'device' option is checked
  // against it there, as in generate()); a checkpoint is loaded where the option says.
  const device = typeof model === 'string' ? options.device : undefined;
  const sampler = await startSampler('generateAsync', model, { ...(device === undefined ? {} : { device }), ...(guide === undefined ? {} : { guide }) });
  try {
    return await autocast(precision, () => sampler.generate(call));
  } finally {
    await sampler.dispose();
  }
}
