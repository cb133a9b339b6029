/**
 * Spatial pooling and bilinear resizing of NCHW images — PyTorch's F.max_pool2d, F.avg_pool2d and
 * F.interpolate(mode='bilinear') — on the native pool kernels. Forward only: they serve inference
 * (the Inception-v3 feature extractor of FID), so an input that requires a gradient while the
 * tape records is refused rather than silently cut from the graph.
 *
 *   const y = maxPool2d(x, 3, { stride: 2 });                                 // (N, C, 35, 35) -> (N, C, 17, 17)
 *   const z = avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false }); // same size
 *   const big = resizeBilinear(img, [299, 299]);                              // (N, 3, 32, 32) -> (N, 3, 299, 299)
 *
 * Inputs are (N, C, H, W) or (C, H, W); the output has the same rank.
 */
import { runKernel } from '../backend/dispatch.js';
import { needsGrad } from '../tensor/autograd.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkRank, checkTensor, dense, describe, release } from './util.js';

/** Kernel, stride and padding stay below 2^31 (the native kernels' limit). */
const MAX_WINDOW = 2 ** 31;

export interface Pool2dOptions {
  /** Step between windows, one number for both axes or [h, w]; default: the kernel size (PyTorch). */
  stride?: number | [number, number];
  /** Implicit padding on both sides of each axis, at most half the kernel; default 0. */
  padding?: number | [number, number];
  /** Round the output size up instead of down (the last window must still start inside the input or its left padding). */
  ceilMode?: boolean;
}

export interface AvgPool2dOptions extends Pool2dOptions {
  /** Count the zero padding in each window's divisor (default true, as PyTorch); false divides by the input pixels covered. */
  countIncludePad?: boolean;
}

export interface ResizeOptions {
  /** Map corner pixel centres onto each other (PyTorch's align_corners); default false. */
  alignCorners?: boolean;
}

