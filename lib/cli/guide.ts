import { GUIDE_MATCHES } from '../diffusion/guidance.js';
import type { FullModelConfig } from '../models/configs.js';
import { checkpointConfig } from './checkpoint_header.js';
import { usage } from './options.js';

/**
 * `--guide FILE` (autoguidance): checks from its header, before any work, that the checkpoint can
 * guide the sampled model (the same images and conditioning); returns the path to load.
 */
export function guideOption(command: string, path: string | undefined, main: FullModelConfig): string | undefined {
  if (path === undefined) return undefined;
  const guide = checkpointConfig(command, path, 'guide');
  for (const key of GUIDE_MATCHES) {
    if (guide[key] !== main[key]) usage(command, `--guide ${path}: expected a model with the --checkpoint's ${key} (${main[key]}), the guide has ${guide[key]}`);
  }
  return path;
}
