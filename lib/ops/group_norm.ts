/**
 * GroupNorm — PyTorch's F.group_norm — and its fused form with a per-image scale/shift and SiLU,
 * the U-Net's normalisation, on the native groupNorm kernel (one pass, one for the backward).
 *
 *   const h = groupNorm(x, 8, norm.weight, norm.bias);              // x: (N, C, H, W), weight/bias: (C)
 *   const a = groupNormAct(x, 8, { scale, shift, silu: true });     // SiLU(GN(x) · scale + shift), scale/shift: (N, C)
 *
 * x is (N, C, ...) with C a multiple of `groups`; the statistics are over each group's channels
 * and every position (biased variance). Matches the composition of the unfused ops to float32
 * rounding (tested against both and against float64).
 */
import { runKernel } from '../backend/dispatch.js';
import { needsGrad, record } from '../tensor/autograd.js';
import { formatShape, shapeSize, Tensor } from '../tensor/tensor.js';
import { argError, checkTensor, dense, describe, release } from './util.js';

export interface GroupNormActOptions {
  /** Per-channel factor on the normalised x: (C), one for every image, or (N, C); default 1. */
  scale?: Tensor | null;
  /** Per-channel offset added after the scale: (C) or (N, C); default 0. */
  shift?: Tensor | null;
  /** Apply SiLU (x · sigmoid(x)) to the result; default false. */
  silu?: boolean;
  /** Added to the variance; default 1e-5 (PyTorch's). */
  eps?: number;
}

interface Geometry {
  batch: number;
  channels: number;
  groups: number;
  spatial: number;
}

function geometry(op: string, x: Tensor, groups: unknown): Geometry {
  checkTensor(op, 'x', x);
  if (x.rank < 2) throw argError(op, 'x', 'rank >= 2 (N, C, ...)', `shape ${formatShape(x.shape)}`);
  const [batch, channels] = x.shape;
  if (typeof groups !== 'number' || !Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
    throw argError(op, 'groups', `a positive integer dividing the ${channels} channels of x ${formatShape(x.shape)}`, describe(groups));
  }
  return { batch, channels, groups, spatial: shapeSize(x.shape.slice(2)) };
}

/** A (C) or (N, C) scale/shift as rows of C adjacent floats `stride` apart (0: one row for every image). */
interface ChannelRows {
  t: Tensor;
  stride: number;
}
function checkChannelRows(op: string, arg: string, t: Tensor | null | undefined, g: Geometry, x: Tensor): Tensor | null {
  if (t === null || t === undefined) return null;
  checkTensor(op, arg, t);
  const ok = (t.rank === 1 && t.shape[0] === g.channels) ||
    (t.rank === 2 && t.shape[0] === g.batch && t.shape[1] === g.channels);
  if (!ok) {
    throw argError(op, arg, `shape [${g.channels}] or [${g.batch}, ${g.channels}] (x is ${formatShape(x.shape)}) or null`, `shape ${formatShape(t.shape)}`);
  }
  if (t.device !== x.device) throw argError(op, arg, `a tensor on x's device '${x.device}'`, `one on '${t.device}'`);
  return t;
}
function channelRows(t: Tensor): ChannelRows {
  const C = t.shape[t.rank - 1];
  const channelStride = t.strides[t.rank - 1];
  if (t.rank === 1) return channelStride === 1 || C === 1 ? { t, stride: 0 } : { t: dense(t), stride: 0 };
  const rowStride = t.shape[0] === 1 ? 0 : t.strides[0];
  if ((channelStride === 1 || C === 1) && rowStride >= 0) return { t, stride: rowStride };
  return { t: dense(t), stride: C };
}

function checkEps(op: string, eps: unknown): number {
  // eps is added to a float32 variance, so it must stay positive and finite once rounded to float32.
  if (typeof eps !== 'number' || !(eps > 0) || !(Math.fround(eps) > 0) || !Number.isFinite(Math.fround(eps))) {
    throw argError(op, 'eps', 'a finite number > 0 (representable in float32)', describe(eps));
  }
  return eps;
}

/** Sums a (N, C) per-image gradient over the images into (C) (the gradient of a broadcast weight). */
function sumOverImages(d: Tensor, g: Geometry): Tensor {
  const out = Tensor.empty([g.channels], 'float32', d.device);
  runKernel('reduceSum', { x: d.buffer, xOffset: d.offset, out: out.buffer, outOffset: 0, outer: 1, r: g.batch, inner: g.channels });
  d.dispose();
  return out;
}

