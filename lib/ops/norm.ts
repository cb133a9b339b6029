/**
 * Normalisations on the native norm kernels: `softmax` over any axis and `layerNorm` over the
 * last axis (PyTorch's torch.softmax and F.layer_norm semantics), each with its backward.
 *
 *   const attn = softmax(scores);                 // scores: (B, H, N, N), over the keys
 *   const h = layerNorm(x, null, null, 1e-6);     // adaLN: no affine, modulated afterwards
 *   const t = layerNorm(x, norm.weight, norm.bias); // token mode: affine
 */
import { runKernel } from '../backend/dispatch.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { formatShape, shapeSize, Tensor } from '../tensor/tensor.js';
import { argError, checkTensor, dense, describe, normAxis, release } from './util.js';

/**
 * softmax(x) along `axis` (default: the last), computed as exp(x - max) / sum(exp(x - max)) so
 * large inputs do not overflow. A 0-d tensor is treated as one element (result 1).
 *
 *   softmax(tensor([[1, 2, 3]]))      // [[0.090, 0.245, 0.665]]
 *   softmax(x, 0)                     // over the first axis, no transpose or copy of x
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  checkTensor('softmax', 'x', x);
  const rank = Math.max(x.rank, 1);
  const d = normAxis('softmax', axis, rank);
  // x seen as (outer, n, inner) with the softmax over n.
  const outer = shapeSize(x.shape.slice(0, d));
  const n = x.rank === 0 ? 1 : x.shape[d];
  const inner = shapeSize(x.shape.slice(d + 1));
  const src = dense(x);
  const out = Tensor.empty(x.shape, 'float32', x.device);
  runKernel('softmax', { x: src.buffer, xOffset: src.offset, y: out.buffer, yOffset: 0, outer, n, inner });
  release(src, x);
  // The backward needs only the output: dx = y * (dy - sum_axis(dy * y)).
  return record('softmax', out, [x], (dy) => {
    const g = dense(dy);
    const dx = Tensor.empty(x.shape, 'float32', x.device);
    runKernel('softmaxBackward', {
      y: out.buffer, yOffset: out.offset, dy: g.buffer, dyOffset: g.offset, dx: dx.buffer, dxOffset: 0, outer, n,
      inner
    });
    release(g, dy);
    return [dx];
  });
}

function checkAffine(arg: 'weight' | 'bias', t: Tensor | null, cols: number, x: Tensor): Tensor | null {
  if (t === null || t === undefined) return null;
  checkTensor('layerNorm', arg, t);
  if (t.rank !== 1 || t.shape[0] !== cols) {
    throw argError('layerNorm', arg, `shape [${cols}] (the last dim of x ${formatShape(x.shape)}) or null`, `shape ${formatShape(t.shape)}`);
  }
  return t;
}

/**
 * LayerNorm over the last axis, as torch.nn.functional.layer_norm(x, [D], weight, bias, eps):
 * y = (x - mean) / sqrt(var + eps) * weight + bias with the biased variance. weight and bias are
 * (D) or null (IU-ViT's adaLN blocks use no affine; token mode uses both).
 *
 *   layerNorm(x, w, b)            // x: (B, N, D), w, b: (D)
 *   layerNorm(x, null, null, 1e-6)
 */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-6): Tensor {
  checkTensor('layerNorm', 'x', x);
  if (x.rank < 1) throw argError('layerNorm', 'x', 'rank >= 1 (normalised over the last axis)', `shape ${formatShape(x.shape)}`);
  const cols = x.shape[x.rank - 1];
  const rows = shapeSize(x.shape.slice(0, -1));
  const w = checkAffine('weight', weight, cols, x), b = checkAffine('bias', bias, cols, x);
  // eps is added to a float32 variance, so it must stay positive and finite once rounded to float32.
  if (typeof eps !== 'number' || !(eps > 0) || !(Math.fround(eps) > 0) || !Number.isFinite(Math.fround(eps))) {
    throw argError('layerNorm', 'eps', 'a finite number > 0 (representable in float32)', describe(eps));
  }
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  const X = dense(x), W = w && dense(w), B = b && dense(b);
  const out = Tensor.empty(x.shape, 'float32', x.device);
  // Per-row statistics for the backward, (2, rows): mean in row 0, 1/sqrt(var + eps) in row 1.
  // Only saved when a gradient will be asked for.
  const stats = needsGrad(...inputs) ? Tensor.empty([2, rows], 'float32', x.device) : null;
  runKernel('layerNorm', {
    x: X.buffer, xOffset: X.offset, weight: W?.buffer ?? null, weightOffset: W?.offset ?? 0, bias: B?.buffer ?? null,
    biasOffset: B?.offset ?? 0, y: out.buffer, yOffset: 0, mean: stats?.buffer ?? null, meanOffset: 0,
    rstd: stats?.buffer ?? null, rstdOffset: rows, rows, cols, eps
  });
  release(X, x);
  release(W, w);
  release(B, b);
  if (!stats) return out;
  return record('layerNorm', out, inputs, (dy) => {
    const G = dense(dy), Xb = dense(x), Wb = w && dense(w);
    const dx = x.requiresGrad ? Tensor.empty(x.shape, 'float32', x.device) : null;
    const dw = w?.requiresGrad ? Tensor.empty([cols], 'float32', x.device) : null;
    const db = b?.requiresGrad ? Tensor.empty([cols], 'float32', x.device) : null;
    runKernel('layerNormBackward', {
      x: Xb.buffer, xOffset: Xb.offset, weight: Wb?.buffer ?? null, weightOffset: Wb?.offset ?? 0,
      mean: stats.buffer, meanOffset: 0, rstd: stats.buffer, rstdOffset: rows, dy: G.buffer, dyOffset: G.offset,
      dx: dx?.buffer ?? null, dxOffset: 0, dweight: dw?.buffer ?? null, dweightOffset: 0, dbias: db?.buffer ?? null,
      dbiasOffset: 0, rows, cols
    });
    release(G, dy);
    release(Xb, x);
    release(Wb, w);
    return [dx, ...(w ? [dw] : []), ...(b ? [db] : [])];
  });
}