function pair(op: string, arg: string, v: unknown, min: number): [number, number] {
  const ok = (s: unknown): s is number => typeof s === 'number' && Number.isInteger(s) && s >= min && s < MAX_WINDOW;
  if (ok(v)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
  throw argError(op, arg, `an integer in [${min}, 2^31) or a pair [h, w] of them`, describe(v));
}

function flag(op: string, arg: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw argError(op, arg, 'a boolean', describe(v));
  return v;
}

/** The (N, C, H, W) view of a rank-3 or rank-4 input, checked live, float32, non-empty planes. */
function nchw(op: string, x: Tensor): [number, number, number, number] {
  checkTensor(op, 'x', x);
  checkRank(op, 'x', x, [3, 4]);
  if (needsGrad(x)) {
    throw new Error(`diffvit.${op}: no gradient is implemented (inference only); call it under noGrad() or on a tensor that does not require grad`);
  }
  const [n, c, h, w] = x.rank === 4 ? x.shape : [1, ...x.shape];
  if (h === 0 || w === 0) throw argError(op, 'x', 'a non-empty image (H, W >= 1)', `shape ${formatShape(x.shape)}`);
  return [n, c, h, w];
}

/** PyTorch's pooling_output_shape without dilation (span = in + 2·pad - kernel >= 0). */
function pooledSize(inSize: number, kernel: number, stride: number, pad: number, ceilMode: boolean): number {
  const span = inSize + 2 * pad - kernel;
  let out = Math.floor((span + (ceilMode ? stride - 1 : 0)) / stride) + 1;
  if (ceilMode && (out - 1) * stride >= inSize + pad) out--;
  return out;
}

interface PoolGeometry {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number;
  ceilMode: boolean;
  oh: number; ow: number;
}

function poolGeometry(op: string, x: Tensor, kernelSize: unknown, options: Pool2dOptions): PoolGeometry {
  const [n, c, h, w] = nchw(op, x);
  if (options === null || typeof options !== 'object') throw argError(op, 'options', 'an object', describe(options));
  const [kh, kw] = pair(op, 'kernelSize', kernelSize, 1);
  const [sh, sw] = options.stride === undefined ? [kh, kw] : pair(op, 'options.stride', options.stride, 1);
  const [ph, pw] = pair(op, 'options.padding', options.padding ?? 0, 0);
  const ceilMode = flag(op, 'options.ceilMode', options.ceilMode, false);
  if (2 * ph > kh || 2 * pw > kw) {
    throw argError(op, 'options.padding', `at most half the kernel (${Math.floor(kh / 2)}, ${Math.floor(kw / 2)})`, describe(options.padding));
  }
  if (kh > h + 2 * ph || kw > w + 2 * pw) {
    throw argError(op, 'kernelSize', `a window no larger than the padded input ${h + 2 * ph}×${w + 2 * pw}`, `${kh}×${kw}`);
  }
  const oh = pooledSize(h, kh, sh, ph, ceilMode), ow = pooledSize(w, kw, sw, pw, ceilMode);
  return { n, c, h, w, kh, kw, sh, sw, ph, pw, ceilMode, oh, ow };
}

function outputShape(x: Tensor, n: number, c: number, oh: number, ow: number): number[] {
  return x.rank === 4 ? [n, c, oh, ow] : [c, oh, ow];
}

function pool(op: 'maxPool2d' | 'avgPool2d', x: Tensor, kernelSize: unknown, options: AvgPool2dOptions): Tensor {
  const g = poolGeometry(op, x, kernelSize, options);
  const countIncludePad = op === 'avgPool2d' ? flag(op, 'options.countIncludePad', options.countIncludePad, true) : false;
  const out = Tensor.empty(outputShape(x, g.n, g.c, g.oh, g.ow), 'float32', x.device);
  if (out.size === 0) return out;
  const X = dense(x);
  if (op === 'maxPool2d') {
    runKernel('maxPool2d', {
      x: X.buffer, xOffset: X.offset, y: out.buffer, yOffset: 0, planes: g.n * g.c, height: g.h, width: g.w,
      kernelH: g.kh, kernelW: g.kw, strideH: g.sh, strideW: g.sw, padH: g.ph, padW: g.pw, ceilMode: g.ceilMode
    });
  } else {
    runKernel('avgPool2d', {
      x: X.buffer, xOffset: X.offset, y: out.buffer, yOffset: 0, planes: g.n * g.c, height: g.h, width: g.w,
      kernelH: g.kh, kernelW: g.kw, strideH: g.sh, strideW: g.sw, padH: g.ph, padW: g.pw, ceilMode: g.ceilMode,
      countIncludePad
    });
  }
  release(X, x);
  return out;
}

/**
 * Max pooling, as F.max_pool2d(x, kernelSize, stride, padding, ceil_mode=ceilMode): the maximum of
 * each window, padding counting as -inf; NaN propagates. OH = ⌊(H + 2·padH - kH) / strideH⌋ + 1.
 *
 *   maxPool2d(x, 3, { stride: 2 })                   // Inception's stem: (N, 64, 147, 147) -> (N, 64, 73, 73)
 *   maxPool2d(x, 3, { stride: 1, padding: 1 })       // same size (Inception E_2's pool branch)
 */
export function maxPool2d(x: Tensor, kernelSize: number | [number, number], options: Pool2dOptions = {}): Tensor {
  return pool('maxPool2d', x, kernelSize, options);
}

/**
 * Average pooling, as F.avg_pool2d(x, kernelSize, stride, padding, ceil_mode, count_include_pad).
 * With countIncludePad (default) each window's sum is divided by its size clipped to the padded
 * input; with false by the number of real pixels it covers (TF's "SAME" average, which the FID
 * Inception's blocks use).
 *
 *   avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false })
 */
export function avgPool2d(x: Tensor, kernelSize: number | [number, number], options: AvgPool2dOptions = {}): Tensor {
  return pool('avgPool2d', x, kernelSize, options);
}

/**
 * Bilinear resize to `size` ([outH, outW] or one number for both), as
 * F.interpolate(x, size, mode='bilinear', align_corners=alignCorners) — no antialiasing, so a large
 * downscale samples rather than averages (as pytorch-fid's resize to 299×299 does).
 *
 *   resizeBilinear(img, [299, 299])                  // (N, 3, 32, 32) -> (N, 3, 299, 299)
 */
export function resizeBilinear(x: Tensor, size: number | [number, number], options: ResizeOptions = {}): Tensor {
  const op = 'resizeBilinear';
  const [n, c, h, w] = nchw(op, x);
  if (options === null || typeof options !== 'object') throw argError(op, 'options', 'an object', describe(options));
  const [oh, ow] = pair(op, 'size', size, 1);
  const alignCorners = flag(op, 'options.alignCorners', options.alignCorners, false);
  const out = Tensor.empty(outputShape(x, n, c, oh, ow), 'float32', x.device);
  if (out.size === 0) return out;
  const X = dense(x);
  runKernel('resizeBilinear', {
    x: X.buffer, xOffset: X.offset, y: out.buffer, yOffset: 0, planes: n * c, inH: h, inW: w, outH: oh, outW: ow,
    alignCorners
  });
  release(X, x);
  return out;
}
