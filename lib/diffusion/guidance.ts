/**
 * Classifier-free guidance: D_w = D_uncond + w·(D_cond − D_uncond), with the conditional and the
 * unconditional halves evaluated as ONE batch of 2B (labels then the null label / empty context).
 * Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"):
 * with a guide model, D_w = D_guide + w·(D_main − D_guide), both with the same conditioning.
 * Optionally only inside a noise interval (Kynkäänniemi et al. 2024, "Applying guidance in a
 * limited interval"): outside it the conditional half alone is evaluated, with w = 1.
 */
import { full, tensor } from '../ops/creation.js';
import { mulScalar } from '../ops/elementwise.js';
import { assign_, copy_ } from '../ops/inplace.js';
import { concat, slice } from '../ops/shape.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { noGrad } from '../tensor/autograd.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { preconditioning } from './edm.js';
import type { Denoise } from './samplers/common.js';

export interface Conditioning {
  /** Class per image (int32 values), or null for an unconditional model. */
  labels?: Int32Array | null;
  /** (B, L, C) context embeddings, or null. */
  context?: Tensor | null;
  /** Guidance scale w; 1 = plain conditional sampling (no unconditional pass). */
  guidance?: number;
  /** Guide only at noise levels lo < σ <= hi (default: every level). */
  guidanceInterval?: readonly [number, number];
  /**
   * Autoguidance: the model guided away from (a weaker one of the same kind: smaller, or trained
   * for less), evaluated with the same labels and context, instead of the unconditional model.
   */
  guide?: DiffusionViT | null;
}

/** What a guide model must share with the model it guides: the images and the conditioning. */
export const GUIDE_MATCHES = ['img_size', 'in_chans', 'num_classes', 'context_dim', 'context_len'] as const;

/** Checks that `guide` can guide `net`: the same images, conditioning and device (errors name `op`). */
export function checkGuide(net: DiffusionViT, guide: DiffusionViT, op = 'sample'): void {
  for (const key of GUIDE_MATCHES) {
    if (guide.config[key] !== net.config[key]) {
      throw new Error(`diffvit.${op}: argument 'guide' expected a model with the sampled model's ${key} (${net.config[key]}), received ${guide.config[key]}`);
    }
  }
  if (guide.device !== net.device) {
    throw new Error(`diffvit.${op}: argument 'guide' is on device '${guide.device}' but the model is on '${net.device}' (move it with guide.to('${net.device}'))`);
  }
}

/** Checks class labels against a model with `numClasses` classes (numClasses itself is the null class). */
export function checkLabels(labels: ArrayLike<number>, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!(l >= 0 && l <= numClasses)) throw new Error(`diffvit.sample: argument 'labels' expected classes in [0, ${numClasses}] (${numClasses} = null), received ${l}`);
  }
}

/**
 * The network F around a batch of B images: scales by c_in, doubles the batch for guidance. It
 * runs on the model's device: its label tensors are made there, and a context must be there.
 */
export class GuidedNetwork {
  readonly guided: boolean;
  readonly guidance: number;
  readonly batch: number;
  readonly guidanceInterval: readonly [number, number];
  /** The device the network runs on (the model's). */
  readonly device: string;
  private readonly labels: Tensor | null;
  private readonly context: Tensor | null;
  /** The conditional half alone, for noise levels outside the guidance interval. */
  private readonly condLabels: Tensor | null;
  private readonly condContext: Tensor | null;
  private readonly guide: DiffusionViT | null;
  /** Copies of the batch one evaluation runs the network on: 2 for classifier-free guidance (its unconditional half), else 1 (autoguidance's half is the guide's). */
  private readonly copies: 1 | 2;

  constructor(readonly net: DiffusionViT, readonly shape: readonly number[], cond: Conditioning = {}, readonly sigmaData = 0.5) {
    const B = (this.batch = shape[0]);
    this.guidance = cond.guidance ?? 1;
    this.guide = cond.guide ?? null;
    if (this.guide) checkGuide(net, this.guide);
    this.guided = this.guidance !== 1 && Boolean(this.guide || cond.labels || cond.context);
    const [lo, hi] = (this.guidanceInterval = cond.guidanceInterval ?? [0, Infinity]);
    if (!(lo >= 0 && hi > lo)) throw new Error(`diffvit.sample: argument 'guidanceInterval' expected 0 <= lo < hi, received [${lo}, ${hi}]`);
    const numClasses = net.config.num_classes;
    const device = (this.device = net.device);
    if (cond.labels && cond.labels.length !== B) {
      throw new Error(`diffvit.sample: argument 'labels' expected ${B} labels, received ${cond.labels.length}`);
    }
    checkLabels(cond.labels ?? [], numClasses);
    if (cond.context && cond.context.device !== device) {
      throw new Error(`diffvit.sample: argument 'context' is on device '${cond.context.device}' but the model is on '${device}' (move it with context.to('${device}'))`);
    }
    const G = (this.copies = this.guided && !this.guide ? 2 : 1);
    this.labels = this.condLabels = null;
    if (numClasses) {
      const l = this.labelValues(cond.labels ?? null);
      this.labels = keep(tensor(l, [G * B], { dtype: 'int32', device }));
      this.condLabels = G === 2 ? keep(tensor(l.slice(0, B), [B], { dtype: 'int32', device })) : this.labels;
    }
    this.context = null;
    this.condContext = cond.context ?? null;
    if (cond.context) {
      // the unconditional half sees an all-zero ("empty") context
      this.context = G === 2 ? keep(noGrad(() => concat([cond.context!, full(cond.context!.shape, 0, { device })], 0))) : cond.context;
    }
  }

