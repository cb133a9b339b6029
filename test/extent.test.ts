/**
 * The extents kernels.def declares (native/addon/extent.h), checked against each kernel's shape
 * worked out here by hand: with every buffer exactly offset + extent elements long the call runs,
 * and with any one of them an element shorter it is rejected naming that argument. One case per
 * feature of the notation on a real kernel — dense dims, "@stride", strides from an array entry,
 * "sizes[]@strides[]", an array as dense dims, "/2", "cond?a:b" — with odd sizes, non-zero offsets
 * and layouts that are not contiguous. (The check runs before the kernel's device is chosen, so
 * the cpu covers it for every backend.)
 */
import { describe, expect, test } from 'vitest';

import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import { native } from '../lib/backend/cpu/addon.js';

type Args = Record<string, unknown>;
const NB = native.NativeBuffer as unknown as new (device: string, dtype: string, n: number) => NativeBuffer;
const call = (kernel: string, args: Args) => (native as unknown as Record<string, (a: Args) => unknown>)[kernel](args);

interface Case {
  title: string;
  kernel: string;
  /** The values of the call (sizes, strides, offsets, flags). */
  values: Args;
  /** Each buffer argument: its elements after its offset, by hand; int32 buffers hold indices below `indexBound`. */
  buffers: Record<string, { extent: number; offset?: number; int32?: boolean }>;
  indexBound?: number;
}

// batch 2, heads 3, nq 5, nk 4, d 8. k is stored (B, N, H, D): head stride 8, token stride 24.
const attention = { batch: 2, heads: 3, nq: 5, nk: 4, d: 8, scale: 0.35, precision: 'float32' };
const attentionDense = 2 * 3 * 5 * 8;
const attentionKV = 1 * 96 + 2 * 8 + 3 * 24 + 8; // (B-1)·96 + (H-1)·8 + (nk-1)·24 + d

const CASES: Case[] = [
  {
    title: 'gemm, A transposed, B broadcast over the batch: "batch@strideA transA?k:m@lda transA?m:k"',
    kernel: 'gemm',
    values: { batch: 2, m: 3, n: 4, k: 5, transA: true, transB: false, alpha: 1, beta: 0.5, strideA: 25, strideB: 0, strideC: 30, lda: 4, ldb: 6, ldc: 7, precision: 'float32' },
    // A stored k x m (rows lda apart), B k x n, C two m x n blocks 30 apart.
    buffers: { a: { extent: 25 + 4 * 4 + 3, offset: 2 }, b: { extent: 4 * 6 + 4, offset: 1 }, c: { extent: 30 + 2 * 7 + 4, offset: 3 } },
  },
  {
    title: 'gemm, B transposed',
    kernel: 'gemm',
    values: { batch: 1, m: 3, n: 4, k: 5, transA: false, transB: true, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 0, lda: 5, ldb: 9, ldc: 4, precision: 'float32' },
    buffers: { a: { extent: 2 * 5 + 5 }, b: { extent: 3 * 9 + 5, offset: 4 }, c: { extent: 12 } },
  },
  {
    title: 'attentionForward: "batch@qStrides[0] heads@qStrides[1] nq@qStrides[2] d"',
    kernel: 'attentionForward',
    values: { ...attention, qStrides: [120, 40, 8], kStrides: [96, 8, 24], vStrides: [96, 8, 24], outStrides: [120, 40, 8] },
    buffers: {
      q: { extent: attentionDense, offset: 3 }, k: { extent: attentionKV, offset: 1 }, v: { extent: attentionKV },
      out: { extent: attentionDense, offset: 2 }, lse: { extent: 2 * 3 * 5, offset: 5 },
    },
  },
  {
    title: 'copyStrided: "shape[]@srcStrides[]"',
    kernel: 'copyStrided',
    values: { srcStrides: [1, 5], dstStrides: [4, 1], shape: [3, 4] },
    buffers: { src: { extent: 2 * 1 + 3 * 5 + 1, offset: 2 }, dst: { extent: 12, offset: 1 } },
  },
  {
    title: 'binary with a broadcast operand: "shape[]@aStrides[]", out "shape[]"',
    kernel: 'binary',
    values: { op: 'mul', aStrides: [0, 1], bStrides: [3, 1], shape: [2, 3] },
    buffers: { a: { extent: 3, offset: 4 }, b: { extent: 6 }, out: { extent: 6, offset: 1 } },
  },
  {
    title: 'embedding: "indicesShape[] dim"',
    kernel: 'embedding',
    values: { rows: 5, dim: 3, indicesShape: [2, 3] },
    buffers: { table: { extent: 15, offset: 1 }, indices: { extent: 6, offset: 2, int32: true }, out: { extent: 18, offset: 3 } },
    indexBound: 5,
  },
  {
    title: 'rope: "tokens dim/2"',
    kernel: 'rope',
    values: { batch: 2, tokens: 3, groups: 2, rotatedGroups: 1, dim: 6, inverse: false },
    buffers: { x: { extent: 72, offset: 1 }, y: { extent: 72 }, cos: { extent: 9, offset: 2 }, sin: { extent: 9 } },
  },
  {
    title: 'edmSamplerStep, guided: "guided?2:1 batch per"',
    kernel: 'edmSamplerStep',
    values: { batch: 2, per: 5, guided: true, guidance: 2, sigma: 1.5, sigmaData: 0.5, h: -0.1, a: 0.9, b: 0.1 },
    buffers: { F: { extent: 20 }, x: { extent: 10 }, base: { extent: 10 }, dPrev: { extent: 10 }, dOut: { extent: 10 }, xNext: { extent: 10 } },
  },
  {
    title: 'edmSamplerStep, unguided',
    kernel: 'edmSamplerStep',
    values: { batch: 3, per: 7, guided: false, guidance: 1, sigma: 0.7, sigmaData: 0.5, h: -0.2, a: 0.8, b: 0.2 },
    buffers: { F: { extent: 21 }, x: { extent: 21 }, base: { extent: 21 }, dPrev: { extent: 21 }, dOut: { extent: 21 }, xNext: { extent: 21 } },
  },
  {
    title: 'layerNormModulate: "batch@shiftStride cols", a zero stride',
    kernel: 'layerNormModulate',
    values: { shiftStride: 10, scaleStride: 0, batch: 2, tokens: 3, cols: 4, eps: 1e-6 },
    buffers: {
      x: { extent: 24, offset: 1 }, shift: { extent: 10 + 4, offset: 2 }, scale: { extent: 4, offset: 3 },
      y: { extent: 24 }, mean: { extent: 6, offset: 1 }, rstd: { extent: 6 },
    },
  },
  {
    title: 'linearAct, weight stored transposed: "weightTransposed?inFeatures:outFeatures@ldw …"',
    kernel: 'linearAct',
    values: { weightTransposed: true, ldw: 6, rows: 3, outFeatures: 4, inFeatures: 5, act: 'gelu_tanh', precision: 'float32' },
    buffers: {
      x: { extent: 15, offset: 2 }, weight: { extent: 4 * 6 + 4, offset: 1 }, bias: { extent: 4 },
      out: { extent: 12, offset: 3 }, pre: { extent: 12 },
    },
  },
  {
    title: 'groupNorm: "batch@scaleStride channels", "batch groups"',
    kernel: 'groupNorm',
    values: { scaleStride: 5, shiftStride: 0, batch: 2, channels: 4, groups: 2, spatial: 3, eps: 1e-5, silu: true },
    buffers: {
      x: { extent: 24, offset: 1 }, scale: { extent: 5 + 4 }, shift: { extent: 4, offset: 2 },
      y: { extent: 24 }, mean: { extent: 4 }, rstd: { extent: 4, offset: 1 },
    },
  },
];

