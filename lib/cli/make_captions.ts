/** `diffvit make-captions`: writes the synthetic shapes-with-captions text-to-image dataset. */
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { writeShapeCaptions } from '../data/caption_shapes.js';
import { MAKE_CAPTIONS_HELP } from './help.js';
import { ProgressBar } from './progress.js';

export async function makeCaptionsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' }, count: { type: 'string', short: 'n' }, size: { type: 'string' }, 'context-len': { type: 'string' },
      'context-dim': { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(MAKE_CAPTIONS_HELP);
    return 0;
  }
  if (!values.out) throw new Error('diffvit make-captions: --out DIR is required (see diffvit make-captions --help)');
  const int = (name: string, v: string | undefined, fallback: number, min: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`diffvit make-captions: --${name} expected an integer >= ${min}, received '${v}'`);
    return n;
  };
  const count = int('count', values.count, 2000, 1);
  const size = int('size', values.size, 32, 8);
  const contextLen = int('context-len', values['context-len'], 8, 1);
  const contextDim = int('context-dim', values['context-dim'], 32, 2);
  const bar = new ProgressBar(count, 'make-captions');
  const index = writeShapeCaptions(values.out, { count, size, seed: int('seed', values.seed, 0, 0), contextLen, contextDim, onImage: (i) => bar.update(i) });
  console.error(`diffvit make-captions: ${count} ${size}x${size} images with (${contextLen}, ${contextDim}) caption embeddings; index ${index}` +
    ` (train: diffvit train --data captions:${index}; sample: --captions ${join(values.out, 'sample-captions.txt')})`);
  return 0;
}
