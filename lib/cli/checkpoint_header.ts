/**
 * A checkpoint's model config read from its header alone, so commands can check their options
 * against the model (its classes, its context) before reading gigabytes of weights.
 */
import { fullConfig, type FullModelConfig, type ModelConfig } from '../models/configs.js';
import { readSafetensorsHeader } from '../models/safetensors_header.js';

export function checkpointConfig(command: string, path: string): FullModelConfig {
  const { metadata } = readSafetensorsHeader(path);
  const fail = (why: string): never => {
    throw new Error(`diffvit ${command}: --checkpoint ${path}: ${why}`);
  };
  if (!metadata.config) fail("no 'config' in __metadata__ (not a diffvit checkpoint)");
  let config: ModelConfig;
  try {
    config = JSON.parse(metadata.config);
  } catch (e) {
    return fail(`__metadata__.config is not valid JSON (${(e as Error).message})`);
  }
  try {
    return fullConfig(config);
  } catch (e) {
    return fail((e as Error).message);
  }
}
