/**
 * The matmul precision `diffvit train` runs at when its command line does not say: what `train`
 * puts into the run's TrainConfig (and so into its checkpoints) and what `diffvit info` reports.
 * The Trainer applies it per step with autocast; the process default (setMatmulPrecision) is left alone.
 */
import type { Bf16GemmPath } from '../backend/cpu/addon.js';
import { bf16GemmPath } from '../backend/cpu/runtime.js';
import type { MatmulPrecision } from '../tensor/autocast.js';
import { cpuModel } from './machine.js';

/** A precision given as --precision or DIFFVIT_MATMUL_PRECISION (`source`): float32 | bf16. */
export function precisionOption(v: string | undefined, source = '--precision', command = 'diffvit train'): MatmulPrecision | undefined {
  if (v === undefined || v === 'float32' || v === 'bf16') return v;
  throw new Error(`${command}: ${source} expected float32 or bf16, received '${v}'`);
}

export interface TrainPrecision {
  precision: MatmulPrecision;
  /**
   * Why: 'DIFFVIT_MATMUL_PRECISION', 'native bf16' (AMX, or AVX512_BF16 on a CPU where it beats
   * float32), 'intel vdpbf16ps' (AVX512_BF16 without AMX on an Intel CPU) or 'default' (emulated bf16).
   */
  source: 'DIFFVIT_MATMUL_PRECISION' | 'native bf16' | 'intel vdpbf16ps' | 'default';
}

/**
 * The run's matmul precision when --precision does not choose (nor a resumed checkpoint or config
 * file): DIFFVIT_MATMUL_PRECISION, else nativePrecision for this CPU's bf16 kernel.
 */
export function trainPrecision(): TrainPrecision {
  const env = precisionOption(process.env.DIFFVIT_MATMUL_PRECISION || undefined, 'DIFFVIT_MATMUL_PRECISION');
  if (env) return { precision: env, source: 'DIFFVIT_MATMUL_PRECISION' };
  return nativePrecision(bf16GemmPath().path, cpuModel());
}

/**
 * bf16 where the CPU multiplies bf16 faster than float32 at the active kernel level, else float32
 * (sample quality is within measurement noise of float32, docs/training-notes.md §5): on AMX
 * (1.5x the default step's images per second on a Sapphire Rapids Xeon, §17) and on AVX512_BF16
 * (vdpbf16ps: 1.2-1.3x on a Zen 4, §5) except on Intel CPUs, where vdpbf16ps does no more
 * multiply-adds a cycle than float32 FMAs and the conversions cost extra (0.98x masked and 0.79x
 * on every token on that Xeon without AMX, §17). `cpu` is the CPU's model name.
 */
export function nativePrecision(path: Bf16GemmPath, cpu: string): TrainPrecision {
  if (path === 'emulated') return { precision: 'float32', source: 'default' };
  if (path === 'avx512bf16' && /\bintel\b/i.test(cpu)) return { precision: 'float32', source: 'intel vdpbf16ps' };
  return { precision: 'bf16', source: 'native bf16' };
}
