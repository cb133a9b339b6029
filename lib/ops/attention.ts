/**
 * Fused scaled-dot-product attention, softmax(q kᵀ · scale) v per (batch, head), on the native
 * FlashAttention-2 kernels: the forward walks key blocks with an online softmax and the backward
 * recomputes the probabilities from the saved log-sum-exp, so no (N × N) tensor is ever stored.
 *
 *   // qkv: (B, N, 3, H, D) from the qkv projection; q, k, v are read in place (no copies)
 *   const [q, k, v] = [0, 1, 2].map((i) => qkv.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3]));
 *   const o = attention(q, k, v);                          // (B, H, N, D), memory laid out (B, N, H, D)
 *   const y = o.transpose(1, 2).reshape([B, N, H * D]);   // a free view, ready for the output projection
 */
import type { AttentionStrides } from '../backend/kernels/attention.js';
import { runKernel } from '../backend/dispatch.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { matmulPrecision } from '../tensor/autocast.js';
import { Storage } from '../tensor/storage.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkNumber, checkRank, checkTensor, dense, describe, release } from './util.js';

/** The largest head dim the kernels take (native/cpu/attention.h). */
export const ATTENTION_MAX_HEAD_DIM = 256;

export interface AttentionOptions {
  /** Multiplies q kᵀ before the softmax; default 1 / sqrt(D). */
  scale?: number;
}

/**
 * x itself when its head dim has stride 1 (what the kernels read; the other dims may have any
 * strides), else a contiguous copy (dense) that the caller releases.
 */
function unitHeadDim(x: Tensor): Tensor {
  return x.shape[3] === 1 || x.strides[3] === 1 ? x : dense(x);
}

function disposeCopies(copies: Tensor[], originals: Tensor[]): void {
  copies.forEach((c, i) => release(c, originals[i]));
}

const strides3 = (t: Tensor): AttentionStrides => [t.strides[0], t.strides[1], t.strides[2]];

/**
 * A fresh (B, H, N, D) tensor whose memory is laid out as (B, N, H, D), so that
 * `t.transpose(1, 2).reshape([B, N, H * D])` is a view; the storage has `extra` more floats after it.
 */
function tokenMajor(device: string, b: number, h: number, n: number, d: number, extra = 0): Tensor {
  return new Tensor(new Storage(device, 'float32', b * h * n * d + extra), [b, h, n, d], [n * h * d, d, h * d, 1], 0);
}

/**
 * Scaled-dot-product attention: for q (B, H, Nq, D), k and v (B, H, Nk, D), returns
 * softmax(q kᵀ · scale) v with shape (B, H, Nq, D), scale defaulting to 1 / sqrt(D). Any strides
 * are read in place as long as the head dim has stride 1 (otherwise a contiguous copy is made).
 * The result is laid out as (B, Nq, H, D) in memory, so merging the heads is free.
 *
 * Autograd: the backward is the fused FlashAttention-2 kernel. It needs each query row's
 * log-sum-exp, which the forward writes into the same storage as the output, just after the
 * (B, Nq, H, D) values. It therefore lives exactly as long as the output's memory: nothing extra
 * to dispose or to leak, and a backward through a retained graph (`retainGraph`) can run again.
 * Without grad (no input requires it, or inside noGrad) the log-sum-exp is not stored at all.
 * The gradients dq, dk, dv are returned laid out as (B, N, H, D) like the output.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const op = 'attention';
  checkTensor(op, 'q', q);
  checkTensor(op, 'k', k);
  checkTensor(op, 'v', v);
  checkRank(op, 'q', q, 4);
  checkRank(op, 'k', k, 4);
  checkRank(op, 'v', v, 4);
  const [B, H, Nq, D] = q.shape;
  const Nk = k.shape[2];
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D) {
    throw argError(op, 'k', `shape [${B}, ${H}, Nk, ${D}] (q is ${formatShape(q.shape)})`, formatShape(k.shape));
  }
  if (v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== Nk || v.shape[3] !== D) {
    throw argError(op, 'v', `shape [${B}, ${H}, ${Nk}, ${D}] like k`, formatShape(v.shape));
  }
  if (D < 1 || D > ATTENTION_MAX_HEAD_DIM) {
    throw argError(op, 'q', `a head dim in [1, ${ATTENTION_MAX_HEAD_DIM}]`, `shape ${formatShape(q.shape)}`);
  }
  if (Nk < 1) throw argError(op, 'k', 'at least one key (Nk >= 1)', `shape ${formatShape(k.shape)}`);
  if (options === null || typeof options !== 'object') throw argError(op, 'options', 'an object', describe(options));
  const scale = options.scale === undefined ? 1 / Math.sqrt(D) : checkNumber(op, 'options.scale', options.scale);

  // The precision active now (autocast) also runs the backward, wherever backward() is called.
  const precision = matmulPrecision();
  const saveLse = needsGrad(q, k, v);
  const lseOffset = B * H * Nq * D;
  const out = tokenMajor(q.device, B, H, Nq, D, saveLse ? B * H * Nq : 0);
  const inputs = [q, k, v];
  const [qc, kc, vc] = inputs.map(unitHeadDim);
  try {
    runKernel('attentionForward', {
      q: qc.buffer, qOffset: qc.offset, qStrides: strides3(qc), k: kc.buffer, kOffset: kc.offset,
      kStrides: strides3(kc), v: vc.buffer, vOffset: vc.offset, vStrides: strides3(vc), out: out.buffer,
      outOffset: out.offset, outStrides: strides3(out), lse: saveLse ? out.buffer : null, lseOffset, batch: B,
      heads: H, nq: Nq, nk: Nk, d: D, scale, precision
    });
  } catch (err) {
    out.dispose();
    throw err;
  } finally {
    disposeCopies([qc, kc, vc], inputs);
  }

  return record(op, out, inputs, (dy) => {
    const g = unitHeadDim(dy);
    const [qb, kb, vb] = inputs.map(unitHeadDim);
    const dq = tokenMajor(q.device, B, H, Nq, D), dk = tokenMajor(q.device, B, H, Nk, D), dv = tokenMajor(q.device, B, H, Nk, D);
    try {
      runKernel('attentionBackward', {
        q: qb.buffer, qOffset: qb.offset, qStrides: strides3(qb), k: kb.buffer, kOffset: kb.offset,
        kStrides: strides3(kb), v: vb.buffer, vOffset: vb.offset, vStrides: strides3(vb), out: out.buffer,
        outOffset: out.offset, outStrides: strides3(out), dout: g.buffer, doutOffset: g.offset,
        doutStrides: strides3(g), lse: out.buffer, lseOffset, dq: dq.buffer, dqOffset: 0, dqStrides: strides3(dq),
        dk: dk.buffer, dkOffset: 0, dkStrides: strides3(dk), dv: dv.buffer, dvOffset: 0, dvStrides: strides3(dv),
        batch: B, heads: H, nq: Nq, nk: Nk, d: D, scale, precision
      });
    } catch (err) {
      dq.dispose();
      dk.dispose();
      dv.dispose();
      throw err;
    } finally {
      disposeCopies([qb, kb, vb, g], [...inputs, dy]);
    }
    return [dq, dk, dv];
  });
}

/**
 * Self-attention straight from the qkv projection: qkv (B, N, 3·H·D) as `Linear(dim, 3 * dim)`
 * writes it (the twin's `qkv(x).reshape(B, N, 3, H, D)`), heads `H`. Returns softmax(q kᵀ · scale) v
 * with the heads merged, (B, N, H·D), ready for the output projection. Same kernels as `attention`,
 * which reads q, k and v in place here; the backward writes dq, dk and dv into one (B, N, 3·H·D)
 * gradient, the qkv projection's output gradient, instead of three views that autograd would zero-pad,
 * sum and copy back through the slice/permute/reshape chain.
 *
 *   const o = selfAttention(attn.qkv.forward(x), heads);   // (B, N, dim)
 */
