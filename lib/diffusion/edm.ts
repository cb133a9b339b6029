/**
 * EDM (Karras et al. 2022): preconditioning, the training loss with log-normal sigma, and the
 * per-sample coefficients, in the paper's names (Table 1):
 *   c_skip = sd²/(s²+sd²), c_out = s·sd/sqrt(s²+sd²), c_in = 1/sqrt(s²+sd²), c_noise = ln(s)/4,
 *   D(x; s) = c_skip·x + c_out·F(c_in·x; c_noise),
 *   loss = λ(s)·|D(y+n; s) − y|², λ(s) = (s²+sd²)/(s·sd)², ln(s) ~ N(P_mean, P_std²), n ~ N(0, s²).
 */
import type { Device } from '../backend/backend.js';
import { randn, tensor } from '../ops/creation.js';
import { edmTrainingNoise, edmWeightedLoss } from '../ops/edm.js';
import { add, addScalar, div, exp, mul, mulScalar, neg, reciprocal, sqrt, square, sub } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { reshape } from '../ops/shape.js';
import { noGrad } from '../tensor/autograd.js';
import { type DiffusionViT, IUViT } from '../models/diffusion_vit.js';
import { keptPatches, type TokenMask } from '../models/token_mask.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape, type Tensor } from '../tensor/tensor.js';

export const SIGMA_DATA = 0.5;

export interface Preconditioning {
  c_skip: number;
  c_out: number;
  c_in: number;
  c_noise: number;
  /** λ(σ), the loss weight */
  weight: number;
}

/** The coefficients of EDM Table 1 for one sigma, in float64. */
export function preconditioning(sigma: number, sigmaData = SIGMA_DATA): Preconditioning {
  const s2 = sigma * sigma, sd2 = sigmaData * sigmaData;
  return {
    c_skip: sd2 / (s2 + sd2),
    c_out: (sigma * sigmaData) / Math.sqrt(s2 + sd2),
    c_in: 1 / Math.sqrt(s2 + sd2),
    c_noise: Math.log(sigma) / 4,
    weight: (s2 + sd2) / (sigma * sigmaData) ** 2,
  };
}

/** Per-sample coefficient tensors of shape (B, 1, 1, 1) (c_noise: (B)), on `device` (default the host). */
export function coefficientTensors(sigmas: ArrayLike<number>, sigmaData = SIGMA_DATA, device: Device = 'cpu') {
  const B = sigmas.length;
  const pick = (key: keyof Preconditioning) => Float32Array.from({ length: B }, (_, i) => preconditioning(sigmas[i], sigmaData)[key]);
  return {
    c_skip: tensor(pick('c_skip'), [B, 1, 1, 1], { device }),
    c_out: tensor(pick('c_out'), [B, 1, 1, 1], { device }),
    c_in: tensor(pick('c_in'), [B, 1, 1, 1], { device }),
    c_noise: tensor(pick('c_noise'), [B], { device }),
    weight: tensor(pick('weight'), [B, 1, 1, 1], { device }),
  };
}

/**
 * c_skip and c_out of σ (B), a tensor on the device (the training loss's σ are drawn there), as
 * tensors of shape `perSample`: the same formulas as preconditioning's, in tensor ops.
 */
function coefficientsOf(sigmas: Tensor, perSample: number[], sigmaData: number): { cSkip: Tensor; cOut: Tensor } {
  const sigma = reshape(sigmas, perSample);
  const q = addScalar(square(sigma), sigmaData * sigmaData); // σ² + σ_data²
  return { cSkip: mulScalar(reciprocal(q), sigmaData * sigmaData), cOut: div(mulScalar(sigma, sigmaData), sqrt(q)) };
}

/** D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) around a network F. */
export class EDMDenoiser {
  constructor(
    readonly net: DiffusionViT,
    readonly sigmaData = SIGMA_DATA,
  ) {}

  /** x: (B, C, H, W) on the model's device, sigmas: one per sample (host numbers, written to x's device). */
  forward(x: Tensor, sigmas: ArrayLike<number>, labels: Tensor | null = null, context: Tensor | null = null): Tensor {
    if (sigmas.length !== x.shape[0]) {
      throw new Error(`diffvit.EDMDenoiser: argument 'sigmas' expected ${x.shape[0]} values (one per image of x ${formatShape(x.shape)}), received ${sigmas.length}`);
    }
    const c = coefficientTensors(sigmas, this.sigmaData, x.device);
    const F = this.net.forward(mul(x, c.c_in), c.c_noise, labels, context);
    return add(mul(x, c.c_skip), mul(F, c.c_out));
  }
}

export interface LossOptions {
  P_mean?: number;
  P_std?: number;
  generator?: Generator;
}

/**
 * Draws ln(σ) ~ N(P_mean, P_std²) for a batch, from the generator's stream (float64 maths), to the
 * host. edmLoss draws the same values on the device (edmTrainingNoise) without this read-back.
 */
export function sampleTrainingSigmas(batch: number, options: LossOptions = {}): Float64Array {
  const g = options.generator ?? defaultGenerator;
  const z = randn([batch], { generator: g });
  const values = z.data();
  z.dispose();
  const P_mean = options.P_mean ?? -1.2, P_std = options.P_std ?? 1.2;
  return Float64Array.from(values, (v) => Math.exp(v * P_std + P_mean));
}

