/**
 * Weights-only files from checkpoints: the model's parameters under the twin's names with the
 * config in __metadata__ (what saveCheckpoint writes, and what the twin's `forward --ckpt` and
 * loadCheckpoint load), taken from a training checkpoint's EMA or raw weights. Tensors are copied
 * byte for byte, one at a time, so checkpoints of any size export in bounded memory.
 */
import { statSync } from 'node:fs';

import { checkpointConfig, fullConfig } from './configs.js';
import { type StreamedEntry, writeSafetensorsStreamed } from './safetensors.js';
import { closeSafetensors, openSafetensors, readSafetensorsBytes } from './safetensors_header.js';
import { jsonErrorMessage } from '../json_message.js';

export interface ExportWeightsOptions {
  /**
   * true (default): the EMA weights (what `diffvit sample` and loadCheckpoint use: a training
   * checkpoint stores them under the plain names). false: the raw weights the optimiser updates
   * (a training checkpoint's `train.weights.*`, or a model-only checkpoint's weights as saved).
   */
  ema?: boolean;
}

export interface ExportedWeights {
  /** Which weights were written ('ema' or 'raw'; null: a model-only checkpoint's weights, of unknown kind). */
  weights: 'ema' | 'raw' | null;
  /** The training step of the source checkpoint (null for a model-only one). */
  step: number | null;
  tensors: number;
  /** Bytes of tensor data written. */
  bytes: number;
}

/** The file identity of `path` (device and inode), or null where it does not exist. */
function identity(path: string): string | null {
  try {
    const { dev, ino } = statSync(path);
    return `${dev}:${ino}`;
  } catch {
    return null;
  }
}

/**
 * Writes the weights of checkpoint `checkpointPath` to `outPath` as a weights-only safetensors
 * (atomically; the metadata records `weights` 'ema'/'raw' and the training `step`). Errors: not a
 * diffvit checkpoint (no or bad config), EMA weights asked of a model-only checkpoint (or raw
 * weights of an EMA export), a training checkpoint missing a raw weight, `outPath` being the
 * checkpoint itself, and unreadable or unwritable files.
 */
export function exportWeights(checkpointPath: string, outPath: string, options: ExportWeightsOptions = {}): ExportedWeights {
  for (const [name, value] of [['checkpointPath', checkpointPath], ['outPath', outPath]] as const) {
    if (typeof value !== 'string' || value === '') throw new Error(`diffvit.exportWeights: argument '${name}' expected a file path, received ${JSON.stringify(value)}`);
  }
  const ema = options.ema ?? true;
  if (typeof ema !== 'boolean') throw new Error(`diffvit.exportWeights: option 'ema' expected true or false, received ${JSON.stringify(ema)}`);
  const source = identity(checkpointPath);
  if (source !== null && source === identity(outPath)) {
    throw new Error(`diffvit.exportWeights: ${outPath}: is the checkpoint itself (export to another file: the checkpoint would be replaced)`);
  }
  const file = openSafetensors(checkpointPath);
  try {
    const { metadata, entries } = file;
    const config = checkpointConfig(metadata, `diffvit.exportWeights: ${checkpointPath}`);
    try {
      fullConfig(config);
    } catch (e) {
      throw new Error(`diffvit.exportWeights: ${checkpointPath}: __metadata__.config: ${(e as Error).message}`);
    }
    const training = metadata.trainer !== undefined && metadata.train_config !== undefined;
    let step: number | null = null;
    if (training) {
      try {
        step = (JSON.parse(metadata.trainer) as { step: number }).step;
      } catch (e) {
        throw new Error(`diffvit.exportWeights: ${checkpointPath}: __metadata__.trainer is not valid JSON (${jsonErrorMessage(e)})`);
      }
    } else if (metadata.step !== undefined) {
      step = Number(metadata.step); // an export of an export
    }
    // A training checkpoint's model entries are its EMA weights; its raw weights are train.weights.*.
    const names = [...entries.keys()].filter((name) => !name.startsWith('train.'));
    let weights: ExportedWeights['weights'];
    let sourceOf: (name: string) => string = (name) => name;
    if (ema) {
      if (!training && metadata.weights !== 'ema') {
        throw new Error(`diffvit.exportWeights: ${checkpointPath}: has no EMA weights (a model-only checkpoint: only a training checkpoint, written by Trainer.save, keeps them; { ema: false } exports its weights as saved)`);
      }
      weights = 'ema';
    } else if (training) {
      for (const name of names) {
        const raw = entries.get(`train.weights.${name}`), own = entries.get(name)!;
        if (!raw) throw new Error(`diffvit.exportWeights: ${checkpointPath}: lacks 'train.weights.${name}' (the raw weights of a training checkpoint)`);
        if (raw.dtype !== own.dtype || raw.shape.join() !== own.shape.join()) {
          throw new Error(`diffvit.exportWeights: ${checkpointPath}: 'train.weights.${name}' is ${raw.dtype} [${raw.shape.join(', ')}] where '${name}' is ${own.dtype} [${own.shape.join(', ')}]`);
        }
      }
      weights = 'raw';
      sourceOf = (name) => `train.weights.${name}`;
    } else {
      if (metadata.weights === 'ema') throw new Error(`diffvit.exportWeights: ${checkpointPath}: holds only EMA weights (an export with { ema: true }); the raw weights are in its training checkpoint`);
      weights = metadata.weights === 'raw' ? 'raw' : null;
    }
    const out: StreamedEntry[] = names.map((name) => {
      const { dtype, shape } = entries.get(sourceOf(name))!;
      return { name, dtype, shape, bytes: () => readSafetensorsBytes(file, sourceOf(name)) };
    });
    writeSafetensorsStreamed(outPath, out, {
      format: 'diffvit',
      config: metadata.config,
      ...(weights ? { weights } : {}),
      ...(step !== null ? { step: String(step) } : {}),
    });
    const bytes = names.reduce((sum, name) => {
      const { begin, end } = entries.get(sourceOf(name))!;
      return sum + end - begin;
    }, 0);
    return { weights, step, tensors: names.length, bytes };
  } finally {
    closeSafetensors(file);
  }
}
