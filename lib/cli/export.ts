/** `diffvit export`: a weights-only safetensors of a checkpoint's EMA (default) or raw weights. */
import { existsSync, statSync } from 'node:fs';

import { exportWeights } from '../models/export.js';
import { cliHooks, type OptionSpec, parseOptions, usage } from './options.js';

export const EXPORT_OPTIONS = {
  checkpoint: { kind: 'file', arg: 'FILE', required: true },
  out: { kind: 'out-file', arg: 'FILE', extensions: ['.safetensors'], required: true },
  ema: { kind: 'flag' },
  raw: { kind: 'flag' },
  force: { kind: 'flag' },
} as const satisfies Record<string, OptionSpec>;

export async function exportCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions('export', argv, EXPORT_OPTIONS);
  if (values.ema && values.raw) usage('export', 'give --ema or --raw, not both');
  // An earlier export (or anything else) at --out is not replaced unless asked.
  if (existsSync(values.out) && !values.force) usage('export', `--out ${values.out} exists: give --force to replace it, or choose another --out`);
  cliHooks.beforeWork('export');
  const r = exportWeights(values.checkpoint, values.out, { ema: !values.raw });
  const mib = statSync(values.out).size / (1 << 20);
  const what = r.weights === null ? 'weights' : `${r.weights === 'ema' ? 'EMA' : 'raw'} weights`;
  console.error(`diffvit export: wrote ${values.out} (${what}${r.step !== null ? ` of step ${r.step}` : ''}: ${r.tensors} tensors, ${mib.toFixed(1)} MiB)`);
  return 0;
}
