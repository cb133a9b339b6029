/**
 * The kernel table: every kernel's name with its typed arguments and result, declared once per
 * family in lib/backend/kernels/<family>.ts (the TS twin of native/addon/kernels.def; a test
 * checks the two agree). Ops run kernels by name through runKernel (dispatch.ts); each backend
 * implements the table, or the part of it it has.
 */
import type { AttentionKernels } from './kernels/attention.js';
import type { ConvKernels } from './kernels/conv.js';
import type { CoreKernels } from './kernels/core.js';
import type { EdmKernels } from './kernels/edm.js';
import type { FusedKernels } from './kernels/fused.js';
import type { GemmKernels } from './kernels/gemm.js';
import type { NormKernels } from './kernels/norm.js';
import type { OptimKernels } from './kernels/optim.js';
import type { PoolKernels } from './kernels/pool.js';
import type { RopeKernels } from './kernels/rope.js';

export interface KernelTable extends CoreKernels, GemmKernels, AttentionKernels, NormKernels, ConvKernels, OptimKernels,
  EdmKernels, PoolKernels, FusedKernels, RopeKernels {}

export type KernelName = keyof KernelTable;
export type KernelArgs<K extends KernelName> = Parameters<KernelTable[K]>[0];
export type KernelResult<K extends KernelName> = ReturnType<KernelTable[K]>;

/** Every kernel name, in kernels.def order. */
export const KERNEL_NAMES = [
  'attentionForward', 'attentionBackward', 'im2col', 'col2im', 'edmNoise', 'edmLoss', 'edmSamplerStep', 'fill',
  'copyStrided', 'randomFill', 'unary', 'unaryGrad', 'binary', 'axpby', 'axpbyMany', 'embedding', 'embeddingBackward',
  'layerNormModulate', 'layerNormModulateBackward', 'addGated', 'addGatedBackward', 'linearAct', 'geluBackwardBias',
  'gemm', 'softmax', 'softmaxBackward', 'layerNorm', 'layerNormBackward', 'groupNorm', 'groupNormBackward', 'adamw', 'adamwMany', 'trainStepControl',
  'adamwControlled', 'emaControlled', 'maxPool2d', 'avgPool2d',
  'resizeBilinear', 'reduceSum', 'sumSquares', 'rope',
] as const satisfies readonly KernelName[];

// The list names every kernel of the table (a compile error otherwise).
type Missing = Exclude<KernelName, (typeof KERNEL_NAMES)[number]>;
const complete: [Missing] extends [never] ? true : Missing = true;
void complete;
