/**
 * Matrix products on the native GEMM: `matmul` (batched, broadcasting batch dims, transposed
 * views read without copies), `linear` (x Wᵀ + b, the PyTorch nn.Linear layout) and `linearGelu`
 * (gelu_tanh(x Wᵀ + b), the transformer MLP's first half, fused into the GEMM).
 */
import type { EpilogueAct } from '../backend/kernels/fused.js';
import { runKernel } from '../backend/dispatch.js';
import { type MatmulPrecision, matmulPrecision } from '../tensor/autocast.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { copyInto, formatShape, shapeSize, Tensor } from '../tensor/tensor.js';
import { sumToShape } from './sum_to_shape.js';
import { argError, broadcastShapes, checkRank, checkTensor, dense, release } from './util.js';

interface Operand {
  t: Tensor; // the tensor whose memory is read (x itself or a contiguous copy)
  owned: boolean; // dispose after the call
  trans: boolean;
  ld: number;
  batchStride: number;
}

/** One stride that walks the batch dims in order, or null when they do not nest. */
function collapseBatch(shape: readonly number[], strides: readonly number[]): number | null {
  let stride: number | null = null, span = 0;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    if (stride === null) {
      stride = strides[d];
      span = strides[d] * shape[d];
    } else if (strides[d] === span && stride !== 0) {
      span = strides[d] * shape[d];
    } else if (!(strides[d] === 0 && stride === 0)) {
      return null;
    }
  }
  return stride ?? 0;
}

/**
 * Describes x (viewed as batch x rows x cols after broadcasting) for the GEMM, copying only if needed.
 * Not dense(): a row- or column-major view is read in place (trans) and broadcast batch dims with
 * stride 0; the copy, when one is needed, is broadcast to the full batch shape.
 */
function operand(x: Tensor, batchShape: readonly number[]): Operand {
  const rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1];
  const lead = batchShape.length - (x.rank - 2);
  const bStrides = batchShape.map((_s, i) => (i < lead || x.shape[i - lead] === 1 ? 0 : x.strides[i - lead]));
  const batchStride = collapseBatch(batchShape, bStrides);
  const rs = x.strides[x.rank - 2], cs = x.strides[x.rank - 1];
  if (batchStride !== null) {
    if (cs === 1 || cols === 1) return { t: x, owned: false, trans: false, ld: rows === 1 ? Math.max(cols, 1) : Math.max(rs, cols), batchStride };
    if (rs === 1 || rows === 1) return { t: x, owned: false, trans: true, ld: cols === 1 ? Math.max(rows, 1) : Math.max(cs, rows), batchStride };
  }
  const full = Tensor.empty([...batchShape, rows, cols], 'float32', x.device);
  const lead2 = full.rank - x.rank;
  const view = x.view(full.shape, full.shape.map((s, i) => (i < lead2 || (x.shape[i - lead2] === 1 && s !== 1) ? 0 : x.strides[i - lead2])), x.offset);
  copyInto(view, full);
  view.dispose();
  return { t: full, owned: true, trans: false, ld: cols, batchStride: rows * cols };
}

/** out = op(a) @ op(b) on raw tensors (no autograd), a: (..., m, k), b: (..., k, n), on a's device. */
function matmulKernel(a: Tensor, b: Tensor, precision: MatmulPrecision): Tensor {
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1];
  const out = Tensor.empty([...batchShape, m, n], 'float32', a.device);
  const batch = batchShape.reduce((p, s) => p * s, 1);
  const A = operand(a, batchShape), B = operand(b, batchShape);
  if (k === 0) {
    runKernel('fill', { out: out.buffer, offset: 0, n: out.size, value: 0 });
  } else {
    runKernel('gemm', {
      a: A.t.buffer, aOffset: A.t.offset, b: B.t.buffer, bOffset: B.t.offset, c: out.buffer, cOffset: 0, batch, m, n,
      k, transA: A.trans, transB: B.trans, alpha: 1, beta: 0, strideA: A.batchStride, strideB: B.batchStride,
      strideC: m * n, lda: A.ld, ldb: B.ld, ldc: n, precision
    });
  }
  if (A.owned) A.t.dispose();
  if (B.owned) B.t.dispose();
  return out;
}

function transposeLast(t: Tensor): Tensor {
  const shape = [...t.shape], strides = [...t.strides];
  [shape[t.rank - 2], shape[t.rank - 1]] = [shape[t.rank - 1], shape[t.rank - 2]];
  [strides[t.rank - 2], strides[t.rank - 1]] = [strides[t.rank - 1], strides[t.rank - 2]];
  return t.view(shape, strides, t.offset);
}

