/**
 * 2-D convolution, NCHW — PyTorch's F.conv2d (no dilation, one group) — as im2col + batched GEMM:
 * per image, out[n] (Cout, OH·OW) = weight (Cout, Cin·kh·kw) · cols[n] (Cin·kh·kw, OH·OW).
 *
 *   const tokens = conv2d(img, w, b, { stride: 4 });          // (N, 3, 32, 32) -> (N, 256, 8, 8)
 *   const y = conv2d(z, w3, b3, { padding: 1 });               // 3×3 "same" conv
 */
import { runKernel } from '../backend/dispatch.js';
import { type MatmulPrecision, matmulPrecision } from '../tensor/autocast.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkRank, checkTensor, dense, describe, release } from './util.js';

export interface Conv2dOptions {
  /** Step between kernel positions, one number for both axes or [h, w]; default 1. */
  stride?: number | [number, number];
  /** Zero padding added on both sides of each axis, one number or [h, w]; default 0. */
  padding?: number | [number, number];
}

/**
 * The largest workspace (floats) one group of images may use for its columns or its per-image
 * weight gradients (32 MiB); bigger batches are processed in groups of images. The group size
 * depends only on the shapes, so results do not depend on anything else.
 */
const WORKSPACE_FLOATS = 1 << 23;

/**
 * With autograd, the forward keeps the columns of the whole batch for the weight gradient (which
 * then skips its own im2col: half of a training step's im2col work) when they hold at most this
 * many floats (256 MiB); larger convs rebuild them group by group in the backward. Either way the
 * values and the order of every sum are the same.
 */
const KEEP_COLS_FLOATS = 1 << 26;

interface Geometry {
  n: number; cin: number; h: number; w: number;
  cout: number; kh: number; kw: number;
  sh: number; sw: number; ph: number; pw: number;
  oh: number; ow: number;
  k: number; // Cin·kh·kw: the GEMM's inner dimension
  l: number; // OH·OW: output pixels per image
  group: number; // images per im2col workspace
  // 1×1 kernel, stride 1, no padding: cols[n] is x[n] itself, so im2col/col2im are skipped.
  pointwise: boolean;
  /** x's device: the output, the gradients and every workspace are allocated there. */
  device: string;
  /** The GEMM precision active at the forward (autocast), used by the backward's GEMMs too. */
  precision: MatmulPrecision;
}

