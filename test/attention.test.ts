import { expect, test } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import * as dv from '../lib/index.js';
import { attention } from '../lib/ops/attention.js';
import {
  checkOp, type CloseOptions, describeEachBackend, describeEachLevel, expectClose, fromValues, randomValues, recordError, toF32,
} from './helpers.js';

// ---- float64 reference: the unfused softmax(q kᵀ · scale) v and its analytic gradients --------------

interface Dims {
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  D: number;
  scale: number;
}
const dims = (B: number, H: number, Nq: number, Nk: number, D: number, scale = 1 / Math.sqrt(D)): Dims =>
  ({ B, H, Nq, Nk, D, scale });

/** Softmax probabilities P (B, H, Nq, Nk) and out = P v (B, H, Nq, D); q, k, v contiguous (B, H, N, D). */
function refForward(m: Dims, q: Float64Array, k: Float64Array, v: Float64Array) {
  const { B, H, Nq, Nk, D, scale } = m;
  const p = new Float64Array(B * H * Nq * Nk), out = new Float64Array(B * H * Nq * D);
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Nq; i++) {
      const qi = (bh * Nq + i) * D, pi = (bh * Nq + i) * Nk;
      let mx = -Infinity;
      for (let j = 0; j < Nk; j++) {
        const kj = (bh * Nk + j) * D;
        let s = 0;
        for (let c = 0; c < D; c++) s += q[qi + c] * k[kj + c];
        p[pi + j] = s * scale;
        mx = Math.max(mx, p[pi + j]);
      }
      let sum = 0;
      for (let j = 0; j < Nk; j++) sum += (p[pi + j] = Math.exp(p[pi + j] - mx));
      for (let j = 0; j < Nk; j++) {
        const pj = (p[pi + j] /= sum), vj = (bh * Nk + j) * D;
        for (let c = 0; c < D; c++) out[qi + c] += pj * v[vj + c];
      }
    }
  }
  return { p, out };
}

/** d(sum(dout ∘ out))/d(q, k, v), written out analytically (the FA-2 formulas, in float64). */
function refBackward(m: Dims, q: Float64Array, k: Float64Array, v: Float64Array, dout: Float64Array) {
  const { B, H, Nq, Nk, D, scale } = m;
  const { p } = refForward(m, q, k, v);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const dp = new Float64Array(Nk);
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Nq; i++) {
      const qi = (bh * Nq + i) * D, pi = (bh * Nq + i) * Nk;
      let delta = 0;  // sum_j P_ij dP_ij = dO_i · O_i
      for (let j = 0; j < Nk; j++) {
        const vj = (bh * Nk + j) * D;
        let s = 0;
        for (let c = 0; c < D; c++) {
          s += dout[qi + c] * v[vj + c];
          dv[vj + c] += p[pi + j] * dout[qi + c];
        }
        dp[j] = s;
        delta += p[pi + j] * s;
      }
      for (let j = 0; j < Nk; j++) {
        const ds = p[pi + j] * (dp[j] - delta) * scale, kj = (bh * Nk + j) * D;
        for (let c = 0; c < D; c++) {
          dq[qi + c] += ds * k[kj + c];
          dk[kj + c] += ds * q[qi + c];
        }
      }
    }
  }
  return { dq, dk, dv };
}

const refOut = (m: Dims) => (q: Float64Array, k: Float64Array, v: Float64Array) => refForward(m, q, k, v).out;

function inputs(m: Dims, seed: number) {
  return {
    q: toF32(randomValues(m.B * m.H * m.Nq * m.D, seed)),
    k: toF32(randomValues(m.B * m.H * m.Nk * m.D, seed + 1)),
    v: toF32(randomValues(m.B * m.H * m.Nk * m.D, seed + 2)),
    dout: toF32(randomValues(m.B * m.H * m.Nq * m.D, seed + 3)),
  };
}

// Tolerances against float64 for float32 kernels (the table's attention row): sums of up to 1025 terms
// and a vectorised exp. Gradients, analytic or by finite differences, get the row's gradient bounds.
const FWD_TOL: CloseOptions = { dtype: 'float32', kind: 'attention' };
const GRAD_TOL: CloseOptions = { ...FWD_TOL, grad: true };