/**
 * a @ b for a: (..., m, k), b: (..., k, n); batch dims broadcast. Transposed views are read in place.
 *
 *   matmul(x, w.transpose(0, 1))   // x wᵀ without copying w
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor('matmul', 'a', a);
  checkTensor('matmul', 'b', b);
  if (a.rank < 2) throw argError('matmul', 'a', 'rank >= 2', `shape ${formatShape(a.shape)}`);
  if (b.rank < 2) throw argError('matmul', 'b', 'rank >= 2', `shape ${formatShape(b.shape)}`);
  const k = a.shape[a.rank - 1];
  if (b.shape[b.rank - 2] !== k) {
    throw argError('matmul', 'b', `${k} rows to match a's ${k} columns (a is ${formatShape(a.shape)})`, `shape ${formatShape(b.shape)}`);
  }
  // The precision active now (autocast) also runs the backward's GEMMs, wherever backward() is called.
  const precision = matmulPrecision();
  const out = matmulKernel(a, b, precision);
  return record('matmul', out, [a, b], (dy) => {
    const grads: (Tensor | null)[] = [null, null];
    if (a.requiresGrad) {
      const bt = transposeLast(b);
      const full = matmulKernel(dy, bt, precision);
      bt.dispose();
      grads[0] = sumToShape(full, a.shape);
      full.dispose();
    }
    if (b.requiresGrad) {
      const at = transposeLast(a);
      const full = matmulKernel(at, dy, precision);
      at.dispose();
      grads[1] = sumToShape(full, b.shape);
      full.dispose();
    }
    return grads;
  });
}

/** Validates the arguments of a Linear-shaped op (`linear`, `linearGelu`): x (..., in), weight (out, in), bias (out) or null. */
function checkLinear(op: string, x: Tensor, weight: Tensor, bias: Tensor | null): void {
  checkTensor(op, 'x', x);
  checkTensor(op, 'weight', weight);
  checkRank(op, 'weight', weight, 2);
  const [outF, inF] = weight.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw argError(op, 'x', `last dim ${inF} (weight is ${formatShape(weight.shape)})`, `shape ${formatShape(x.shape)}`);
  }
  if (bias !== null) {
    checkTensor(op, 'bias', bias);
    if (bias.rank !== 1 || bias.shape[0] !== outF) throw argError(op, 'bias', `shape [${outF}]`, formatShape(bias.shape));
  }
}

/**
 * act(x Wᵀ + b) on raw tensors (no autograd): the bias and the activation are the GEMM's epilogue,
 * applied to each output tile while it is in cache. `pre` (x's rows x out, contiguous), when given,
 * receives x Wᵀ + b before the activation. Arguments as checked by checkLinear.
 */
function linearKernel(x: Tensor, weight: Tensor, bias: Tensor | null, act: EpilogueAct, precision: MatmulPrecision,
  pre: Tensor | null = null): Tensor {
  const [outF, inF] = weight.shape;
  const rows = shapeSize(x.shape.slice(0, -1));
  const out = Tensor.empty([...x.shape.slice(0, -1), outF], 'float32', x.device);
  const X = dense(x), W = operand(weight, []), B = bias && dense(bias);
  // W (out x in) stored row-major is read as is; a transposed view (W.trans) as its (in x out) storage.
  runKernel('linearAct', {
    x: X.buffer, xOffset: X.offset, weight: W.t.buffer, weightOffset: W.t.offset, weightTransposed: W.trans,
    ldw: W.ld, bias: B?.buffer ?? null, biasOffset: B?.offset ?? 0, out: out.buffer, outOffset: 0,
    pre: pre?.buffer ?? null, preOffset: pre?.offset ?? 0, rows, outFeatures: outF, inFeatures: inF, act, precision
  });
  release(X, x);
  if (W.owned) W.t.dispose();
  release(B, bias);
  return out;
}

/**
 * The input and weight gradients of y = x Wᵀ (+ b) from dy as contiguous (rows, out) rows `g`:
 * [dx, dW] (on x's device), each null when that input does not require grad. `precision`: the forward's.
 */