/** A buffer of `numel` random values (indices below `bound` for int32). */
function buffer(numel: number, int32: boolean, bound: number, seed: number): NativeBuffer {
  const b = new NB('cpu', int32 ? 'int32' : 'float32', numel);
  let state = seed * 2654435761;
  const next = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const values = Array.from({ length: numel }, () => (int32 ? Math.floor(next() * bound) : 0.25 + next()));
  b.write(0, int32 ? Int32Array.from(values) : Float32Array.from(values));
  return b;
}

/** The call with every buffer exactly offset + extent long, except `short` one element shorter. */
function build(c: Case, short?: string): Args {
  const args: Args = { ...c.values };
  Object.entries(c.buffers).forEach(([name, spec], k) => {
    const offset = spec.offset ?? 0;
    args[name] = buffer(offset + spec.extent - (name === short ? 1 : 0), spec.int32 ?? false, c.indexBound ?? 1, k + 1);
    const offsetName = `${name}Offset`;
    if (c.kernel === 'edmSamplerStep') return; // its buffers have no offsets
    args[offsetName] = offset;
  });
  return args;
}

describe('kernels.def extents', () => {
  describe.each(CASES)('$title', (c) => {
    test('buffers of exactly offset + extent elements are accepted', () => {
      expect(() => call(c.kernel, build(c))).not.toThrow();
    });
    test.each(Object.keys(c.buffers))('one element fewer in %s is rejected, naming it and the elements it needs', (name) => {
      const spec = c.buffers[name];
      const need = (spec.offset ?? 0) + spec.extent;
      const dtype = spec.int32 ? 'int32' : 'float32';
      expect(() => call(c.kernel, build(c, name))).toThrow(
        new RegExp(`^diffvit\\.${c.kernel}: argument '${name}' expected at least ${need} ${dtype} elements \\(offset ${spec.offset ?? 0} \\+ ${spec.extent}\\), received a buffer of ${need - 1}$`),
      );
    });
  });

  test('an array of strides shorter than its sizes is rejected naming both', () => {
    const c = CASES.find((k) => k.kernel === 'copyStrided')!;
    expect(() => call('copyStrided', { ...build(c), srcStrides: [1] })).toThrow(/argument 'srcStrides' expected 2 strides \(one per dim of shape\), received 1/);
  });

  test('a strides array without the entry an extent reads is rejected', () => {
    const c = CASES.find((k) => k.kernel === 'attentionForward')!;
    expect(() => call('attentionForward', { ...build(c), kStrides: [96, 8] })).toThrow(/argument 'kStrides' expected an array of at least 3 integers, received an array of length 2/);
  });
});