/**
 * Runs attention on float32 copies of fresh inputs and compares the output and all three gradients
 * (of sum(dout ∘ out)) with the analytic float64 reference.
 */
const referenceCache = new Map<string, { ref: Float64Array; grads: ReturnType<typeof refBackward> }>();
function checkAgainstReference(name: string, m: Dims, seed: number, withScale = false): void {
  const x = inputs(m, seed);
  // Every CPU level checks the same case: the float64 reference is computed once.
  const key = JSON.stringify([m, seed]);
  if (!referenceCache.has(key)) {
    referenceCache.set(key, { ref: refForward(m, x.q, x.k, x.v).out, grads: refBackward(m, x.q, x.k, x.v, x.dout) });
  }
  const { ref, grads } = referenceCache.get(key)!;
  dv.scope(() => {
    const q = fromValues(x.q, [m.B, m.H, m.Nq, m.D], true);
    const k = fromValues(x.k, [m.B, m.H, m.Nk, m.D], true);
    const v = fromValues(x.v, [m.B, m.H, m.Nk, m.D], true);
    const out = attention(q, k, v, withScale ? { scale: m.scale } : {});
    const fwd = expectClose(out.data(), ref, FWD_TOL, `${name} forward`);
    out.backward({ grad: fromValues(x.dout, out.shape) });
    let bwd = 0;
    bwd = Math.max(bwd, expectClose(q.grad!.data(), grads.dq, GRAD_TOL, `${name} dq`));
    bwd = Math.max(bwd, expectClose(k.grad!.data(), grads.dk, GRAD_TOL, `${name} dk`));
    bwd = Math.max(bwd, expectClose(v.grad!.data(), grads.dv, GRAD_TOL, `${name} dv`));
    recordError(name, fwd, bwd);
  });
}

/** Bit patterns of a float32 array, for exact comparisons that also see -0 and NaN payloads. */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

// ---- tests ----------------------------------------------------------------------------------------