function linearGrads(x: Tensor, weight: Tensor, g: Tensor, precision: MatmulPrecision): [Tensor | null, Tensor | null] {
  const [outF, inF] = weight.shape;
  const rows = shapeSize(x.shape.slice(0, -1));
  let dx: Tensor | null = null, dw: Tensor | null = null;
  if (x.requiresGrad) {
    // dx (rows x in) = dy (rows x out) · W (out x in)
    dx = Tensor.empty(x.shape, 'float32', x.device);
    const Wb = operand(weight, []);
    runKernel('gemm', {
      a: g.buffer, aOffset: g.offset, b: Wb.t.buffer, bOffset: Wb.t.offset, c: dx.buffer, cOffset: 0, batch: 1,
      m: rows, n: inF, k: outF, transA: false, transB: Wb.trans, alpha: 1, beta: 0, strideA: 0, strideB: 0,
      strideC: 0, lda: outF, ldb: Wb.ld, ldc: inF, precision
    });
    if (Wb.owned) Wb.t.dispose();
  }
  if (weight.requiresGrad) {
    // dW (out x in) = dyᵀ (out x rows) · x (rows x in)
    dw = Tensor.empty(weight.shape, 'float32', x.device);
    const Xb = dense(x);
    runKernel('gemm', {
      a: g.buffer, aOffset: g.offset, b: Xb.buffer, bOffset: Xb.offset, c: dw.buffer, cOffset: 0, batch: 1,
      m: outF, n: inF, k: rows, transA: true, transB: false, alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 0,
      lda: outF, ldb: inF, ldc: inF, precision
    });
    release(Xb, x);
  }
  return [dx, dw];
}

/**
 * y = x Wᵀ + b with x: (..., in), weight: (out, in), bias: (out) — PyTorch's nn.Linear layout.
 * The bias is added by the GEMM's epilogue (no separate pass over y).
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  checkLinear('linear', x, weight, bias);
  const outF = weight.shape[0];
  // The precision active now (autocast) also runs the backward's GEMMs, wherever backward() is called.
  const precision = matmulPrecision();
  const out = linearKernel(x, weight, bias, 'none', precision);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('linear', out, inputs, (dy) => {
    const G = dense(dy);
    const [dx, dw] = linearGrads(x, weight, G, precision);
    let db: Tensor | null = null;
    if (bias?.requiresGrad) {
      db = Tensor.empty([outF], 'float32', x.device);
      runKernel('reduceSum', {
        x: G.buffer, xOffset: G.offset, out: db.buffer, outOffset: 0, outer: 1,
        r: shapeSize(x.shape.slice(0, -1)), inner: outF
      });
    }
    release(G, dy);
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

/**
 * The transformer MLP's first half in one GEMM: gelu_tanh(x Wᵀ + b) (`gelu(linear(x, weight, bias))`),
 * with the bias and the GELU applied by the GEMM's epilogue to each output tile while it is in cache.
 * With autograd the pre-activation x Wᵀ + b is written by the same epilogue and kept for the backward,
 * which computes dh = dout * gelu'(h) and the bias gradient in one pass, then the usual two GEMMs.
 *
 *   const a = linearGelu(x, fc1.weight, fc1.bias);   // x: (..., in), weight: (out, in), bias: (out)
 */
export function linearGelu(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const op = 'linearGelu';
  checkLinear(op, x, weight, bias);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const outShape = [...x.shape.slice(0, -1), weight.shape[0]];
  const pre = needsGrad(...inputs) ? Tensor.empty(outShape, 'float32', x.device) : null;
  // The precision active now (autocast) also runs the backward's GEMMs, wherever backward() is called.
  const precision = matmulPrecision();
  const out = linearKernel(x, weight, bias, 'gelu_tanh', precision, pre);
  if (!pre) return out;
  return record(op, out, inputs, (dout) => {
    const outF = weight.shape[0], rows = shapeSize(x.shape.slice(0, -1));
    const G = dense(dout);
    const dh = Tensor.empty(outShape, 'float32', x.device);
    const db = bias?.requiresGrad ? Tensor.empty([outF], 'float32', x.device) : null;
    runKernel('geluBackwardBias', {
      h: pre.buffer, hOffset: pre.offset, dout: G.buffer, doutOffset: G.offset, dh: dh.buffer, dhOffset: 0,
      dbias: db?.buffer ?? null, dbiasOffset: 0, rows, cols: outF
    });
    release(G, dout);
    const [dx, dw] = linearGrads(x, weight, dh, precision);
    dh.dispose();
    return bias ? [dx, dw, db] : [dx, dw];
  });
}
