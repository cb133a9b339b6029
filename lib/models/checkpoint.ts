/**
 * Model checkpoints: safetensors with the parameters under the twin's names and the config (and,
 * for training checkpoints, the trainer state) as JSON strings in __metadata__.
 */
import { type Device, resolveDevice } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig } from './configs.js';
import { DiffusionViT } from './diffusion_vit.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';

export interface LoadedCheckpoint {
  model: DiffusionViT;
  metadata: Record<string, string>;
  /** Every tensor of the file not consumed as a model parameter (trainer state), by name. */
  extra: Map<string, Tensor>;
}

export interface LoadCheckpointOptions {
  /**
   * Where the model's parameters go (default 'cpu'): the file is read to the host, the model built
   * and loaded there, then moved (Module.to). The `extra` tensors stay on the host.
   */
  device?: Device;
}

/** Reads a checkpoint written by diffvit or exported by the twin and builds its model. */
export function loadCheckpoint(path: string, options: LoadCheckpointOptions = {}): LoadedCheckpoint {
  // An unknown or unavailable device fails before the file is read.
  const device = options.device === undefined ? null : resolveDevice(options.device, 'loadCheckpoint').device;
  const { tensors, metadata } = readSafetensors(path);
  try {
    if (!metadata.config) throw new Error(`diffvit.loadCheckpoint: ${path}: no 'config' in __metadata__ (not a diffvit checkpoint)`);
    let config: ModelConfig;
    try {
      config = JSON.parse(metadata.config);
    } catch (e) {
      throw new Error(`diffvit.loadCheckpoint: ${path}: __metadata__.config is not valid JSON (${(e as Error).message})`);
    }
    const model = new DiffusionViT(config);
    const names = new Set(model.stateDict().keys());
    const params = new Map([...tensors].filter(([k]) => names.has(k)));
    try {
      model.loadStateDict(params, { strict: false });
    } catch (e) {
      model.dispose();
      throw new Error(`${(e as Error).message} (in ${path})`);
    }
    for (const t of params.values()) t.dispose();
    if (device) {
      try {
        model.to(device);
      } catch (e) {
        model.dispose();
        throw e;
      }
    }
    return { model, metadata, extra: new Map([...tensors].filter(([k]) => !names.has(k))) };
  } catch (e) {
    for (const t of tensors.values()) if (!t.isDisposed) t.dispose();
    throw e;
  }
}

/** Writes the model (config in metadata) plus any extra named tensors, atomically; tensors on a device are read back to the host for the write. */
export function saveCheckpoint(path: string, model: DiffusionViT, extra: Map<string, Tensor> = new Map(), metadata: Record<string, string> = {}): void {
  writeSafetensors(path, [...model.stateDict(), ...extra], { format: 'diffvit', config: JSON.stringify(model.config), ...metadata });
}
