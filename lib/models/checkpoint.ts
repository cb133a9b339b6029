/**
 * Model checkpoints: safetensors with the parameters under the twin's names and the config (and,
 * for training checkpoints, the trainer state) as JSON strings in __metadata__. Loading reads the
 * header, then only the tensors it needs, one at a time, so checkpoints of any size load in about
 * the memory of what they load.
 */
import { type Device, resolveDevice } from '../backend/backend.js';
import { assign_ } from '../ops/inplace.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkpointConfig } from './configs.js';
import { DiffusionViT } from './diffusion_vit.js';
import { readSafetensorsTensor, readSafetensorsValues, writeSafetensors } from './safetensors.js';
import { closeSafetensors, type OpenSafetensors, openSafetensors } from './safetensors_header.js';

export interface LoadedCheckpoint {
  model: DiffusionViT;
  metadata: Record<string, string>;
  /**
   * With options.extra: every tensor of the file that is not a model parameter (a training
   * checkpoint's trainer state), by name, on the host. Otherwise empty.
   */
  extra: Map<string, Tensor>;
}

export interface LoadCheckpointOptions {
  /**
   * Where the model's parameters go (default 'cpu'): the model is built there and each parameter
   * read from the file and written there in turn. The `extra` tensors stay on the host.
   */
  device?: Device;
  /**
   * Also read the tensors that are not model parameters into `extra` (default false: a training
   * checkpoint's trainer state is three times its model, and sampling does not need it).
   */
  extra?: boolean;
}

/**
 * The model of an open checkpoint, on `device` (null: the host): its parameters' entries are
 * checked against the model (names, shapes, dtypes) before any data is read, then each is read
 * and written into its parameter in turn.
 */
export function readCheckpointModel(file: OpenSafetensors, device: Device | null): DiffusionViT {
  const { path, entries, metadata } = file;
  const model = new DiffusionViT(checkpointConfig(metadata, `diffvit.loadCheckpoint: ${path}`), device ? { device } : {});
  try {
    const params = model.stateDict();
    const missing = [...params.keys()].filter((name) => !entries.has(name));
    if (missing.length) {
      throw new Error(`diffvit.loadCheckpoint: ${path}: missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5} more)` : ''} (the model's parameters for its config)`);
    }
    for (const [name, p] of params) {
      const { dtype, shape } = entries.get(name)!;
      if (shape.length !== p.shape.length || shape.some((s, i) => s !== p.shape[i])) {
        throw new Error(`diffvit.loadCheckpoint: ${path}: parameter '${name}' expected shape [${p.shape.join(', ')}], received [${shape.join(', ')}]`);
      }
      if (dtype.startsWith('I') !== (p.dtype === 'int32')) throw new Error(`diffvit.loadCheckpoint: ${path}: parameter '${name}' expected dtype ${p.dtype}, received ${dtype}`);
    }
    for (const [name, p] of params) assign_(p, readSafetensorsValues(file, name));
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Reads a checkpoint written by diffvit or exported by the twin and builds its model. */
export function loadCheckpoint(path: string, options: LoadCheckpointOptions = {}): LoadedCheckpoint {
  // An unknown or unavailable device fails before the file is read.
  const device = options.device === undefined ? null : resolveDevice(options.device, 'loadCheckpoint').device;
  const file = openSafetensors(path);
  try {
    const model = readCheckpointModel(file, device);
    const extra = new Map<string, Tensor>();
    if (options.extra) {
      const params = model.stateDict();
      try {
        for (const name of file.entries.keys()) if (!params.has(name)) extra.set(name, readSafetensorsTensor(file, name));
      } catch (e) {
        for (const t of extra.values()) t.dispose();
        model.dispose();
        throw e;
      }
    }
    return { model, metadata: file.metadata, extra };
  } finally {
    closeSafetensors(file);
  }
}

/**
 * Writes the model (config in metadata) plus any extra named tensors, atomically, one tensor at a
 * time (tensors on a device are read back to the host as the writer reaches them).
 */
export function saveCheckpoint(path: string, model: DiffusionViT, extra: Map<string, Tensor> = new Map(), metadata: Record<string, string> = {}): void {
  writeSafetensors(path, [...model.stateDict(), ...extra], { format: 'diffvit', config: JSON.stringify(model.config), ...metadata });
}
