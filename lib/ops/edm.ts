/**
 * The fused EDM noise-prediction step as ops (kernels in native/cpu/edm.cpp):
 *   edmNoiseInputs   — x_noisy = y + σ·n and x_in = c_in·x_noisy in one pass (n from a Generator);
 *   edmTrainingNoise — the same, after drawing the training σ and c_noise on the device;
 *   edmWeightedLoss  — D = c_skip·x_noisy + c_out·F and mean λ(σ)(D − y)², with dL/dF, in one pass;
 *   edmSamplerUpdate — guidance mix, d = (x − D)/σ and the Euler/Heun update in one pass.
 */
import { runKernel } from '../backend/dispatch.js';
import { record } from '../tensor/autograd.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { copyInto, formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkNumber, checkTensor } from './util.js';

function checkImages(op: string, arg: string, t: Tensor, shape?: readonly number[]): void {
  checkTensor(op, arg, t);
  if (!t.isContiguous()) throw argError(op, arg, 'a contiguous tensor', `a strided view ${formatShape(t.shape)}`);
  if (shape && (t.rank !== shape.length || t.shape.some((s, i) => s !== shape[i]))) throw argError(op, arg, `shape ${formatShape(shape)}`, formatShape(t.shape));
}

/** The kernels address these buffers from element 0: a view into a larger buffer is copied. */
function fromOrigin(t: Tensor): Tensor {
  if (t.offset === 0) return t;
  const c = Tensor.empty(t.shape, t.dtype, t.device);
  copyInto(t, c);
  return c;
}

function checkSigmas(op: string, sigmas: Tensor, batch: number): void {
  checkImages(op, 'sigmas', sigmas, [batch]);
}

/** y: (B, ...) clean images, sigmas: (B). Draws n ~ N(0, 1) from `generator`. */
export function edmNoiseInputs(y: Tensor, sigmas: Tensor, generator: Generator = defaultGenerator, sigmaData = 0.5): { xNoisy: Tensor; xIn: Tensor } {
  checkImages('edmNoiseInputs', 'y', y);
  const B = y.shape[0], per = y.size / Math.max(B, 1);
  checkSigmas('edmNoiseInputs', sigmas, B);
  const xNoisy = Tensor.empty(y.shape, 'float32', y.device), xIn = Tensor.empty(y.shape, 'float32', y.device);
  runKernel('edmNoise', {
    y: y.buffer, yOffset: y.offset, sigma: sigmas.buffer, sigmaOffset: sigmas.offset, batch: B, per,
    seed: generator.seed, counter: generator.take(y.size), sigmaData, xNoisy: xNoisy.buffer, xIn: xIn.buffer,
    drawSigma: false, sigmaCounter: 0, pMean: 0, pStd: 0, cNoise: null, cNoiseOffset: 0
  });
  return { xNoisy, xIn };
}

export interface TrainingNoiseOptions {
  /** ln σ ~ N(P_mean, P_std²) (EDM: -1.2, 1.2). */
  P_mean?: number;
  P_std?: number;
  sigmaData?: number;
  /**
   * Write into these tensors instead of new ones (contiguous, from offset 0, on y's device: sigmas
   * and cNoise (B), xNoisy and xIn shaped like y): how a replayed CUDA graph gets each step's noise,
   * drawn eagerly into the tensors it captured (a graph freezes the seed and counter it saw).
   */
  out?: { sigmas: Tensor; cNoise: Tensor; xNoisy: Tensor; xIn: Tensor };
}

/**
 * The whole noising of an EDM training step on y's device, with nothing read back: draws
 * σ = exp(P_mean + P_std·z) per image (z: the next B normals of `generator`, the values
 * sampleTrainingSigmas computes on the host), c_noise = ln(σ)/4, then x_noisy = y + σ·n and
 * x_in = c_in·x_noisy (n: the next y.size normals).
 */
export function edmTrainingNoise(y: Tensor, generator: Generator = defaultGenerator, options: TrainingNoiseOptions = {}):
  { sigmas: Tensor; cNoise: Tensor; xNoisy: Tensor; xIn: Tensor } {
  const op = 'edmTrainingNoise';
  checkImages(op, 'y', y);
  const B = y.shape[0], per = y.size / Math.max(B, 1);
  const pMean = checkNumber(op, 'P_mean', options.P_mean ?? -1.2), pStd = checkNumber(op, 'P_std', options.P_std ?? 1.2);
  const out = options.out;
  if (out) {
    for (const [name, t, shape] of [['sigmas', out.sigmas, [B]], ['cNoise', out.cNoise, [B]], ['xNoisy', out.xNoisy, y.shape], ['xIn', out.xIn, y.shape]] as const) {
      checkImages(op, `out.${name}`, t, shape);
      if (t.offset !== 0) throw argError(op, `out.${name}`, 'a tensor starting at element 0 of its memory', `a view at offset ${t.offset}`);
      if (t.device !== y.device) throw argError(op, `out.${name}`, `a tensor on y's device '${y.device}'`, `one on '${t.device}'`);
    }
  }
  const sigmas = out?.sigmas ?? Tensor.empty([B], 'float32', y.device), cNoise = out?.cNoise ?? Tensor.empty([B], 'float32', y.device);
  const xNoisy = out?.xNoisy ?? Tensor.empty(y.shape, 'float32', y.device), xIn = out?.xIn ?? Tensor.empty(y.shape, 'float32', y.device);
  try {
    // The σ draws come first in the stream, then the noise (as sampleTrainingSigmas + edmNoiseInputs).
    const sigmaCounter = generator.take(B);
    runKernel('edmNoise', {
      y: y.buffer, yOffset: y.offset, sigma: sigmas.buffer, sigmaOffset: 0, batch: B, per,
      seed: generator.seed, counter: generator.take(y.size), sigmaData: options.sigmaData ?? 0.5, xNoisy: xNoisy.buffer,
      xIn: xIn.buffer, drawSigma: true, sigmaCounter, pMean, pStd, cNoise: cNoise.buffer, cNoiseOffset: 0
    });
  } catch (e) {
    if (!out) for (const t of [sigmas, cNoise, xNoisy, xIn]) t.dispose();
    throw e;
  }
  return { sigmas, cNoise, xNoisy, xIn };
}

