/**
 * Rotary position embedding: the native rope kernel and rotaryEmbedding against float64
 * references (gradients by central differences) on every backend, the 2-D angle tables, and
 * IU-ViT/ASCEND with `rope: true` (same parameters, other outputs, a whole-network gradient check,
 * the tables on the model's device, config errors).
 */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { runKernel } from '../lib/backend/dispatch.js';
import { fullConfig, type ModelConfig } from '../lib/models/configs.js';
import { IUViT } from '../lib/models/diffusion_vit.js';
import { rope2dTables } from '../lib/nn/rope.js';
import { rotaryEmbedding } from '../lib/ops/rope.js';
import { checkOp, type CloseOptions, describeEachBackend, deviceBuffer, expectClose, fromValues, randomValues, readBuffer, toF32 } from './helpers.js';
import { expectNetworkGradients, expectNetworkMatchesHost, randomizeParameters } from './trainer_checks.js';

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const ROPE_TOL: CloseOptions = { dtype: 'float32', kind: 'rope' };

// ---------------------------------------------------------------------------------------------
// float64 reference
// ---------------------------------------------------------------------------------------------

/**
 * x (batch, tokens, groups, dim): groups g < rotated turned pairwise (i, i + dim/2) by row t of
 * cos/sin (tokens, dim/2), s negated when `inverse`; the other groups copied.
 */
function refRope(batch: number, tokens: number, groups: number, rotated: number, dim: number, inverse = false) {
  const half = dim / 2;
  return (x: Float64Array, cos: Float64Array, sin: Float64Array) => {
    const y = Float64Array.from(x);
    for (let b = 0; b < batch; b++) for (let t = 0; t < tokens; t++) for (let g = 0; g < rotated; g++) {
      const base = ((b * tokens + t) * groups + g) * dim;
      for (let i = 0; i < half; i++) {
        const a = x[base + i], bb = x[base + half + i], c = cos[t * half + i], s = (inverse ? -1 : 1) * sin[t * half + i];
        y[base + i] = a * c - bb * s;
        y[base + half + i] = bb * c + a * s;
      }
    }
    return y;
  };
}

/** Real angles (cos² + sin² = 1) for `tokens` rows of `half` pairs, from seeded random values. */
function angleTables(tokens: number, half: number, seed: number) {
  const angles = randomValues(tokens * half, seed, 2);
  return { cos: toF32(angles.map(Math.cos)), sin: toF32(angles.map(Math.sin)) };
}

/** (B, N, H, Dh): the spec's awkward sizes, a single pair, and a half-dim past one AVX-512 vector with a tail. */
const SHAPES: [number, number, number, number][] = [[3, 7, 3, 12], [3, 7, 3, 4], [3, 7, 3, 20], [2, 5, 1, 2], [1, 3, 2, 70]];

