/** `diffvit make-captions`: writes the synthetic shapes-with-captions text-to-image dataset. */
import { join } from 'node:path';

import { writeShapeCaptions } from '../data/caption_shapes.js';
import { cliHooks, MAX_SEED, type OptionSpec, parseOptions } from './options.js';
import { ProgressBar } from './progress.js';

export const MAKE_CAPTIONS_OPTIONS = {
  out: { kind: 'out-dir', arg: 'DIR', required: true },
  count: { kind: 'int', short: 'n', min: 1, max: 10_000_000, arg: 'N', default: 2000 },
  size: { kind: 'int', min: 8, max: 1024, arg: 'S', default: 32 },
  'context-len': { kind: 'int', min: 1, max: 1024, arg: 'L', default: 8 },
  'context-dim': { kind: 'int', min: 2, max: 4096, arg: 'C', default: 32 },
  seed: { kind: 'int', min: 0, max: MAX_SEED, arg: 'N', default: 0 },
} as const satisfies Record<string, OptionSpec>;

export async function makeCaptionsCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions('make-captions', argv, MAKE_CAPTIONS_OPTIONS);
  const { count, size, 'context-len': contextLen, 'context-dim': contextDim, seed } = values;
  cliHooks.beforeWork('make-captions');
  const bar = new ProgressBar(count, 'make-captions');
  const index = writeShapeCaptions(values.out, { count, size, seed, contextLen, contextDim, onImage: (i) => bar.update(i) });
  console.error(`diffvit make-captions: ${count} ${size}x${size} images with (${contextLen}, ${contextDim}) caption embeddings; index ${index}` +
    ` (train: diffvit train --data captions:${index}; sample: --captions ${join(values.out, 'sample-captions.txt')})`);
  return 0;
}