/** The EDM loss from the network output F (B, ...): a scalar whose gradient flows into F. */
export function edmWeightedLoss(F: Tensor, xNoisy: Tensor, y: Tensor, sigmas: Tensor, sigmaData = 0.5): Tensor {
  checkImages('edmWeightedLoss', 'y', y);
  checkImages('edmWeightedLoss', 'F', F, y.shape);
  checkImages('edmWeightedLoss', 'xNoisy', xNoisy, y.shape);
  const B = y.shape[0], per = y.size / B;
  checkSigmas('edmWeightedLoss', sigmas, B);
  const dF = Tensor.empty(F.shape, 'float32', F.device);
  const xn = fromOrigin(xNoisy);
  // The kernel stores the loss in its output: no value comes back to the host.
  const loss = Tensor.empty([], 'float32', F.device);
  runKernel('edmLoss', {
    F: F.buffer, FOffset: F.offset, xNoisy: xn.buffer, y: y.buffer, yOffset: y.offset, sigma: sigmas.buffer,
    sigmaOffset: sigmas.offset, batch: B, per, sigmaData, dF: dF.buffer, loss: loss.buffer, lossOffset: 0
  });
  if (xn !== xNoisy) xn.dispose();
  const out = record('edmWeightedLoss', loss, [F], (dy) => {
    // dL/dF scaled by the upstream gradient, a device scalar broadcast over dF (stride 0).
    const grad = Tensor.empty(F.shape, 'float32', F.device);
    const shape = [grad.size];
    runKernel('binary', {
      op: 'mul', a: dF.buffer, aOffset: 0, aStrides: [1], b: dy.buffer, bOffset: dy.offset, bStrides: [0],
      out: grad.buffer, outOffset: 0, shape
    });
    dF.dispose();
    return [grad];
  });
  if (!out.requiresGrad) dF.dispose();
  return out;
}

export interface SamplerUpdate {
  /** Network output for x: (B, ...) or, with guidance, (2B, ...) — conditional half first. */
  F: Tensor;
  /** Where F was evaluated, (B, ...). */
  x: Tensor;
  sigma: number;
  /** Guidance scale w (used when F holds both halves). */
  guidance?: number;
  /** x_next = base + h·(a·dPrev + b·d). */
  base: Tensor;
  h: number;
  dPrev?: Tensor | null;
  a?: number;
  b?: number;
  sigmaData?: number;
}

/** One fused sampler update; returns x_next and the slope d = (x − D_w)/σ. */
export function edmSamplerUpdate(u: SamplerUpdate): { xNext: Tensor; d: Tensor } {
  const op = 'edmSamplerUpdate';
  checkImages(op, 'x', u.x);
  checkImages(op, 'base', u.base, u.x.shape);
  if (u.dPrev) checkImages(op, 'dPrev', u.dPrev, u.x.shape);
  const B = u.x.shape[0], per = u.x.size / Math.max(B, 1);
  checkImages(op, 'F', u.F);
  const guided = u.F.shape[0] === 2 * B && B > 0;
  if (!guided && u.F.shape[0] !== B) throw argError(op, 'F', `${B} or ${2 * B} (guided) images`, formatShape(u.F.shape));
  if (u.F.size !== (guided ? 2 : 1) * u.x.size) throw argError(op, 'F', `images shaped like x ${formatShape(u.x.shape)}`, formatShape(u.F.shape));
  const xNext = Tensor.empty(u.x.shape, 'float32', u.x.device), d = Tensor.empty(u.x.shape, 'float32', u.x.device);
  const inputs = [u.F, u.x, u.base, u.dPrev ?? null].map((t) => (t ? fromOrigin(t) : null));
  const [F, x, base, dPrev] = inputs;
  runKernel('edmSamplerStep', {
    F: F!.buffer, x: x!.buffer, base: base!.buffer, dPrev: dPrev?.buffer ?? null, dOut: d.buffer,
    xNext: xNext.buffer, batch: B, per, guided, guidance: u.guidance ?? 1, sigma: u.sigma,
    sigmaData: u.sigmaData ?? 0.5, h: u.h, a: u.a ?? 0, b: u.b ?? 1
  });
  inputs.forEach((t, i) => {
    if (t && t !== [u.F, u.x, u.base, u.dPrev][i]) t.dispose();
  });
  return { xNext, d };
}