export function selfAttention(qkv: Tensor, heads: number, options: AttentionOptions = {}): Tensor {
  const op = 'selfAttention';
  checkTensor(op, 'qkv', qkv);
  checkRank(op, 'qkv', qkv, 3);
  if (!Number.isInteger(heads) || heads < 1) throw argError(op, 'heads', 'a positive integer', describe(heads));
  const [B, N, width] = qkv.shape;
  if (width % (3 * heads) !== 0) throw argError(op, 'qkv', `a last dim divisible by 3 * heads = ${3 * heads}`, `shape ${formatShape(qkv.shape)}`);
  const H = heads, D = width / (3 * heads), HD = H * D;
  if (D > ATTENTION_MAX_HEAD_DIM) throw argError(op, 'qkv', `a head dim of at most ${ATTENTION_MAX_HEAD_DIM}`, `head dim ${D}`);
  if (N < 1) throw argError(op, 'qkv', 'at least one token', `shape ${formatShape(qkv.shape)}`);
  if (options === null || typeof options !== 'object') throw argError(op, 'options', 'an object', describe(options));
  const scale = options.scale === undefined ? 1 / Math.sqrt(D) : checkNumber(op, 'options.scale', options.scale);

  // (batch, head, token) strides of q, k, v inside a contiguous (B, N, 3, H, D) tensor, and of (B, N, H, D) rows.
  const packed: AttentionStrides = [N * width, D, width];
  const merged: AttentionStrides = [N * HD, D, HD];
  const precision = matmulPrecision();
  const saveLse = needsGrad(qkv);
  const lseOffset = B * N * HD;
  const out = new Tensor(new Storage(qkv.device, 'float32', lseOffset + (saveLse ? B * H * N : 0)), [B, N, HD], [N * HD, HD, 1], 0);
  const src = dense(qkv);
  try {
    runKernel('attentionForward', {
      q: src.buffer, qOffset: src.offset, qStrides: packed, k: src.buffer, kOffset: src.offset + HD,
      kStrides: packed, v: src.buffer, vOffset: src.offset + 2 * HD, vStrides: packed, out: out.buffer, outOffset: 0,
      outStrides: merged, lse: saveLse ? out.buffer : null, lseOffset, batch: B, heads: H, nq: N, nk: N, d: D, scale, precision
    });
  } catch (err) {
    out.dispose();
    throw err;
  } finally {
    release(src, qkv);
  }

  return record(op, out, [qkv], (dy) => {
    const g = dense(dy), x = dense(qkv);
    const dqkv = Tensor.empty([B, N, width], 'float32', qkv.device);
    try {
      runKernel('attentionBackward', {
        q: x.buffer, qOffset: x.offset, qStrides: packed, k: x.buffer, kOffset: x.offset + HD, kStrides: packed,
        v: x.buffer, vOffset: x.offset + 2 * HD, vStrides: packed, out: out.buffer, outOffset: 0, outStrides: merged,
        dout: g.buffer, doutOffset: g.offset, doutStrides: merged, lse: out.buffer, lseOffset, dq: dqkv.buffer,
        dqOffset: 0, dqStrides: packed, dk: dqkv.buffer, dkOffset: HD, dkStrides: packed, dv: dqkv.buffer,
        dvOffset: 2 * HD, dvStrides: packed, batch: B, heads: H, nq: N, nk: N, d: D, scale, precision
      });
    } catch (err) {
      dqkv.dispose();
      throw err;
    } finally {
      release(g, dy);
      release(x, qkv);
    }
    return [dqkv];
  });
}
