/**
 * What one kernel call does, for the profiler's table and trace: its floating-point operations
 * where the count is standard (GEMMs, attention) and the bytes it moves (float32 elements x 4,
 * each input read once and each output written once; broadcast operands counted at their full
 * extent, caches ignored), and a short summary of its arguments (the dims, not the buffers).
 */
import type { KernelArgs, KernelName } from '../backend/kernel_names.js';

export interface KernelCost {
  flops?: number;
  bytes?: number;
}

const F32 = 4;
const prod = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
/** Output extent of a pooling window (floor mode, or PyTorch's ceil mode). */
const pooled = (size: number, kernel: number, stride: number, pad: number, ceil: boolean): number => {
  const span = size + 2 * pad - kernel;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceil && (out - 1) * stride >= size + pad) out--;
  return out;
};
const elementwise = (elements: number, operands: number): KernelCost => ({ bytes: elements * F32 * operands });
/** The elements of a multi-tensor kernel's tensors together. */
const total = (counts: readonly number[]): number => counts.reduce((s, c) => s + c, 0);

type CostTable = { [K in KernelName]: (a: KernelArgs<K>) => KernelCost };

const COSTS: CostTable = {
  // GEMMs: 2 flops per multiply-add. Operands broadcast over the batch (stride 0) are read once.
  gemm: (a) => ({
    flops: 2 * a.batch * a.m * a.n * a.k,
    bytes: F32 * ((a.strideA === 0 ? 1 : a.batch) * a.m * a.k + (a.strideB === 0 ? 1 : a.batch) * a.k * a.n + a.batch * a.m * a.n * (a.beta !== 0 ? 2 : 1)),
  }),
  linearAct: (a) => ({
    flops: 2 * a.rows * a.outFeatures * a.inFeatures,
    bytes: F32 * (a.rows * a.inFeatures + a.outFeatures * a.inFeatures + a.rows * a.outFeatures * (a.pre ? 2 : 1) + (a.bias ? a.outFeatures : 0)),
  }),
  // Attention: q kᵀ and p v, 2 flops per multiply-add each (softmax not counted). The backward
  // recomputes p and runs four products (dv, dp, dq, dk): about 2.5x the forward.
  attentionForward: (a) => ({
    flops: 4 * a.batch * a.heads * a.nq * a.nk * a.d,
    bytes: F32 * a.batch * a.heads * (2 * a.nq * a.d + 2 * a.nk * a.d + (a.lse ? a.nq : 0)),
  }),
  attentionBackward: (a) => ({
    flops: 10 * a.batch * a.heads * a.nq * a.nk * a.d,
    bytes: F32 * a.batch * a.heads * (4 * a.nq * a.d + 4 * a.nk * a.d + a.nq),
  }),
  // Convolutions run as im2col + gemm (the gemm carries the flops); these move the image and its columns.
  im2col: (a) => {
    const oh = Math.floor((a.height + 2 * a.padH - a.kernelH) / a.strideH) + 1, ow = Math.floor((a.width + 2 * a.padW - a.kernelW) / a.strideW) + 1;
    return { bytes: F32 * a.batch * a.channels * (a.height * a.width + a.kernelH * a.kernelW * oh * ow) };
  },
  col2im: (a) => {
    const oh = Math.floor((a.height + 2 * a.padH - a.kernelH) / a.strideH) + 1, ow = Math.floor((a.width + 2 * a.padW - a.kernelW) / a.strideW) + 1;
    return { bytes: F32 * a.batch * a.channels * (a.height * a.width + a.kernelH * a.kernelW * oh * ow) };
  },
  embedding: (a) => {
    const n = prod(a.indicesShape);
    return { bytes: F32 * (n + 2 * n * a.dim) };
  },
  embeddingBackward: (a) => {
    const n = prod(a.indicesShape);
    return { bytes: F32 * (n + 2 * n * a.dim + a.rows * a.dim) };
  },
  // Elementwise: elements x 4 x (inputs + outputs).
  fill: (a) => elementwise(a.n, 1),
  copyStrided: (a) => elementwise(prod(a.shape), 2),
  randomFill: (a) => elementwise(a.n, 1),
  unary: (a) => elementwise(a.n, 2),
  unaryGrad: (a) => elementwise(a.n, 3),
  binary: (a) => elementwise(prod(a.shape), 3),
  axpby: (a) => elementwise(a.n, a.beta === 0 ? 2 : 3),
  axpbyMany: (a) => elementwise(total(a.counts), a.beta === 0 ? 2 : 3),
  reduceSum: (a) => ({ bytes: F32 * (a.outer * a.r * a.inner + a.outer * a.inner) }),
  sumSquares: (a) => ({ bytes: F32 * (total(a.counts) + 1) }),
  softmax: (a) => elementwise(a.outer * a.n * a.inner, 2),
  softmaxBackward: (a) => elementwise(a.outer * a.n * a.inner, 3),
  layerNorm: (a) => elementwise(a.rows * a.cols, 2),
  layerNormBackward: (a) => elementwise(a.rows * a.cols, 3),
  groupNorm: (a) => elementwise(a.batch * a.channels * a.spatial, 2),
  groupNormBackward: (a) => elementwise(a.batch * a.channels * a.spatial, a.dx ? 4 : 2),
  layerNormModulate: (a) => elementwise(a.batch * a.tokens * a.cols, 2),
  layerNormModulateBackward: (a) => elementwise(a.batch * a.tokens * a.cols, 3),
  addGated: (a) => elementwise(a.batch * a.tokens * a.cols, 3),
  addGatedBackward: (a) => elementwise(a.batch * a.tokens * a.cols, 3),
  geluBackwardBias: (a) => elementwise(a.rows * a.cols, 3),
  // AdamW reads param, grad and both moments and writes param and both moments.
  adamw: (a) => elementwise(a.n, 7),
  adamwMany: (a) => elementwise(total(a.counts), 7),
  trainStepControl: () => ({ bytes: F32 * 4 }),
  adamwControlled: (a) => elementwise(a.n, 7),
  emaControlled: (a) => elementwise(a.n, 3),
  edmNoise: (a) => elementwise(a.batch * a.per, 3),
  edmLoss: (a) => elementwise(a.batch * a.per, 4),
  edmSamplerStep: (a) => elementwise(a.batch * a.per, (a.guided ? 2 : 1) + 2 + (a.dPrev ? 1 : 0) + 2),
  maxPool2d: (a) => ({ bytes: F32 * a.planes * (a.height * a.width + pooled(a.height, a.kernelH, a.strideH, a.padH, a.ceilMode) * pooled(a.width, a.kernelW, a.strideW, a.padW, a.ceilMode)) }),
  avgPool2d: (a) => ({ bytes: F32 * a.planes * (a.height * a.width + pooled(a.height, a.kernelH, a.strideH, a.padH, a.ceilMode) * pooled(a.width, a.kernelW, a.strideW, a.padW, a.ceilMode)) }),
  // Reads x and writes y; the table rows are read once per token and shared by the batch.
  rope: (a) => elementwise(a.batch * a.tokens * a.groups * a.dim, 2),
  resizeBilinear: (a) => ({ bytes: F32 * a.planes * (a.inH * a.inW + a.outH * a.outW) }),
};