// Every suite runs once per backend (the cpu once per kernel level); fromValues and checkOp put their
// tensors on the suite's device.
describeEachBackend('attention', ({ device }) => {
  // Finite differences of the float64 reference, on shapes small enough for O(inputs × N² D) work.
  test.each([
    [1, 1, 1, 1, 32],
    [2, 2, 3, 3, 64],
    [1, 1, 17, 17, 32],
    [1, 1, 3, 17, 64],
    [1, 1, 17, 5, 32],
  ])('finite differences, B=%i H=%i Nq=%i Nk=%i D=%i', (B, H, Nq, Nk, D) => {
    const m = dims(B, H, Nq, Nk, D);
    checkOp('attention (fd)', (q, k, v) => attention(q, k, v), refOut(m), [
      { values: randomValues(B * H * Nq * D, 10 + Nq), shape: [B, H, Nq, D] },
      { values: randomValues(B * H * Nk * D, 20 + Nk), shape: [B, H, Nk, D] },
      { values: randomValues(B * H * Nk * D, 30 + D), shape: [B, H, Nk, D] },
    ], FWD_TOL);
  });

  // Longer sequences against the analytic float64 backward. The shapes cover one block with a
  // folded-in remainder (65), blocks with a remainder of their own (100 = 64 + 36), many key blocks
  // with B·H = 1 (the backward then splits keys across tasks and sums dq partials), B·H >= 64 (one
  // task per pair), head dims that are not a multiple of any vector width, and Nq != Nk both ways.
  test.each([
    [2, 2, 65, 65, 64],
    [1, 2, 257, 257, 128],
    [1, 1, 257, 257, 64],
    [8, 8, 65, 65, 32],
    [1, 3, 65, 257, 17],
    [2, 1, 257, 33, 80],
    [1, 1, 100, 129, 1],
    [1, 1, 70, 40, 256],
  ])('analytic reference, B=%i H=%i Nq=%i Nk=%i D=%i', (B, H, Nq, Nk, D) => {
    checkAgainstReference('attention', dims(B, H, Nq, Nk, D), B * 1000 + Nq + D);
  });

  test('N = 1025 with B·H = 1', () => {
    checkAgainstReference('attention N=1025', dims(1, 1, 1025, 1025, 32), 77);
  });

  test('explicit scale, including a negative one', () => {
    checkAgainstReference('attention scale', dims(1, 2, 33, 40, 64, 0.3), 5, true);
    checkAgainstReference('attention scale', dims(2, 1, 17, 70, 32, -0.2), 6, true);
  });

  test('q, k, v read in place from a (B, N, 3, H, D) qkv tensor', () => {
    const B = 2, N = 65, H = 3, D = 64;
    const m = dims(B, H, N, N, D);
    const qkvValues = toF32(randomValues(B * N * 3 * H * D, 99));
    const dout = toF32(randomValues(B * H * N * D, 98));
    // The same values as contiguous (B, H, N, D) arrays for the reference.
    const part = (which: number) => {
      const out = new Float64Array(B * H * N * D);
      for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let c = 0; c < D; c++)
        out[((b * H + h) * N + n) * D + c] = qkvValues[(((b * N + n) * 3 + which) * H + h) * D + c];
      return out;
    };
    const [q, k, v] = [0, 1, 2].map(part);
    const ref = refForward(m, q, k, v).out;
    const g = refBackward(m, q, k, v, dout);
    dv.scope(() => {
      const qkv = fromValues(qkvValues, [B, N, 3, H, D], true);
      const [tq, tk, tv] = [0, 1, 2].map((i) => qkv.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3]));
      expect(tq.isContiguous()).toBe(false);
      expect(tq.storage).toBe(qkv.storage);
      const out = attention(tq, tk, tv);
      expectClose(out.data(), ref, FWD_TOL, 'strided forward');
      // The output's memory is (B, N, H, D): merging the heads is a view.
      const merged = out.transpose(1, 2).reshape([B, N, H * D]);
      expect(merged.storage).toBe(out.storage);
      out.backward({ grad: fromValues(dout, out.shape) });
      const grad = qkv.grad!.data();
      const [gq, gk, gv] = [0, 1, 2].map((which) => {
        const o = new Float64Array(B * H * N * D);
        for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let c = 0; c < D; c++)
          o[((b * H + h) * N + n) * D + c] = grad[(((b * N + n) * 3 + which) * H + h) * D + c];
        return o;
      });
      expectClose(gq, g.dq, GRAD_TOL, 'strided dq');
      expectClose(gk, g.dk, GRAD_TOL, 'strided dk');
      expectClose(gv, g.dv, GRAD_TOL, 'strided dv');
    });
  });

  test('finite differences through a qkv view', () => {
    const B = 1, N = 9, H = 2, D = 32;
    const m = dims(B, H, N, N, D);
    const split = (qkv: Float64Array, which: number) => {
      const out = new Float64Array(B * H * N * D);
      for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let c = 0; c < D; c++)
        out[(h * N + n) * D + c] = qkv[((n * 3 + which) * H + h) * D + c];
      return out;
    };
    checkOp('attention (qkv view, fd)', (qkv) => {
      const [q, k, v] = [0, 1, 2].map((i) => qkv.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3]));
      return attention(q, k, v);
    }, (qkv) => refForward(m, split(qkv, 0), split(qkv, 1), split(qkv, 2)).out,
    [{ values: randomValues(B * N * 3 * H * D, 3), shape: [B, N, 3, H, D] }], FWD_TOL);
  });

  test('a head dim with stride != 1 is copied; keys shared by every head (stride 0) are read in place', () => {
    const B = 1, H = 2, N = 20, D = 32;
    const m = dims(B, H, N, N, D);
    const x = inputs(m, 41);
    const ref = refForward(m, x.q, x.k, x.v).out;
    dv.scope(() => {
      // q given as a (B, H, D, N) tensor transposed: head-dim stride N.
      const qT = fromValues(x.q, [B, H, N, D]).transpose(2, 3).contiguous().transpose(2, 3);
      expect(qT.strides[3]).toBe(N);
      const k = fromValues(x.k, [B, H, N, D]);
      const v = fromValues(x.v, [B, H, N, D]);
      expectClose(attention(qT, k, v).data(), ref, FWD_TOL, 'transposed head dim');
      // One key/value head broadcast to every query head.
      const k0 = k.slice(1, 0, 1).expand([B, H, N, D]), v0 = v.slice(1, 0, 1).expand([B, H, N, D]);
      expect(k0.strides[1]).toBe(0);
      const kk = new Float64Array(x.k), vv = new Float64Array(x.v);
      kk.copyWithin(N * D, 0, N * D);
      vv.copyWithin(N * D, 0, N * D);
      expectClose(attention(qT, k0, v0).data(), refForward(m, x.q, kk, vv).out, FWD_TOL, 'shared kv head');
    });
  });

  test('no tensor or buffer outlives forward + backward', () => {
    const m = dims(2, 2, 33, 47, 32);
    const x = inputs(m, 12);
    const before = dv.memory(device);
    for (let step = 0; step < 3; step++) {
      dv.scope(() => {
        const q = fromValues(x.q, [m.B, m.H, m.Nq, m.D], true);
        const k = fromValues(x.k, [m.B, m.H, m.Nk, m.D], true);
        const v = fromValues(x.v, [m.B, m.H, m.Nk, m.D], true);
        // A transposed head dim makes the op copy (and dispose) internally, in forward and backward.
        const qT = q.transpose(2, 3).contiguous().transpose(2, 3);
        const out = attention(qT, k, v);
        out.backward({ grad: fromValues(x.dout, out.shape) });
        for (const t of [q, k, v]) t.grad!.dispose();
      });
    }
    const after = dv.memory(device);
    expect(after.tensors).toBe(before.tensors);
    expect(after.buffers).toBe(before.buffers);
  });

  // selfAttention: the packed (B, N, 3·H·D) projection in, merged heads (B, N, H·D) out, one packed gradient.
  const unpack = (B: number, N: number, H: number, D: number, qkv: ArrayLike<number>, which: number) => {
    const out = new Float64Array(B * H * N * D);
    for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let c = 0; c < D; c++)
      out[((b * H + h) * N + n) * D + c] = qkv[(((b * N + n) * 3 + which) * H + h) * D + c];
    return out;
  };
  /** (B, H, N, D) rows as (B, N, H·D): the merged-heads layout selfAttention returns. */
  const mergeHeads = (B: number, N: number, H: number, D: number, x: Float64Array) => {
    const out = new Float64Array(x.length);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let n = 0; n < N; n++) for (let c = 0; c < D; c++)
      out[((b * N + n) * H + h) * D + c] = x[((b * H + h) * N + n) * D + c];
    return out;
  };

  test.each([
    [2, 65, 3, 64],
    [1, 257, 2, 32],
    [3, 17, 5, 24],
    [1, 1, 1, 8],
  ])('selfAttention against the float64 reference, B=%i N=%i H=%i D=%i', (B, N, H, D) => {
    const m = dims(B, H, N, N, D);
    const qkvValues = toF32(randomValues(B * N * 3 * H * D, 7 + N));
    const dMerged = toF32(randomValues(B * N * H * D, 8 + N));
    const [q, k, v] = [0, 1, 2].map((i) => unpack(B, N, H, D, qkvValues, i));
    // dout in (B, H, N, D) for the reference: the merged gradient un-merged.
    const dout = unpack(B, N, H, D, Float64Array.from({ length: 3 * dMerged.length }, (_, i) => {
      const row = Math.floor(i / (3 * H * D)), col = i % (3 * H * D);
      return col < H * D ? dMerged[row * H * D + col] : 0;
    }), 0);
    const ref = mergeHeads(B, N, H, D, refForward(m, q, k, v).out);
    const g = refBackward(m, q, k, v, dout);
    dv.scope(() => {
      const qkv = fromValues(qkvValues, [B, N, 3 * H * D], true);
      const out = dv.selfAttention(qkv, H);
      expect(out.shape).toEqual([B, N, H * D]);
      const fwd = expectClose(out.data(), ref, FWD_TOL, 'selfAttention forward');
      out.backward({ grad: fromValues(dMerged, out.shape) });
      const grad = qkv.grad!.data();
      let bwd = 0;
      [g.dq, g.dk, g.dv].forEach((want, which) => {
        bwd = Math.max(bwd, expectClose(unpack(B, N, H, D, grad, which), want, GRAD_TOL, `selfAttention d${'qkv'[which]}`));
      });
      recordError('selfAttention', fwd, bwd);
    });
  });

  test('selfAttention: finite differences, and a non-contiguous qkv is read through a copy', () => {
    const B = 2, N = 7, H = 2, D = 8;
    const m = dims(B, H, N, N, D);
    checkOp('selfAttention (fd)', (qkv) => dv.selfAttention(qkv, H),
      (qkv) => mergeHeads(B, N, H, D, refForward(m, unpack(B, N, H, D, qkv, 0), unpack(B, N, H, D, qkv, 1), unpack(B, N, H, D, qkv, 2)).out),
      [{ values: randomValues(B * N * 3 * H * D, 4), shape: [B, N, 3 * H * D] }], FWD_TOL);
    dv.scope(() => {
      const values = toF32(randomValues(B * N * 3 * H * D, 5));
      const qkv = fromValues(values, [B, N, 3 * H * D]);
      const strided = qkv.transpose(0, 1).contiguous().transpose(0, 1);
      expect(strided.isContiguous()).toBe(false);
      expect(Array.from(dv.selfAttention(strided, H).data())).toEqual(Array.from(dv.selfAttention(qkv, H).data()));
    });
  });

  test('backward twice through a retained graph; no lse without grad', () => {
    const m = dims(1, 2, 17, 17, 32);
    const x = inputs(m, 8);
    const g = refBackward(m, x.q, x.k, x.v, x.dout);
    dv.scope(() => {
      const q = fromValues(x.q, [1, 2, 17, 32], true);
      const k = fromValues(x.k, [1, 2, 17, 32]);
      const v = fromValues(x.v, [1, 2, 17, 32]);
      const out = attention(q, k, v);
      // The log-sum-exp rows ride behind the output in its storage.
      expect(out.storage.buffer.numel).toBe(out.size + 2 * 17);
      const dy = fromValues(x.dout, out.shape);
      out.backward({ grad: dy, retainGraph: true });
      out.backward({ grad: dy });
      expectClose(q.grad!.data(), g.dq.map((t) => 2 * t), GRAD_TOL, 'dq after two backwards');
      expect(k.grad).toBeNull();
      const plain = dv.noGrad(() => attention(q, k, v));
      expect(plain.storage.buffer.numel).toBe(plain.size);
      expect(plain.gradFn).toBeNull();
    });
  });

  test('gradient of sum(out) (a broadcast gradient with zero strides); q = k = v one tensor', () => {
    const m = dims(2, 2, 19, 19, 32);
    const x = inputs(m, 21);
    const ones = new Float64Array(x.q.length).fill(1);
    const g = refBackward(m, x.q, x.q, x.q, ones);
    dv.scope(() => {
      const t = fromValues(x.q, [m.B, m.H, m.Nq, m.D], true);
      attention(t, t, t).sum().backward();
      expectClose(t.grad!.data(), g.dq.map((dq, i) => dq + g.dk[i] + g.dv[i]), GRAD_TOL, 'self-attention d/dx');
      t.grad!.dispose();
    });
  });

  // autocast('bf16'): CUDA multiplies Q·Kᵀ, P·V and the backward's products on tensor cores (bf16
  // operands, fp32 softmax and accumulation), the CPU stays fp32; both within the bf16 GEMM bounds of
  // the float64 reference. The backward runs at the forward's precision wherever backward() is called.
  test.each([
    [2, 2, 65, 33, 64],
    [1, 3, 17, 40, 40],
    [1, 1, 70, 9, 130],
  ])('bf16 (autocast), B=%i H=%i Nq=%i Nk=%i D=%i', (B, H, Nq, Nk, D) => {
    const m = dims(B, H, Nq, Nk, D), x = inputs(m, 7 * Nq + D);
    const ref = refForward(m, x.q, x.k, x.v).out, grads = refBackward(m, x.q, x.k, x.v, x.dout);
    const BF16: CloseOptions = { dtype: 'bf16' };
    const run = (precision: 'bf16' | 'float32') => dv.scope(() => {
      const q = fromValues(x.q, [B, H, Nq, D], true), k = fromValues(x.k, [B, H, Nk, D], true);
      const v = fromValues(x.v, [B, H, Nk, D], true);
      const out = dv.autocast(precision, () => attention(q, k, v));
      out.backward({ grad: fromValues(x.dout, out.shape) });
      return [out.data(), q.grad!.data(), k.grad!.data(), v.grad!.data()];
    });
    const [out, dq, dk, dv_] = run('bf16');
    expectClose(out, ref, BF16, 'bf16 forward');
    expectClose(dq, grads.dq, { ...BF16, grad: true }, 'bf16 dq');
    expectClose(dk, grads.dk, { ...BF16, grad: true }, 'bf16 dk');
    expectClose(dv_, grads.dv, { ...BF16, grad: true }, 'bf16 dv');
    // The precision reaches the kernels: on CUDA the bf16 results differ from fp32's, on the CPU not.
    const fp32 = run('float32');
    if (device === 'cpu') expect(bits(out)).toEqual(bits(fp32[0]));
    else expect(bits(out)).not.toEqual(bits(fp32[0]));
  });

  test('empty batch and empty queries', () => {
    dv.scope(() => {
      const on = { device };
      const q = dv.zeros([2, 3, 0, 16], on), k = dv.ones([2, 3, 5, 16], on), v = dv.ones([2, 3, 5, 16], on);
      k.requiresGrad = true;
      v.requiresGrad = true;
      const out = attention(q, k, v);
      expect(out.shape).toEqual([2, 3, 0, 16]);
      out.backward({ grad: dv.zeros([2, 3, 0, 16], on) });
      expect(Math.max(...k.grad!.data().map(Math.abs))).toBe(0);
      expect(Math.max(...v.grad!.data().map(Math.abs))).toBe(0);
      expect(attention(dv.zeros([0, 2, 4, 8], on), dv.zeros([0, 2, 4, 8], on), dv.zeros([0, 2, 4, 8], on)).shape).toEqual([0, 2, 4, 8]);
    });
  });
});

