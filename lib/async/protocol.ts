/**
 * The messages between the async API (lib/async/sampler.ts, trainer.ts) and its worker thread
 * (lib/async/worker.ts). Everything here is structured-cloneable: tensors travel as host arrays.
 */
import type { Device } from '../backend/backend.js';
import type { MatmulPrecision } from '../backend/kernels/gemm.js';
import type { GenerateOptions } from '../diffusion/sample.js';
import type { FullModelConfig } from '../models/configs.js';
import type { StepResult, TrainConfig } from '../train/trainer.js';

/** A model's parameters as host copies: name, values, shape (the buffers are transferred). */
export type HostWeights = [name: string, values: Float32Array, shape: number[]][];

/** A model for the worker: a checkpoint it reads itself, or a config and host copies of its parameters. */
export type ModelSource = { path: string } | { config: FullModelConfig; weights: HostWeights };

/** What the worker builds at start (its workerData). */
export type WorkerInit = {
  /** Set to 1 by dispose(): a running generate stops at its next sampler step. */
  stop: SharedArrayBuffer;
  /** The creating thread's default matmul precision (setMatmulPrecision), the worker's default too. */
  precision: MatmulPrecision;
} & (
  | {
      kind: 'sampler';
      model: ModelSource;
      /** Autoguidance's guide model, used by every generate call; null for classifier-free guidance. */
      guide: ModelSource | null;
      device: Device;
      /** The API call that started the worker, named by its errors. */
      op: string;
    }
  | { kind: 'trainer'; config: TrainConfig; resume: null }
  | { kind: 'trainer'; config: null; resume: { path: string; overrides: Partial<TrainConfig> } }
);

/** generate()'s options without what cannot cross threads (the callback; a tensor becomes host values). */
export type WireGenerateOptions = Omit<GenerateOptions, 'onStep' | 'context'> & {
  context?: { values: Float32Array; shape: number[] } | null;
};

export type Request =
  | {
      id: number;
      op: 'generate';
      options: WireGenerateOptions;
      /** The caller's matmul precision at the call (its autocast scope or default). */
      precision: MatmulPrecision;
      /** Forward every sampler step (the caller gave onStep). */
      progress: boolean;
      /** Set to 1 when the caller's AbortSignal fires. */
      abort: SharedArrayBuffer;
    }
  | { id: number; op: 'step' }
  | { id: number; op: 'save'; path: string };

export type Reply =
  | { type: 'ready'; device: string; config: FullModelConfig; step: number }
  | { type: 'failed'; message: string }
  | { type: 'step'; id: number; step: number; steps: number; sigma: number; batch: number }
  | { type: 'images'; id: number; images: Float64Array; shape: number[] }
  | { type: 'trained'; id: number; result: StepResult }
  | { type: 'saved'; id: number }
  | { type: 'error'; id: number; name: string; message: string };

/** Asks the worker, after the requests queued before it, to free its tensors and exit. */
export const CLOSE = 'close';