describeEachBackend('rotaryEmbedding', () => {
  for (const [B, N, H, Dh] of SHAPES) {
    test(`qkv [${B}, ${N}, 3, ${H}, ${Dh}]: values and the gradient against float64`, () => {
      const shape = [B, N, 3, H, Dh], half = Dh / 2;
      // Arbitrary cos/sin values: the gradient (the transpose, s negated) holds for any, not only rotations.
      checkOp(`rotaryEmbedding(Dh ${Dh})`, (x, c, s) => rotaryEmbedding(x, c, s), refRope(B, N, 3 * H, 2 * H, Dh), [
        { values: randomValues(prod(shape), prod(shape) + Dh, 1), shape },
        { values: randomValues(N * half, 5 + Dh, 1), shape: [N, half], noGrad: true },
        { values: randomValues(N * half, 6 + Dh, 1), shape: [N, half], noGrad: true },
      ], ROPE_TOL);
    });
  }

  test('v is copied bit for bit; q and k change', () => {
    const [B, N, H, Dh] = [3, 7, 3, 12], shape = [B, N, 3, H, Dh];
    const xv = toF32(randomValues(prod(shape), 11, 1)), { cos, sin } = angleTables(N, Dh / 2, 12);
    dv.scope(() => {
      const x = fromValues(xv, shape);
      const y = rotaryEmbedding(x, fromValues(cos, [N, Dh / 2]), fromValues(sin, [N, Dh / 2]));
      const [yq, yv] = [dv.slice(y, 2, 0, 2).data(), dv.slice(y, 2, 2, 3).data()];
      const [xq, xvv] = [dv.slice(x, 2, 0, 2).data(), dv.slice(x, 2, 2, 3).data()];
      expect(Array.from(yv)).toEqual(Array.from(xvv));
      expect(yq.filter((v, i) => v !== xq[i]).length).toBeGreaterThan(yq.length / 2);
    });
  });

  test('a non-dense qkv (a permuted view) gives what its dense copy gives, gradients included', () => {
    const [B, N, H, Dh] = [2, 5, 2, 8], half = Dh / 2;
    const xv = toF32(randomValues(B * N * 3 * H * Dh, 21, 1)), dyv = toF32(randomValues(B * N * 3 * H * Dh, 22, 1));
    const { cos, sin } = angleTables(N, half, 23);
    const run = (view: boolean) => dv.scope(() => {
      // (N, B, 3, H, Dh) memory read as (B, N, 3, H, Dh)
      const base = fromValues(xv, [N, B, 3, H, Dh], true);
      const x = view ? dv.permute(base, [1, 0, 2, 3, 4]) : dv.clone(dv.permute(base, [1, 0, 2, 3, 4]));
      expect(x.isContiguous()).toBe(!view);
      const y = rotaryEmbedding(x, fromValues(cos, [N, half]), fromValues(sin, [N, half]));
      y.backward({ grad: fromValues(dyv, [B, N, 3, H, Dh]) });
      return [y.data(), base.grad!.data()];
    });
    const a = run(true), b = run(false);
    a.forEach((v, i) => expectClose(v, Float64Array.from(b[i]), { dtype: 'float32', kind: 'exact' }, `output ${i}`));
  });

  test('the kernel: inverse against float64, inverse ∘ forward = identity, rotatedGroups 0 and all', () => {
    const [batch, tokens, groups, dim] = [3, 7, 5, 12], half = dim / 2, n = batch * tokens * groups * dim;
    const xv = toF32(randomValues(n, 31, 1)), { cos, sin } = angleTables(tokens, half, 32);
    const x = deviceBuffer(xv), y = deviceBuffer(new Float32Array(n)), z = deviceBuffer(new Float32Array(n));
    const c = deviceBuffer(cos), s = deviceBuffer(sin);
    try {
      const rope = (src: typeof x, dst: typeof x, rotatedGroups: number, inverse: boolean) => runKernel('rope', {
        x: src, xOffset: 0, y: dst, yOffset: 0, cos: c, cosOffset: 0, sin: s, sinOffset: 0, batch, tokens, groups,
        rotatedGroups, dim, inverse,
      });
      for (const rotated of [0, 2, groups]) {
        rope(x, y, rotated, true);
        expectClose(readBuffer(y), refRope(batch, tokens, groups, rotated, dim, true)(xv, cos, sin), ROPE_TOL, `inverse, ${rotated} rotated`);
        rope(x, y, rotated, false);
        rope(y, z, rotated, true);
        expectClose(readBuffer(z), xv, ROPE_TOL, `inverse ∘ forward, ${rotated} rotated`);
      }
      // Offsets into larger buffers: the tables after a row of padding, x and y in one buffer apart.
      const big = deviceBuffer(Float32Array.from([...xv, ...new Float32Array(n)]));
      const tables = deviceBuffer(Float32Array.from([9, ...cos, 9, ...sin]));
      try {
        runKernel('rope', { x: big, xOffset: 0, y: big, yOffset: n, cos: tables, cosOffset: 1, sin: tables,
          sinOffset: cos.length + 2, batch, tokens, groups, rotatedGroups: 3, dim, inverse: false });
        expectClose(readBuffer(big).subarray(n), refRope(batch, tokens, groups, 3, dim)(xv, cos, sin), ROPE_TOL, 'offsets');
      } finally {
        big.dispose();
        tables.dispose();
      }
    } finally {
      [x, y, z, c, s].forEach((b) => b.dispose());
    }
  });
});

