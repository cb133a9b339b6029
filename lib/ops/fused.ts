/**
 * Fused ops of the transformer block, each one native pass (and one for its backward) in place of
 * a chain of elementwise ops with a temporary each:
 *
 *   const h = layerNormModulate(x, shift, scale);   // LayerNorm(x) * (1 + scale) + shift   (adaLN)
 *   x = addGated(x, gate, attn.forward(h));         // x + gate * y                          (adaLN-Zero residual)
 *
 * (The MLP's bias + GELU is fused into its GEMM: `linearGelu` in ./matmul.ts.)
 * x, y: (B, N, D). shift, scale, gate: (B, 1, D) or (B, D), broadcast over the N tokens; they are
 * read in place when their D values are adjacent in memory (the column slices `chunk` makes of
 * adaLN's (B, 6D) output are), and otherwise copied (B x D floats, small next to x).
 * Each matches the composition of the unfused ops to float32 rounding (tested against both).
 */
import { runKernel } from '../backend/dispatch.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkTensor, dense, describe, release } from './util.js';

/** x: a live float32 (B, N, D) tensor. */
function checkTokens(op: string, arg: string, x: Tensor): [number, number, number] {
  checkTensor(op, arg, x);
  if (x.rank !== 3) throw argError(op, arg, 'rank 3 (batch, tokens, features)', `shape ${formatShape(x.shape)}`);
  return [x.shape[0], x.shape[1], x.shape[2]];
}

/** A per-batch-item vector argument: a live float32 (B, 1, D) or (B, D) tensor. */
function checkPerItem(op: string, arg: string, t: Tensor, x: Tensor): void {
  checkTensor(op, arg, t);
  const [B, , D] = x.shape;
  const ok = (t.rank === 2 && t.shape[0] === B && t.shape[1] === D) ||
    (t.rank === 3 && t.shape[0] === B && t.shape[1] === 1 && t.shape[2] === D);
  if (!ok) throw argError(op, arg, `shape [${B}, 1, ${D}] or [${B}, ${D}] (x is ${formatShape(x.shape)})`, `shape ${formatShape(t.shape)}`);
}

/** A (B, [1,] D) tensor as B rows of D adjacent floats `stride` apart: in place, or a contiguous copy. */
interface PerItemRows {
  t: Tensor;
  stride: number;
}
function perItemRows(t: Tensor): PerItemRows {
  const d = t.rank - 1, B = t.shape[0], D = t.shape[d];
  const batchStride = B === 1 ? 0 : t.strides[0];
  if ((t.strides[d] === 1 || D === 1) && batchStride >= 0) return { t, stride: batchStride };
  return { t: dense(t), stride: D };
}

function checkEps(op: string, eps: number): number {
  // eps is added to a float32 variance, so it must stay positive and finite once rounded to float32.
  if (typeof eps !== 'number' || !(eps > 0) || !(Math.fround(eps) > 0) || !Number.isFinite(Math.fround(eps))) {
    throw argError(op, 'eps', 'a finite number > 0 (representable in float32)', describe(eps));
  }
  return eps;
}

/**
 * adaLN's modulated LayerNorm in one pass: LayerNorm(x) (over D, no affine, biased variance) *
 * (1 + scale) + shift, i.e. `add(mul(layerNorm(x, null, null, eps), addScalar(scale, 1)), shift)`.
 * The backward is one pass too: dx, and dshift / dscale summed over the tokens (in an order that does
 * not depend on the thread count).
 *
 *   const [shift, scale] = chunk(ada.forward(silu(c)), 2, -1);   // (B, D) column slices, read in place
 *   const h = layerNormModulate(x, shift, scale, 1e-6);          // x: (B, N, D)
 */
