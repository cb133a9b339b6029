/**
 * Rotary position embedding (RoPE) of the queries and keys in the attention's packed qkv
 * projection, on the native rope kernel (one pass; the backward is the inverse rotation).
 *
 *   const qkv = reshape(attn.qkv.forward(x), [B, N, 3, H, Dh]);   // q, k, v head groups
 *   const r = rotaryEmbedding(qkv, cos, sin);                     // cos, sin: (N, Dh/2), e.g. rope2dTables
 *   const o = selfAttention(reshape(r, [B, N, 3 * H * Dh]), H);
 *
 * Pairs are "rotate half": dim i of a head turns with dim i + Dh/2 by the angle of row t of the tables.
 */
import { runKernel } from '../backend/dispatch.js';
import { record } from '../tensor/autograd.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkRank, checkTensor, dense, release } from './util.js';

/**
 * qkv (B, N, 3, H, Dh) with q and k (the first 2·H of the 3·H head groups) rotated by the token
 * angles of cos and sin (N, Dh/2): for i < Dh/2, with a = x[i], b = x[i + Dh/2], c = cos[t][i],
 * s = sin[t][i]: y[i] = a·c − b·s, y[i + Dh/2] = b·c + a·s; v copied unchanged. Returns a new dense
 * tensor of qkv's shape. The tables are constants (no gradient); qkv's gradient is the output
 * gradient rotated back (the same kernel with s negated).
 */
export function rotaryEmbedding(qkv: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const op = 'rotaryEmbedding';
  checkTensor(op, 'qkv', qkv);
  checkTensor(op, 'cos', cos);
  checkTensor(op, 'sin', sin);
  checkRank(op, 'qkv', qkv, 5);
  const [B, N, three, H, Dh] = qkv.shape;
  if (three !== 3) throw argError(op, 'qkv', 'shape [B, N, 3, H, Dh] (q, k, v)', `shape ${formatShape(qkv.shape)}`);
  if (Dh % 2 !== 0) throw argError(op, 'qkv', 'an even head dim Dh (pairs i, i + Dh/2)', `shape ${formatShape(qkv.shape)}`);
  for (const [arg, t] of [['cos', cos], ['sin', sin]] as const) {
    if (t.rank !== 2 || t.shape[0] !== N || t.shape[1] !== Dh / 2) {
      throw argError(op, arg, `shape [${N}, ${Dh / 2}] (tokens, Dh/2 of qkv ${formatShape(qkv.shape)})`, `shape ${formatShape(t.shape)}`);
    }
    if (t.device !== qkv.device) throw argError(op, arg, `a tensor on qkv's device '${qkv.device}'`, `one on '${t.device}'`);
  }
  // (batch, tokens, groups, dim) = (B, N, 3·H, Dh): q's and k's heads are the first 2·H groups.
  const rotate = (x: Tensor, inverse: boolean) => {
    const X = dense(x), C = dense(cos), S = dense(sin);
    const y = Tensor.empty(qkv.shape, 'float32', qkv.device);
    try {
      runKernel('rope', {
        x: X.buffer, xOffset: X.offset, y: y.buffer, yOffset: 0, cos: C.buffer, cosOffset: C.offset, sin: S.buffer,
        sinOffset: S.offset, batch: B, tokens: N, groups: 3 * H, rotatedGroups: 2 * H, dim: Dh, inverse
      });
    } catch (err) {
      y.dispose();
      throw err;
    } finally {
      release(X, x);
      release(C, cos);
      release(S, sin);
    }
    return y;
  };
  return record(op, rotate(qkv, false), [qkv], (dy) => [rotate(dy, true)]);
}