// Thread counts are the CPU backend's: per CPU level, not per backend.
describeEachLevel('attention on the CPU', () => {
  test('results do not depend on the thread count', () => {
    const threads = dv.runtimeInfo().threads;
    const run = (m: Dims, x: ReturnType<typeof inputs>) => dv.scope(() => {
      const q = fromValues(x.q, [m.B, m.H, m.Nq, m.D], true);
      const k = fromValues(x.k, [m.B, m.H, m.Nk, m.D], true);
      const v = fromValues(x.v, [m.B, m.H, m.Nk, m.D], true);
      const out = attention(q, k, v);
      out.backward({ grad: fromValues(x.dout, out.shape) });
      const result = [out, q.grad!, k.grad!, v.grad!].map((t) => bits(t.data()));
      for (const t of [q, k, v]) t.grad!.dispose();
      return result;
    });
    try {
      // B·H = 1 with 7 key blocks (the backward splits keys into 7 tasks and sums dq partials; the
      // forward splits queries finer), 6 pairs with two key blocks each, and many pairs (one task per pair).
      for (const m of [dims(1, 1, 200, 450, 64), dims(2, 3, 65, 129, 32), dims(16, 8, 17, 17, 16)]) {
        const x = inputs(m, 3);
        dv.setThreads(1);
        const one = run(m, x);
        for (const n of [2, 3]) {
          dv.setThreads(n);
          run(m, x).forEach((a, i) => {
            const at = a.findIndex((w, j) => w !== one[i][j]);
            expect(at, `${n} threads vs 1, result ${i} (out, dq, dk, dv) differs at element ${at}`).toBe(-1);
          });
        }
      }
    } finally {
      dv.setThreads(threads);
    }
  });
});