  /** The (G·B) labels of the batch: the given ones (else the null class), then the null class for the unconditional half. */
  private labelValues(labels: Int32Array | null): Int32Array {
    const numClasses = this.net.config.num_classes;
    const l = new Int32Array(this.copies * this.batch).fill(numClasses);
    if (labels) l.set(labels);
    return l;
  }

  /**
   * Writes another batch's conditioning into the tensors this network reads, in place — how a
   * replayed CUDA graph that captured evaluate() sees new labels and context (it reads the same
   * memory every time): `labels` (B values) into its label tensors, `context` (B, L, C) into the
   * context it was constructed with (which it writes to: pass one you own) and into the
   * conditional half of its guided copy. Not for a network built without labels or context.
   */
  setConditioning(cond: { labels?: Int32Array | null; context?: Tensor | null }): void {
    if (cond.labels) {
      if (!this.labels) throw new Error('diffvit.sample: setConditioning: labels given but the model is unconditional (num_classes 0)');
      if (cond.labels.length !== this.batch) throw new Error(`diffvit.sample: argument 'labels' expected ${this.batch} labels, received ${cond.labels.length}`);
      checkLabels(cond.labels, this.net.config.num_classes);
      const l = this.labelValues(cond.labels);
      assign_(this.labels, l);
      if (this.condLabels !== this.labels) assign_(this.condLabels!, l.slice(0, this.batch));
    }
    if (cond.context) {
      if (!this.condContext || !this.context) throw new Error('diffvit.sample: setConditioning: a context given but the network was built without one');
      noGrad(() => {
        copy_(this.condContext!, cond.context!);
        if (this.context !== this.condContext) {
          const half = slice(this.context!, 0, 0, this.batch);
          copy_(half, cond.context!);
          half.dispose();
        }
      });
    }
  }

  /** Whether σ gets the unconditional pass and the guidance mix. */
  guidedAt(sigma: number): boolean {
    return this.guided && sigma > this.guidanceInterval[0] && sigma <= this.guidanceInterval[1];
  }

  /** The guidance scale the update at σ uses (1 outside the interval). */
  guidanceAt(sigma: number): number {
    return this.guidedAt(sigma) ? this.guidance : 1;
  }

  /**
   * F(c_in·x; c_noise) for x: (B, ...) at σ, as (G·B, ...) with the conditional half first (G = 2
   * where guidedAt(σ)); with a guide, the second half is the guide's F.
   */
  evaluate(x: Tensor, sigma: number): Tensor {
    const guided = this.guidedAt(sigma);
    return noGrad(() =>
      scope(() => {
        const { c_in, c_noise } = preconditioning(sigma, this.sigmaData);
        const xIn = mulScalar(x, c_in);
        if (guided && this.guide) {
          const cNoise = full([xIn.shape[0]], c_noise, { device: x.device });
          return concat([this.net.forward(xIn, cNoise, this.condLabels, this.condContext), this.guide.forward(xIn, cNoise, this.condLabels, this.condContext)], 0);
        }
        const input = guided ? concat([xIn, xIn], 0) : xIn;
        const cNoise = full([input.shape[0]], c_noise, { device: x.device });
        return this.net.forward(input, cNoise, guided ? this.labels : this.condLabels, guided ? this.context : this.condContext);
      }),
    );
  }

  /**
   * D_w(x; σ) on the host in float64 (the guidance mix too): a reference to test the samplers
   * against. It reads F back to the host, so no sampler calls it.
   */
  readonly denoise: Denoise = (x, sigma) =>
    scope(() => {
      const { c_skip, c_out } = preconditioning(sigma, this.sigmaData);
      const F = this.evaluate(tensor(Float32Array.from(x), this.shape, { device: this.device }), sigma).data();
      const n = x.length, w = this.guidance, guided = this.guidedAt(sigma);
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const Dc = c_skip * x[i] + c_out * F[i];
        if (!guided) {
          out[i] = Dc;
          continue;
        }
        const Du = c_skip * x[i] + c_out * F[n + i];
        out[i] = Du + w * (Dc - Du);
      }
      return out;
    });

  dispose(): void {
    if (this.condLabels !== this.labels) this.condLabels?.dispose();
    this.labels?.dispose();
    if (this.context && this.context !== this.condContext) this.context.dispose();
  }
}