test('rotaryEmbedding errors name the op and the argument', () => {
  dv.scope(() => {
    const qkv = dv.randn([2, 4, 3, 2, 8]), cos = dv.ones([4, 4]), sin = dv.zeros([4, 4]);
    const op = /diffvit\.rotaryEmbedding: argument/;
    expect(() => rotaryEmbedding(dv.randn([2, 4, 48]), cos, sin)).toThrow(/diffvit\.rotaryEmbedding: argument 'qkv' expected rank 5/);
    expect(() => rotaryEmbedding(dv.randn([2, 4, 2, 2, 8]), cos, sin)).toThrow(/argument 'qkv' expected shape \[B, N, 3, H, Dh\]/);
    expect(() => rotaryEmbedding(dv.randn([2, 4, 3, 2, 7]), cos, sin)).toThrow(/argument 'qkv' expected an even head dim/);
    expect(() => rotaryEmbedding(qkv, dv.ones([5, 4]), sin)).toThrow(/argument 'cos' expected shape \[4, 4\]/);
    expect(() => rotaryEmbedding(qkv, cos, dv.ones([4, 8]))).toThrow(/argument 'sin' expected shape \[4, 4\]/);
    expect(() => rotaryEmbedding(qkv, cos, dv.tensor([1, 2], [2], 'int32') as dv.Tensor)).toThrow(/argument 'sin' expected dtype float32/);
    const gone = dv.randn([2, 4, 3, 2, 8]);
    gone.dispose();
    expect(() => rotaryEmbedding(gone, cos, sin)).toThrow(/argument 'qkv' expected a live tensor/);
    expect(() => rotaryEmbedding(qkv, cos, 'sin' as unknown as dv.Tensor)).toThrow(op);
    // The kernel checks its own arguments too.
    const call = (over: Record<string, unknown>) => runKernel('rope', {
      x: qkv.buffer, xOffset: 0, y: dv.zeros([2, 4, 3, 2, 8]).buffer, yOffset: 0, cos: cos.buffer, cosOffset: 0,
      sin: sin.buffer, sinOffset: 0, batch: 2, tokens: 4, groups: 6, rotatedGroups: 4, dim: 8, inverse: false, ...over,
    } as Parameters<typeof runKernel<'rope'>>[1]);
    expect(() => call({ dim: 7 })).toThrow(/rope.*'dim' expected an even number/);
    expect(() => call({ rotatedGroups: 7 })).toThrow(/rope.*'rotatedGroups' expected an integer in \[0, 6\]/);
    expect(() => call({ tokens: 5 })).toThrow(/rope.*'x'/);
    expect(() => call({ cosOffset: 1 })).toThrow(/rope.*'cos'/);
    const twice = dv.zeros([2 * qkv.size]).buffer;
    expect(() => call({ x: twice, y: twice, yOffset: 8 })).toThrow(/rope.*'y' expected memory not overlapping 'x'/);
    expect(() => call({ x: twice, y: twice, yOffset: qkv.size })).not.toThrow();
    expect(() => call({ inverse: 1 })).toThrow(/rope.*'inverse'/);
  });
});

describe('rope2dTables', () => {
  test('extra tokens have angle 0; patch rows turn the first half of the pairs, columns the second', () => {
    const [side, extra, headDim, base] = [3, 2, 12, 100], half = headDim / 2, Q = headDim / 4;
    const { cos, sin } = rope2dTables(side, extra, headDim, base);
    expect(cos.length).toBe((extra + side * side) * half);
    expect(sin.length).toBe(cos.length);
    for (let i = 0; i < extra * half; i++) {
      expect(cos[i]).toBe(1);
      expect(sin[i]).toBe(0);
    }
    for (let p = 0; p < side * side; p++) {
      const r = Math.floor(p / side), q = p % side;
      for (let i = 0; i < half; i++) {
        const angle = (i < Q ? r : q) * base ** (-(i % Q) / Q);
        expect(cos[(extra + p) * half + i]).toBe(Math.fround(Math.cos(angle)));
        expect(sin[(extra + p) * half + i]).toBe(Math.fround(Math.sin(angle)));
      }
    }
  });

  test('a known value: patch 6 of a 4×4 grid (row 1, column 2), head dim 8, base 100', () => {
    // Q = 2, θ = [1, 0.1]: angles [1·1, 1·0.1, 2·1, 2·0.1] for row 1 (after one extra token) + patch 6.
    const { cos, sin } = rope2dTables(4, 1, 8);
    expectClose(cos.subarray(7 * 4, 8 * 4), [0.5403023058681398, 0.9950041652780258, -0.4161468365471424, 0.9800665778412416],
      { dtype: 'float32', kind: 'unary' }, 'cos');
    expectClose(sin.subarray(7 * 4, 8 * 4), [0.8414709848078965, 0.09983341664682815, 0.9092974268256817, 0.19866933079506122],
      { dtype: 'float32', kind: 'unary' }, 'sin');
  });

  test('errors name the argument', () => {
    expect(() => rope2dTables(4, 0, 6)).toThrow("diffvit.rope2dTables: argument 'headDim' expected a positive multiple of 4");
    expect(() => rope2dTables(0, 0, 8)).toThrow("diffvit.rope2dTables: argument 'gridSide' expected a positive integer, received 0");
    expect(() => rope2dTables(4, -1, 8)).toThrow("diffvit.rope2dTables: argument 'extraTokens'");
    expect(() => rope2dTables(4, 0, 8, 1)).toThrow("diffvit.rope2dTables: argument 'base' expected a finite number > 1, received 1");
  });
});

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/**
 * 8×8 images in 2×2 patches (a 4×4 grid), two extra tokens (time, label), and ASCEND's two widths:
 * head dims 8 in the encoder and 4 in the decoder, so both RoPE tables are used.
 */