/**
 * The EDM training loss (a scalar) for clean images y: mean of λ(σ)·(D(y+n; σ) − y)², through the
 * fused kernels (noise injection + c_in scaling in one pass; loss and dL/dF in one pass). With
 * options.mask (an IU-ViT only; ../models/token_mask.ts) the network sees the mask's kept patch
 * tokens and the mean runs over the kept patches' pixels. With options.modelGuidance the target is
 * the model-guided one (ModelGuidanceTarget). A network with learned_weighting (EDM2) gives
 * learnedWeightingLoss instead.
 */
export function edmLoss(D: EDMDenoiser, y: Tensor, labels: Tensor | null = null,
  options: LossOptions & { context?: Tensor | null; mask?: TokenMask | null; modelGuidance?: ModelGuidanceTarget | null } = {}): Tensor {
  // σ, c_noise and the noisy inputs are drawn on y's device (the σ of sampleTrainingSigmas, from
  // the same stream elements): nothing is read back to the host.
  const noise = edmTrainingNoise(y, options.generator ?? defaultGenerator, { P_mean: options.P_mean, P_std: options.P_std, sigmaData: D.sigmaData });
  return edmNoisedLoss(D, noise, y, labels, options);
}

/**
 * Model guidance (Tang et al. 2025, "Diffusion models without classifier-free guidance"): the
 * target of a labelled image becomes y + w·sg(D(x; σ, c) − D(x; σ, ∅)), so the network learns the
 * guided denoiser itself — at its fixed point, classifier-free guidance of scale 1/(1 − w) — and
 * samples follow their label without an unconditional pass. D(x; σ, ∅) is one more forward pass
 * (without gradients) on the null labels.
 */
export interface ModelGuidanceTarget {
  /** (B) w per image: 0 for an image whose label was dropped. */
  weight: Tensor;
  /** (B) the null class (num_classes) for every image. */
  nullLabels: Tensor;
}

/** edmLoss after its noise draw: the loss of the network on `noise` (drawn by edmTrainingNoise from y). */
export function edmNoisedLoss(D: EDMDenoiser, noise: { sigmas: Tensor; cNoise: Tensor; xNoisy: Tensor; xIn: Tensor }, y: Tensor,
  labels: Tensor | null, options: { context?: Tensor | null; mask?: TokenMask | null; modelGuidance?: ModelGuidanceTarget | null } = {}): Tensor {
  const { sigmas, cNoise, xNoisy, xIn } = noise;
  const context = options.context ?? null, mask = options.mask ?? null, guidance = options.modelGuidance ?? null, net = D.net;
  let kept = (images: Tensor) => images;
  if (mask) {
    if (!(net instanceof IUViT)) throw new Error(`diffvit.edmLoss: option 'mask' expected an IU-ViT/ASCEND network (patch tokens to drop), received arch '${net.config.arch}'`);
    const patch = net.config.patch;
    kept = (images: Tensor) => keptPatches(images, mask, patch);
  }
  const forward = (l: Tensor | null) => (mask ? (net as IUViT).forward(xIn, cNoise, l, context, mask) : net.forward(xIn, cNoise, l, context));
  const F = forward(labels);
  // D(x; σ, c) − D(x; σ, ∅) = c_out·(F_c − F_∅): the c_skip·x terms cancel.
  const target = guidance ? noGrad(() => {
    const perSample = [y.shape[0], ...y.shape.slice(1).map(() => 1)];
    const { cOut } = coefficientsOf(sigmas, perSample, D.sigmaData);
    return add(y, mul(mul(reshape(guidance.weight, perSample), cOut), sub(F, forward(guidance.nullLabels))));
  }) : y;
  if (net.logvar) return learnedWeightingLoss(kept(F), kept(xNoisy), kept(target), sigmas, net.logvar.forward(cNoise), D.sigmaData);
  return edmWeightedLoss(kept(F), kept(xNoisy), kept(target), sigmas, D.sigmaData);
}

/**
 * EDM2's loss with learned weighting: the mean over samples of L/e^u + u, where L is a sample's EDM
 * loss — the mean over its elements of λ(σ)(c_skip·x_noisy + c_out·F − y)², which is
 * (F − (y − c_skip·x_noisy)/c_out)² since λ·c_out² = 1 — and u (B) its u(σ). F, xNoisy, y: (B, ...).
 */
export function learnedWeightingLoss(F: Tensor, xNoisy: Tensor, y: Tensor, sigmas: Tensor, u: Tensor, sigmaData = SIGMA_DATA): Tensor {
  const B = F.shape[0], perSample = [B, ...F.shape.slice(1).map(() => 1)];
  const target = noGrad(() => {
    const { cSkip, cOut } = coefficientsOf(sigmas, perSample, sigmaData);
    return div(sub(y, mul(xNoisy, cSkip)), cOut);
  });
  const L = mean(square(sub(F, target)), F.shape.slice(1).map((_, i) => i + 1)); // (B)
  return mean(add(mul(L, exp(neg(u))), u));
}