/** FLOPs and bytes of one call (empty for a kernel the table does not know: a backend's extra). */
export function kernelCost<K extends KernelName>(name: K, args: KernelArgs<K>): KernelCost {
  const cost = (COSTS as Partial<Record<string, (a: unknown) => KernelCost>>)[name];
  return cost ? cost(args) : {};
}

/** Arguments that locate data rather than describe the work: offsets, strides, leading dimensions. */
const LAYOUT = /Offsets?$|Strides?$|^stride[ABC]$|^ld[abcw]$/;
/** Per kernel, the argument names kernelShape keeps (the calls of one kernel share their keys). */
const shapeKeys = new Map<string, string[]>();

/**
 * The call's arguments without buffers and layout: dims, op, flags, precision (number arrays as
 * "2x3x4", long ones as their length). The trace shows it on each kernel event.
 */
export function kernelShape(name: string, args: object): Record<string, string | number | boolean> {
  const values = args as Record<string, unknown>;
  let keys = shapeKeys.get(name);
  if (!keys) shapeKeys.set(name, (keys = Object.keys(values).filter((k) => !LAYOUT.test(k))));
  const out: Record<string, string | number | boolean> = {};
  for (const key of keys) {
    const v = values[key];
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') out[key] = v;
    else if (Array.isArray(v) && v.length && typeof v[0] === 'number') out[key] = v.length <= 8 ? v.join('x') : `${v.length} values`;
  }
  return out;
}