const TINY: ModelConfig = {
  arch: 'ascend', img_size: 8, in_chans: 3, patch: 2, dim: 16, enc_dim: 16, dec_dim: 8, enc_depth: 2, dec_depth: 1,
  heads: 2, freq_dim: 8, time_cond: 'token', num_classes: 3, rope: true,
};


describe('IU-ViT/ASCEND with rope', () => {
  test('same parameter names and shapes as without rope, different outputs; rope false is the default', () => {
    expect(fullConfig({ ...TINY, rope: undefined })).toMatchObject({ rope: false });
    const on = new IUViT(TINY, { seed: 3 }), off = new IUViT({ ...TINY, rope: false }, { seed: 3 });
    const shapes = (m: IUViT) => [...m.namedParameters()].map(([name, p]) => [name, p.shape]);
    expect(shapes(on)).toEqual(shapes(off));
    randomizeParameters(on, 50, 0.3);
    randomizeParameters(off, 50, 0.3);
    dv.scope(() => {
      const x = dv.tensor(Float32Array.from(randomValues(2 * 3 * 64, 1, 1)), [2, 3, 8, 8]);
      const c = dv.tensor([0.3, -0.7]), labels = dv.tensor([2, 1], [2], 'int32');
      const a = on.forward(x, c, labels).data(), b = off.forward(x, c, labels).data();
      expect(a.every(Number.isFinite)).toBe(true);
      expect(a.filter((v, i) => Math.abs(v - b[i]) > 1e-3).length).toBeGreaterThan(a.length / 2);
    });
    on.dispose();
    off.dispose();
  });

  test('gradient check of the whole network: every parameter and the input against central differences', () => {
    const m = new IUViT(TINY, { seed: 1 });
    expect(expectNetworkGradients(m)).toBe(1 + [...m.namedParameters()].length);
    m.dispose();
  });

  test('config errors: rope on a U-Net, a non-boolean, head dims not a multiple of 4', () => {
    const unet: ModelConfig = { arch: 'unet', img_size: 8, in_chans: 3, dim: 8, heads: 2, channels: [4], rope: true };
    expect(() => fullConfig(unet)).toThrow("diffvit.modelConfig: 'rope' expected no value for arch 'unet' (an IU-ViT/ASCEND key), received true");
    expect(() => fullConfig({ ...TINY, rope: 'yes' as unknown as boolean })).toThrow(`diffvit.modelConfig: 'rope' expected a boolean, received "yes"`);
    expect(() => fullConfig({ ...TINY, dec_dim: 12 })).toThrow("diffvit.modelConfig: 'dec_dim' expected a multiple of 4 * heads = 8 with rope");
    expect(() => fullConfig({ ...TINY, dec_dim: 12, rope: false })).not.toThrow();
  });
});

describeEachBackend('IU-ViT/ASCEND with rope on the device', ({ device }) => {
  test("forward and every parameter's gradient equal the host's; the tables follow the model and go with dispose()", () => {
    const runOnDevice = expectNetworkMatchesHost(() => {
      const m = new IUViT(TINY, { seed: 2 });
      randomizeParameters(m, 30, 0.3);
      return m;
    }, device);
    // Another run leaves no tensor behind: dispose() freed the tables made for the device. (Counted
    // after a first run, which may leave the backend's own lazily made tensors.)
    const live = dv.liveTensorCount();
    runOnDevice();
    expect(dv.liveTensorCount()).toBe(live);
  });
});
