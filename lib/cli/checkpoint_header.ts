/**
 * A checkpoint's model config read from its header alone, so commands can check their options
 * against the model (its classes, its context) before reading gigabytes of weights.
 */
import { checkpointConfig as configOf, fullConfig, type FullModelConfig } from '../models/configs.js';
import { readSafetensorsHeader } from '../models/safetensors_header.js';

export function checkpointConfig(command: string, path: string, flag = 'checkpoint'): FullModelConfig {
  const where = `diffvit ${command}: --${flag} ${path}`;
  const config = configOf(readSafetensorsHeader(path).metadata, where);
  try {
    return fullConfig(config);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}