function pair(arg: string, v: unknown, min: number): [number, number] {
  const ok = (s: unknown): s is number => typeof s === 'number' && Number.isInteger(s) && s >= min && s <= 2 ** 31;
  if (ok(v)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
  throw argError('conv2d', arg, `an integer >= ${min} or a pair [h, w] of them`, describe(v));
}

function geometry(x: Tensor, weight: Tensor, options: Conv2dOptions): Geometry {
  if (options === null || typeof options !== 'object') throw argError('conv2d', 'options', 'an object', describe(options));
  const [n, cin, h, w] = x.shape;
  const [cout, wcin, kh, kw] = weight.shape;
  if (wcin !== cin) {
    throw argError('conv2d', 'weight', `shape [Cout, ${cin}, kh, kw] (x has ${cin} channels: ${formatShape(x.shape)})`,
      `shape ${formatShape(weight.shape)}`);
  }
  if (cin === 0 || h === 0 || w === 0) {
    throw argError('conv2d', 'x', 'at least one channel and a non-empty image', `shape ${formatShape(x.shape)}`);
  }
  if (kh === 0 || kw === 0) throw argError('conv2d', 'weight', 'a non-empty kernel', `shape ${formatShape(weight.shape)}`);
  const [sh, sw] = pair('options.stride', options.stride ?? 1, 1);
  const [ph, pw] = pair('options.padding', options.padding ?? 0, 0);
  if (kh > h + 2 * ph || kw > w + 2 * pw) {
    throw argError('conv2d', 'weight', `a kernel no larger than the padded input ${h + 2 * ph}×${w + 2 * pw}`,
      `kernel ${kh}×${kw}`);
  }
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1, ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const k = cin * kh * kw, l = oh * ow;
  const group = Math.max(1, Math.min(n, Math.floor(WORKSPACE_FLOATS / Math.max(k * l, cout * k, 1))));
  const pointwise = kh === 1 && kw === 1 && sh === 1 && sw === 1 && ph === 0 && pw === 0;
  return { n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, oh, ow, k, l, group, pointwise, device: x.device,
    precision: matmulPrecision() };
}

function im2col(g: Geometry, x: Tensor, n0: number, count: number, cols: Tensor, at = 0): void {
  runKernel('im2col', {
    x: x.buffer, xOffset: x.offset + n0 * g.cin * g.h * g.w, cols: cols.buffer, colsOffset: cols.offset + at,
    batch: count, channels: g.cin, height: g.h, width: g.w, kernelH: g.kh, kernelW: g.kw, strideH: g.sh,
    strideW: g.sw, padH: g.ph, padW: g.pw
  });
}

/**
 * y (N, Cout, OH, OW) for dense x and weight; bias may be any layout. With keepCols the columns
 * of every image are written into one (N, K, L) tensor that is returned for the backward.
 */
function conv2dForward(g: Geometry, x: Tensor, weight: Tensor, bias: Tensor | null, keepCols: boolean): { out: Tensor; cols: Tensor | null } {
  const out = Tensor.empty([g.n, g.cout, g.oh, g.ow], 'float32', g.device);
  if (out.size === 0) return { out, cols: null };
  // Bias first, broadcast over (N, ·, OH·OW); the GEMM then accumulates onto it (beta = 1).
  if (bias) {
    runKernel('copyStrided', {
      src: bias.buffer, srcOffset: bias.offset, srcStrides: [0, bias.strides[0], 0], dst: out.buffer, dstOffset: 0,
      dstStrides: [g.cout * g.l, g.l, 1], shape: [g.n, g.cout, g.l]
    });
  }
  const cols = g.pointwise ? null : Tensor.empty([keepCols ? g.n : g.group, g.k, g.l], 'float32', g.device);
  for (let n0 = 0; n0 < g.n; n0 += g.group) {
    const count = Math.min(g.group, g.n - n0);
    const at = keepCols ? n0 * g.k * g.l : 0; // this group's columns inside `cols`
    if (cols) im2col(g, x, n0, count, cols, at);
    const B = cols ?? x, bOffset = cols ? cols.offset + at : x.offset + n0 * g.k * g.l;
    // out[n] (Cout × L) = W (Cout × K) · cols[n] (K × L); W is shared by every image (stride 0).
    runKernel('gemm', {
      a: weight.buffer, aOffset: weight.offset, b: B.buffer, bOffset, c: out.buffer, cOffset: n0 * g.cout * g.l,
      batch: count, m: g.cout, n: g.l, k: g.k, transA: false, transB: false, alpha: 1, beta: bias ? 1 : 0,
      strideA: 0, strideB: g.k * g.l, strideC: g.cout * g.l, lda: g.k, ldb: g.l, ldc: g.l,
      precision: g.precision
    });
  }
  if (keepCols) return { out, cols };
  cols?.dispose();
  return { out, cols: null };
}

/** d(loss)/d(bias) (Cout) from dense dy (N, Cout, OH, OW): sum over images and pixels. */
function biasGrad(g: Geometry, dy: Tensor): Tensor {
  const perImage = Tensor.empty([g.n, g.cout], 'float32', g.device);
  runKernel('reduceSum', {
    x: dy.buffer, xOffset: dy.offset, out: perImage.buffer, outOffset: 0, outer: g.n * g.cout, r: g.l, inner: 1
  });
  const db = Tensor.empty([g.cout], 'float32', g.device);
  runKernel('reduceSum', {
    x: perImage.buffer, xOffset: 0, out: db.buffer, outOffset: 0, outer: 1, r: g.n, inner: g.cout
  });
  perImage.dispose();
  return db;
}

/**
 * d(loss)/d(weight) (Cout, Cin, kh, kw) = Σ_n dy[n] (Cout × L) · cols[n]ᵀ (L × K). Each group's
 * per-image products land in a workspace and are summed in image order (reduceSum), groups
 * accumulate in order: deterministic without a GEMM whose output is shared across the batch.
 * `kept`: the forward's columns of every image (N, K, L), else they are rebuilt per group from x.
 */
function weightGrad(g: Geometry, x: Tensor, dy: Tensor, kept: Tensor | null): Tensor {
  const dw = Tensor.empty([g.cout, g.cin, g.kh, g.kw], 'float32', g.device);
  if (g.n === 0) {
    runKernel('fill', { out: dw.buffer, offset: 0, n: dw.size, value: 0 });
    return dw;
  }
  const cols = g.pointwise || kept ? null : Tensor.empty([g.group, g.k, g.l], 'float32', g.device);
  const perImage = Tensor.empty([g.group, g.cout, g.k], 'float32', g.device);
  const groupSum = g.n > g.group ? Tensor.empty([g.cout, g.k], 'float32', g.device) : null;
  for (let n0 = 0; n0 < g.n; n0 += g.group) {
    const count = Math.min(g.group, g.n - n0);
    if (cols) im2col(g, x, n0, count, cols);
    const B = kept ?? cols ?? x;
    const bOffset = kept ? kept.offset + n0 * g.k * g.l : cols ? cols.offset : x.offset + n0 * g.k * g.l;
    // perImage[n] (Cout × K) = dy[n] (Cout × L) · cols[n]ᵀ, cols[n] stored K × L (transB)
    runKernel('gemm', {
      a: dy.buffer, aOffset: dy.offset + n0 * g.cout * g.l, b: B.buffer, bOffset, c: perImage.buffer, cOffset: 0,
      batch: count, m: g.cout, n: g.k, k: g.l, transA: false, transB: true, alpha: 1, beta: 0, strideA: g.cout * g.l,
      strideB: g.k * g.l, strideC: g.cout * g.k, lda: g.l, ldb: g.l, ldc: g.k, precision: g.precision
    });
    if (n0 === 0) {
      runKernel('reduceSum', {
        x: perImage.buffer, xOffset: 0, out: dw.buffer, outOffset: 0, outer: 1, r: count, inner: g.cout * g.k
      });
    } else {
      runKernel('reduceSum', {
        x: perImage.buffer, xOffset: 0, out: groupSum!.buffer, outOffset: 0, outer: 1, r: count, inner: g.cout * g.k
      });
      runKernel('axpby', {
        dst: dw.buffer, dstOffset: 0, src: groupSum!.buffer, srcOffset: 0, n: dw.size, alpha: 1, beta: 1
      });
    }
  }
  cols?.dispose();
  perImage.dispose();
  groupSum?.dispose();
  return dw;
}

/** d(loss)/d(x) (N, Cin, H, W): dcols[n] (K × L) = Wᵀ (K × Cout) · dy[n], folded back by col2im. */
function inputGrad(g: Geometry, weight: Tensor, dy: Tensor): Tensor {
  const dx = Tensor.empty([g.n, g.cin, g.h, g.w], 'float32', g.device);
  const dcols = g.pointwise ? null : Tensor.empty([g.group, g.k, g.l], 'float32', g.device);
  for (let n0 = 0; n0 < g.n; n0 += g.group) {
    const count = Math.min(g.group, g.n - n0);
    // Pointwise: dcols[n] is dx[n], so the GEMM writes the gradient in place.
    const C = dcols ?? dx, cOffset = dcols ? dcols.offset : n0 * g.k * g.l;
    // W stored Cout × K is op(A) = Wᵀ with transA; shared by every image (stride 0).
    runKernel('gemm', {
      a: weight.buffer, aOffset: weight.offset, b: dy.buffer, bOffset: dy.offset + n0 * g.cout * g.l, c: C.buffer,
      cOffset, batch: count, m: g.k, n: g.l, k: g.cout, transA: true, transB: false, alpha: 1, beta: 0, strideA: 0,
      strideB: g.cout * g.l, strideC: g.k * g.l, lda: g.k, ldb: g.l, ldc: g.l, precision: g.precision
    });
    if (dcols) {
      runKernel('col2im', {
        cols: dcols.buffer, colsOffset: dcols.offset, x: dx.buffer, xOffset: n0 * g.cin * g.h * g.w, batch: count,
        channels: g.cin, height: g.h, width: g.w, kernelH: g.kh, kernelW: g.kw, strideH: g.sh, strideW: g.sw,
        padH: g.ph, padW: g.pw
      });
    }
  }
  dcols?.dispose();
  return dx;
}

/**
 * 2-D convolution (cross-correlation, as PyTorch) of x (N, Cin, H, W) with weight
 * (Cout, Cin, kh, kw) and optional bias (Cout): y (N, Cout, OH, OW) with
 * OH = ⌊(H + 2·padH - kh) / strideH⌋ + 1 (likewise OW). Gradients flow to x, weight and bias.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  checkTensor('conv2d', 'x', x);
  checkTensor('conv2d', 'weight', weight);
  checkRank('conv2d', 'x', x, 4);
  checkRank('conv2d', 'weight', weight, 4);
  if (bias !== null) {
    checkTensor('conv2d', 'bias', bias);
    if (bias.rank !== 1 || bias.shape[0] !== weight.shape[0]) {
      throw argError('conv2d', 'bias', `shape [${weight.shape[0]}] (one per output channel)`, `shape ${formatShape(bias.shape)}`);
    }
  }
  const g = geometry(x, weight, options);
  const X = dense(x), W = dense(weight);
  const keepCols = needsGrad(weight) && !g.pointwise && g.n * g.k * g.l <= KEEP_COLS_FLOATS;
  const { out, cols } = conv2dForward(g, X, W, bias, keepCols);
  release(X, x);
  release(W, weight);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv2d', out, inputs, (dy) => {
    const G = dense(dy);
    const grads: (Tensor | null)[] = [null, null, null];
    if (x.requiresGrad) {
      const Wb = dense(weight);
      grads[0] = inputGrad(g, Wb, G);
      release(Wb, weight);
    }
    if (weight.requiresGrad) {
      // The kept columns live as long as the forward's scope (a backward run after that scope
      // ended, or a second one with retainGraph, rebuilds them).
      const kept = cols && !cols.isDisposed ? cols : null;
      const Xb = kept ? null : dense(x);
      grads[1] = weightGrad(g, Xb ?? x, G, kept);
      release(Xb, x);
    }
    if (bias?.requiresGrad) grads[2] = biasGrad(g, G);
    release(G, dy);
    return bias ? grads : grads.slice(0, 2);
  });
}
