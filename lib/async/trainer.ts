/**
 * A Trainer on a worker thread, for servers: each training step runs off the calling thread.
 *
 *   const trainer = await dv.TrainerWorker.create(config);   // or TrainerWorker.resume(path)
 *   for (let i = 0; i < config.steps; i++) console.log((await trainer.trainStep()).loss);
 *   await trainer.save('run/checkpoint.safetensors');
 *   await trainer.dispose();
 *
 * The worker builds the Trainer (model, optimiser, EMA, data) itself from the config, so the run is
 * the synchronous Trainer's, step for step and bit for bit. Requests run one at a time, in order.
 */
import type { FullModelConfig } from '../models/configs.js';
import { describe } from '../ops/util.js';
import { getMatmulPrecision } from '../tensor/autocast.js';
import type { StepResult, TrainConfig } from '../train/trainer.js';
import { WorkerHost } from './host.js';
import type { WorkerInit } from './protocol.js';

export class TrainerWorker {
  /** Optimiser steps done (the worker's Trainer.step), updated as each trainStep() resolves. */
  step: number;

  private constructor(
    private readonly host: WorkerHost,
    /** The model's full config. */
    readonly config: FullModelConfig,
    /** Where the run executes ('cpu', 'cuda:0', ...). */
    readonly device: string,
    step: number,
  ) {
    this.step = step;
  }

  /** new Trainer(config) on a worker; rejects with the Trainer's error for a bad config. */
  static create(config: TrainConfig): Promise<TrainerWorker> {
    if (typeof config !== 'object' || config === null) {
      return Promise.reject(new Error(`diffvit.TrainerWorker.create: argument 'config' expected a TrainConfig object, received ${describe(config)}`));
    }
    return TrainerWorker.start({ kind: 'trainer', config, resume: null, stop: new SharedArrayBuffer(4), precision: getMatmulPrecision() });
  }

  /** Trainer.resume(path, overrides) on a worker: continues the run saved in `path`. */
  static resume(path: string, overrides: Partial<TrainConfig> = {}): Promise<TrainerWorker> {
    if (typeof path !== 'string' || path === '') {
      return Promise.reject(new Error(`diffvit.TrainerWorker.resume: argument 'path' expected a checkpoint path, received ${describe(path)}`));
    }
    if (typeof overrides !== 'object' || overrides === null) {
      return Promise.reject(new Error(`diffvit.TrainerWorker.resume: argument 'overrides' expected an object of TrainConfig fields, received ${describe(overrides)}`));
    }
    return TrainerWorker.start({ kind: 'trainer', config: null, resume: { path, overrides }, stop: new SharedArrayBuffer(4), precision: getMatmulPrecision() });
  }

  private static async start(init: WorkerInit): Promise<TrainerWorker> {
    const host = new WorkerHost('TrainerWorker', init);
    try {
      const ready = await host.ready;
      return new TrainerWorker(host, ready.config, ready.device, ready.step);
    } catch (e) {
      await host.dispose();
      throw e;
    }
  }

  /** One Trainer.trainStep() (its batch loaded on the worker); rejects with the step's error. */
  async trainStep(): Promise<StepResult> {
    const m = await this.host.request({ op: 'step' });
    if (m.type !== 'trained') throw new Error(`diffvit.TrainerWorker.trainStep: unexpected reply '${m.type}'`);
    this.step = m.result.step;
    return m.result;
  }

  /** Trainer.save(path): the checkpoint after every step requested before this call. */
  async save(path: string): Promise<void> {
    if (typeof path !== 'string' || path === '') throw new Error(`diffvit.TrainerWorker.save: argument 'path' expected a file path, received ${describe(path)}`);
    const m = await this.host.request({ op: 'save', path });
    if (m.type !== 'saved') throw new Error(`diffvit.TrainerWorker.save: unexpected reply '${m.type}'`);
  }

  /** Rejects every request not yet answered, lets a step in flight finish, then stops the worker and frees the run. */
  dispose(): Promise<void> {
    return this.host.dispose();
  }
}