function groupNormCore(op: string, x: Tensor, g: Geometry, scale: Tensor | null, shift: Tensor | null, eps: number, silu: boolean): Tensor {
  const X = dense(x), Sc = scale && channelRows(scale), Sh = shift && channelRows(shift);
  const out = Tensor.empty(x.shape, 'float32', x.device);
  const inputs = [x, ...(scale ? [scale] : []), ...(shift ? [shift] : [])];
  // Per-group statistics for the backward, (2, N·groups): mean in row 0, 1/sqrt(var + eps) in row 1.
  const stats = g.batch * g.groups;
  const saved = needsGrad(...inputs) ? Tensor.empty([2, stats], 'float32', x.device) : null;
  const affine = () => ({
    scale: Sc?.t.buffer ?? null, scaleOffset: Sc?.t.offset ?? 0, scaleStride: Sc?.stride ?? 0,
    shift: Sh?.t.buffer ?? null, shiftOffset: Sh?.t.offset ?? 0, shiftStride: Sh?.stride ?? 0,
  });
  runKernel('groupNorm', {
    x: X.buffer, xOffset: X.offset, ...affine(), y: out.buffer, yOffset: 0, mean: saved?.buffer ?? null,
    meanOffset: 0, rstd: saved?.buffer ?? null, rstdOffset: stats, batch: g.batch, channels: g.channels,
    groups: g.groups, spatial: g.spatial, eps, silu
  });
  release(X, x);
  release(Sc?.t ?? null, scale);
  release(Sh?.t ?? null, shift);
  if (!saved) return out;
  return record(op, out, inputs, (dy) => {
    const G = dense(dy), Xb = dense(x), Sb = scale && channelRows(scale), Hb = shift && channelRows(shift);
    const dx = x.requiresGrad ? Tensor.empty(x.shape, 'float32', x.device) : null;
    const perImage = () => Tensor.empty([g.batch, g.channels], 'float32', x.device);
    const dscale = scale?.requiresGrad ? perImage() : null;
    const dshift = shift?.requiresGrad ? perImage() : null;
    runKernel('groupNormBackward', {
      x: Xb.buffer, xOffset: Xb.offset,
      scale: Sb?.t.buffer ?? null, scaleOffset: Sb?.t.offset ?? 0, scaleStride: Sb?.stride ?? 0,
      shift: Hb?.t.buffer ?? null, shiftOffset: Hb?.t.offset ?? 0, shiftStride: Hb?.stride ?? 0,
      mean: saved.buffer, meanOffset: 0, rstd: saved.buffer, rstdOffset: stats, dy: G.buffer, dyOffset: G.offset,
      dx: dx?.buffer ?? null, dxOffset: 0, dscale: dscale?.buffer ?? null, dscaleOffset: 0,
      dshift: dshift?.buffer ?? null, dshiftOffset: 0, batch: g.batch, channels: g.channels, groups: g.groups,
      spatial: g.spatial, silu
    });
    release(G, dy);
    release(Xb, x);
    release(Sb?.t ?? null, scale);
    release(Hb?.t ?? null, shift);
    // A (C) scale/shift was broadcast over the images: its gradient is the sum over them.
    const fit = (d: Tensor | null, t: Tensor | null) => (d && t && t.rank === 1 ? sumOverImages(d, g) : d);
    return [dx, ...(scale ? [fit(dscale, scale)] : []), ...(shift ? [fit(dshift, shift)] : [])];
  });
}

/**
 * GroupNorm, as torch.nn.functional.group_norm(x, groups, weight, bias, eps): x (N, C, ...) split
 * into `groups` groups of C/groups channels, each normalised over its channels and positions,
 * then y = xh · weight[c] + bias[c]. weight and bias are (C) or null.
 *
 *   groupNorm(x, 8, w, b)         // x: (N, 64, 16, 16), w, b: (64)
 *   groupNorm(x, 1)               // LayerNorm over (C, H, W) without affine
 */
export function groupNorm(x: Tensor, groups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const op = 'groupNorm';
  const g = geometry(op, x, groups);
  for (const [arg, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t !== null && t !== undefined) {
      checkTensor(op, arg, t);
      if (t.rank !== 1 || t.shape[0] !== g.channels) {
        throw argError(op, arg, `shape [${g.channels}] (the channels of x ${formatShape(x.shape)}) or null`, `shape ${formatShape(t.shape)}`);
      }
    }
  }
  return groupNormCore(op, x, g, checkChannelRows(op, 'weight', weight, g, x), checkChannelRows(op, 'bias', bias, g, x), checkEps(op, eps), false);
}

/**
 * GroupNorm (no affine of its own) followed by a per-image or per-channel scale and shift and an
 * optional SiLU, in one pass: act(xh · scale + shift), where scale/shift are (C) or (N, C) — the
 * U-Net's norm with its adaptive scale/shift from the time embedding, then its activation.
 * Equals `silu(add(mul(groupNorm(x, groups), scale[:, :, None, None]), shift[:, :, None, None]))`.
 *
 *   const [s, t] = chunk(emb.forward(c), 2, 1);                       // (N, C) column slices, read in place
 *   const h = groupNormAct(x, 8, { scale: addScalar(s, 1), shift: t, silu: true });
 */
export function groupNormAct(x: Tensor, groups: number, options: GroupNormActOptions = {}): Tensor {
  const op = 'groupNormAct';
  const g = geometry(op, x, groups);
  if (options === null || typeof options !== 'object') throw argError(op, 'options', 'an object', describe(options));
  const silu = options.silu ?? false;
  if (typeof silu !== 'boolean') throw argError(op, 'options.silu', 'a boolean', describe(silu));
  const scale = checkChannelRows(op, 'options.scale', options.scale, g, x);
  const shift = checkChannelRows(op, 'options.shift', options.shift, g, x);
  return groupNormCore(op, x, g, scale, shift, checkEps(op, options.eps ?? 1e-5), silu);
}
