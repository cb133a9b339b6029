/**
 * The matmul precision `diffvit train` runs at when its command line does not say: what `train`
 * puts into the run's TrainConfig (and so into its checkpoints) and what `diffvit info` reports.
 * The Trainer applies it per step with autocast; the process default (setMatmulPrecision) is left alone.
 */
import { bf16GemmPath } from '../backend/cpu/runtime.js';
import type { MatmulPrecision } from '../tensor/autocast.js';

/** A precision given as --precision or DIFFVIT_MATMUL_PRECISION (`source`): float32 | bf16. */
export function precisionOption(v: string | undefined, source = '--precision', command = 'diffvit train'): MatmulPrecision | undefined {
  if (v === undefined || v === 'float32' || v === 'bf16') return v;
  throw new Error(`${command}: ${source} expected float32 or bf16, received '${v}'`);
}

export interface TrainPrecision {
  precision: MatmulPrecision;
  /** Why: 'DIFFVIT_MATMUL_PRECISION', 'native bf16' (AMX or AVX512_BF16 multiply bf16) or 'default'. */
  source: 'DIFFVIT_MATMUL_PRECISION' | 'native bf16' | 'default';
}

/**
 * The run's matmul precision when --precision does not choose (nor a resumed checkpoint or config
 * file): DIFFVIT_MATMUL_PRECISION, else bf16 where the CPU multiplies bf16 natively at the active
 * kernel level (AMX, or AVX512_BF16: 1.2-1.3x the images per second on a Zen 4, with sample
 * quality within measurement noise of float32, docs/training-notes.md), else float32.
 */
export function trainPrecision(): TrainPrecision {
  const env = precisionOption(process.env.DIFFVIT_MATMUL_PRECISION || undefined, 'DIFFVIT_MATMUL_PRECISION');
  if (env) return { precision: env, source: 'DIFFVIT_MATMUL_PRECISION' };
  return bf16GemmPath().path !== 'emulated' ? { precision: 'bf16', source: 'native bf16' } : { precision: 'float32', source: 'default' };
}