export function layerNormModulate(x: Tensor, shift: Tensor, scale: Tensor, eps = 1e-6): Tensor {
  const op = 'layerNormModulate';
  const [B, N, D] = checkTokens(op, 'x', x);
  checkPerItem(op, 'shift', shift, x);
  checkPerItem(op, 'scale', scale, x);
  checkEps(op, eps);
  const X = dense(x), Sh = perItemRows(shift), Sc = perItemRows(scale);
  const out = Tensor.empty(x.shape, 'float32', x.device);
  // Per-row statistics for the backward, (2, B*N): mean in row 0, 1/sqrt(var + eps) in row 1.
  const rows = B * N;
  const stats = needsGrad(x, shift, scale) ? Tensor.empty([2, rows], 'float32', x.device) : null;
  runKernel('layerNormModulate', {
    x: X.buffer, xOffset: X.offset, shift: Sh.t.buffer, shiftOffset: Sh.t.offset, shiftStride: Sh.stride,
    scale: Sc.t.buffer, scaleOffset: Sc.t.offset, scaleStride: Sc.stride, y: out.buffer, yOffset: 0,
    mean: stats?.buffer ?? null, meanOffset: 0, rstd: stats?.buffer ?? null, rstdOffset: rows, batch: B, tokens: N,
    cols: D, eps
  });
  release(X, x);
  release(Sh.t, shift);
  release(Sc.t, scale);
  if (!stats) return out;
  return record(op, out, [x, shift, scale], (dy) => {
    const G = dense(dy), Xb = dense(x), Sb = perItemRows(scale);
    const dx = x.requiresGrad ? Tensor.empty(x.shape, 'float32', x.device) : null;
    const dshift = shift.requiresGrad ? Tensor.empty(shift.shape, 'float32', x.device) : null;
    const dscale = scale.requiresGrad ? Tensor.empty(scale.shape, 'float32', x.device) : null;
    runKernel('layerNormModulateBackward', {
      x: Xb.buffer, xOffset: Xb.offset, scale: Sb.t.buffer, scaleOffset: Sb.t.offset, scaleStride: Sb.stride,
      mean: stats.buffer, meanOffset: 0, rstd: stats.buffer, rstdOffset: rows, dy: G.buffer, dyOffset: G.offset,
      dx: dx?.buffer ?? null, dxOffset: 0, dshift: dshift?.buffer ?? null, dshiftOffset: 0,
      dscale: dscale?.buffer ?? null, dscaleOffset: 0, batch: B, tokens: N, cols: D
    });
    release(G, dy);
    release(Xb, x);
    release(Sb.t, scale);
    return [dx, dshift, dscale];
  });
}

/**
 * The gated residual of adaLN-Zero blocks in one pass: x + gate * y, gate broadcast over the tokens
 * (`add(x, mul(gate, y))`). Backward: dx = dout, dy = gate * dout, dgate = sum over tokens of y * dout
 * (dy and dgate from one read of dout).
 *
 *   x = addGated(x, gate, mlp.forward(h));   // x, y: (B, N, D), gate: (B, 1, D) or (B, D)
 */
export function addGated(x: Tensor, gate: Tensor, y: Tensor): Tensor {
  const op = 'addGated';
  const [B, N, D] = checkTokens(op, 'x', x);
  checkPerItem(op, 'gate', gate, x);
  checkTensor(op, 'y', y);
  if (y.rank !== 3 || y.shape.some((s, i) => s !== x.shape[i])) {
    throw argError(op, 'y', `shape ${formatShape(x.shape)} (the shape of x)`, `shape ${formatShape(y.shape)}`);
  }
  const X = dense(x), Y = dense(y), Gt = perItemRows(gate);
  const out = Tensor.empty(x.shape, 'float32', x.device);
  runKernel('addGated', {
    x: X.buffer, xOffset: X.offset, gate: Gt.t.buffer, gateOffset: Gt.t.offset, gateStride: Gt.stride, y: Y.buffer,
    yOffset: Y.offset, out: out.buffer, outOffset: 0, batch: B, tokens: N, cols: D
  });
  release(X, x);
  release(Y, y);
  release(Gt.t, gate);
  return record(op, out, [x, gate, y], (dout) => {
    const dgate = gate.requiresGrad ? Tensor.empty(gate.shape, 'float32', x.device) : null;
    const dy = y.requiresGrad ? Tensor.empty(y.shape, 'float32', x.device) : null;
    if (dgate || dy) {
      const G = dense(dout), Yb = dense(y), Gb = perItemRows(gate);
      runKernel('addGatedBackward', {
        gate: Gb.t.buffer, gateOffset: Gb.t.offset, gateStride: Gb.stride, y: Yb.buffer, yOffset: Yb.offset,
        dout: G.buffer, doutOffset: G.offset, dy: dy?.buffer ?? null, dyOffset: 0, dgate: dgate?.buffer ?? null,
        dgateOffset: 0, batch: B, tokens: N, cols: D
      });
      release(G, dout);
      release(Yb, y);
      release(Gb.t, gate);
    }
    // d/dx is dout itself (autograd gives the input its own view of it).
    return [x.requiresGrad ? dout : null, dgate, dy];
  });
}