// The op's argument checks and the CPU addon's own (native calls): run once, on the cpu.
test('bad arguments are rejected with the op, the argument and what was expected', () => {
  dv.scope(() => {
    const q = dv.zeros([1, 2, 3, 8]), k = dv.zeros([1, 2, 5, 8]), v = dv.zeros([1, 2, 5, 8]);
    expect(() => attention(q.reshape([2, 3, 8]), k, v)).toThrow(/diffvit.attention: argument 'q' expected rank 4/);
    expect(() => attention(q, dv.zeros([1, 3, 5, 8]), v)).toThrow(/argument 'k' expected shape \[1, 2, Nk, 8\]/);
    expect(() => attention(q, k, dv.zeros([1, 2, 4, 8]))).toThrow(/argument 'v' expected shape \[1, 2, 5, 8\]/);
    expect(() => attention(q, k, dv.zeros([1, 2, 5, 4]))).toThrow(/argument 'v'/);
    expect(() => attention(dv.zeros([1, 1, 1, 257]), dv.zeros([1, 1, 1, 257]), dv.zeros([1, 1, 1, 257])))
      .toThrow(/argument 'q' expected a head dim in \[1, 256\]/);
    expect(() => attention(q, dv.zeros([1, 2, 0, 8]), dv.zeros([1, 2, 0, 8]))).toThrow(/at least one key/);
    expect(() => attention(q, k, v, { scale: NaN })).toThrow(/argument 'options.scale' expected a finite number/);
    expect(() => attention(q, k, dv.zeros([1, 2, 5, 8], 'int32'))).toThrow(/argument 'v' expected dtype float32/);
    const gone = dv.zeros([1, 2, 5, 8]);
    gone.dispose();
    expect(() => attention(q, gone, v)).toThrow(/argument 'k' expected a live tensor/);

    const qkv = dv.zeros([2, 5, 24]);
    expect(() => dv.selfAttention(qkv.reshape([10, 24]), 2)).toThrow(/diffvit.selfAttention: argument 'qkv' expected rank 3/);
    expect(() => dv.selfAttention(qkv, 5)).toThrow(/selfAttention: argument 'qkv' expected a last dim divisible by 3 \* heads = 15/);
    expect(() => dv.selfAttention(qkv, 0)).toThrow(/selfAttention: argument 'heads' expected a positive integer/);
    expect(() => dv.selfAttention(dv.zeros([1, 2, 3 * 257]), 1)).toThrow(/selfAttention: argument 'qkv' expected a head dim of at most 256/);
    expect(() => dv.selfAttention(dv.zeros([1, 0, 24]), 2)).toThrow(/selfAttention: argument 'qkv' expected at least one token/);
    expect(() => dv.selfAttention(qkv, 2, { scale: Infinity })).toThrow(/selfAttention: argument 'options.scale' expected a finite number/);

    // The binding checks every argument itself (it is reachable without the TS op).
    const buf = (n: number) => dv.zeros([n]).buffer;
    const n = 1 * 2 * 5 * 8;
    type FwdArgs = Parameters<typeof native.attentionForward>[0];
    type BwdArgs = Parameters<typeof native.attentionBackward>[0];
    const call = (kernel: string, args: unknown) =>
      (native as unknown as Record<string, (a: unknown) => void>)[kernel](args);
    const good = (): FwdArgs => ({
      q: buf(n), qOffset: 0, qStrides: [80, 40, 8], k: buf(n), kOffset: 0, kStrides: [80, 40, 8],
      v: buf(n), vOffset: 0, vStrides: [80, 40, 8], out: buf(n), outOffset: 0, outStrides: [80, 40, 8],
      lse: buf(10), lseOffset: 0, batch: 1, heads: 2, nq: 5, nk: 5, d: 8, scale: 0.5, precision: 'float32' });
    expect(() => native.attentionForward(good())).not.toThrow();
    expect(() => native.attentionForward({ ...good(), precision: 'bf16' })).not.toThrow();
    const bad = (key: keyof FwdArgs, value: unknown, message: RegExp) => {
      const args: Record<string, unknown> = { ...good() };
      expect(key in args).toBe(true);
      args[key] = value;
      expect(() => call('attentionForward', args)).toThrow(message);
    };
    bad('q', buf(n - 1), /attentionForward: argument 'q' expected at least 80 float32 elements/);
    bad('kOffset', 1, /argument 'k' expected at least 81/);
    bad('kStrides', [80, 40], /argument 'kStrides' expected an array of at least 3 integers/);
    bad('kStrides', [80, 40, 8, 1], /argument 'kStrides' expected 3 strides/);
    bad('vStrides', [80, 40, -8], /argument 'vStrides' expected integers in \[0/);
    bad('outStrides', [80, 40, 4], /argument 'outStrides' expected strides of a non-overlapping/);
    bad('outStrides', [0, 8, 8], /argument 'outStrides' expected strides of a non-overlapping/);
    bad('lse', buf(9), /argument 'lse' expected at least 10/);
    expect(() => native.attentionForward({ ...good(), lse: null })).not.toThrow();
    bad('nk', 0, /argument 'nk' expected an integer in \[1,/);
    bad('d', 257, /argument 'd' expected an integer in \[1, 256\]/);
    bad('d', 0, /argument 'd' expected an integer in \[1, 256\]/);
    bad('scale', Infinity, /argument 'scale' expected a finite number/);
    bad('k', 'k', /argument 'k' expected a float32 NativeBuffer, received a string/);
    bad('precision', 'float16', /attentionForward: argument 'precision' expected one of 'float32', 'bf16'/);
    // The call shape itself: one object with exactly the kernel's keys.
    const { q: _q, ...noQ } = good();
    void _q;
    expect(() => call('attentionForward', noQ))
      .toThrow(/attentionForward: argument 'q' expected a value \(the argument is missing\), received no such key/);
    expect(() => call('attentionForward', { ...good(), dropout: 0.1 }))
      .toThrow(/attentionForward: argument 'dropout' expected no such argument/);
    expect(() => (native.attentionForward as (...a: unknown[]) => void)(...Object.values(good())))
      .toThrow(/attentionForward: argument '\(arguments\)' expected one object \{ q, qOffset, qStrides, .*, scale, precision \}, received 21 arguments/);

    const goodBwd = (): BwdArgs => ({
      q: buf(n), qOffset: 0, qStrides: [80, 40, 8], k: buf(n), kOffset: 0, kStrides: [80, 40, 8],
      v: buf(n), vOffset: 0, vStrides: [80, 40, 8], out: buf(n), outOffset: 0, outStrides: [80, 40, 8],
      dout: buf(n), doutOffset: 0, doutStrides: [80, 40, 8], lse: buf(10), lseOffset: 0,
      dq: buf(n), dqOffset: 0, dqStrides: [80, 40, 8], dk: buf(n), dkOffset: 0, dkStrides: [80, 40, 8],
      dv: buf(n), dvOffset: 0, dvStrides: [80, 40, 8], batch: 1, heads: 2, nq: 5, nk: 5, d: 8, scale: 0.5,
      precision: 'float32' });
    expect(() => native.attentionBackward(goodBwd())).not.toThrow();
    const badBwd = (key: keyof BwdArgs, value: unknown, message: RegExp) => {
      const args: Record<string, unknown> = { ...goodBwd() };
      expect(key in args).toBe(true);
      args[key] = value;
      expect(() => call('attentionBackward', args)).toThrow(message);
    };
    badBwd('dout', buf(n - 8), /attentionBackward: argument 'dout' expected at least 80/);
    badBwd('lse', null, /argument 'lse' expected a float32 NativeBuffer, received null/);
    badBwd('lseOffset', 1, /argument 'lse' expected at least 11/);
    badBwd('dqStrides', [80, 8, 8], /argument 'dqStrides' expected strides of a non-overlapping/);
    badBwd('dkStrides', [80, 40, 0], /argument 'dkStrides' expected strides of a non-overlapping/);
    badBwd('dv', buf(n - 1), /argument 'dv' expected at least 80/);
    badBwd('d', 300, /argument 'd' expected an integer in \[1, 256\]/);
    badBwd('precision', null, /attentionBackward: argument 'precision' expected one of 'float32', 'bf16'/);
  });
});
