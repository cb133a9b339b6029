/** Image generation from a model: latents from a seed, a sampler, optional guidance. */
import { randn, zeros } from '../ops/creation.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { range } from '../profiler/range.js';
import { Generator } from '../tensor/random.js';
import { formatShape, type Tensor } from '../tensor/tensor.js';
import { GuidedNetwork } from './guidance.js';
import { edmSigmas, type StepCallback } from './samplers/common.js';
import { ddimSampler, ddimSigmas } from './samplers/ddim.js';
import { dpmSolver2M } from './samplers/dpm_solver.js';
import { eulerSampler } from './samplers/euler.js';
import { heunSampler } from './samplers/heun.js';
import { SAMPLERS, type SamplerName } from './samplers/names.js';

export { SAMPLERS, type SamplerName };

export interface GenerateOptions {
  /** Number of images (ignored when labels or a context are given: one image per label / context row). */
  count?: number;
  labels?: Int32Array | null;
  /**
   * (B, context_len, context_dim) text embeddings, one row per image, for models with a context.
   * Without it such a model samples unconditionally (the all-zero empty context).
   */
  context?: Tensor | null;
  sampler?: SamplerName;
  /** Sampler steps (Heun: 18 → 35 evaluations). */
  steps?: number;
  guidance?: number;
  /** Guide only at noise levels lo < σ <= hi (Kynkäänniemi et al. 2024); default every level. */
  guidanceInterval?: readonly [number, number];
  seed?: number;
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
  /** Heun's S_churn. */
  churn?: number;
  onStep?: StepCallback;
}

/**
 * Generates images (B, C, H, W) in [-1, 1] (not clipped). All of it is the profiler range `sample`
 * (lib/profiler), around the sampler's `step <i>` ranges.
 */
export function generate(model: DiffusionViT, options: GenerateOptions = {}): { images: Float64Array; shape: number[] } {
  return range('sample', () => generateImages(model, options));
}

function generateImages(model: DiffusionViT, options: GenerateOptions): { images: Float64Array; shape: number[] } {
  const c = model.config;
  const given = options.context ?? null;
  if (given && !c.context_dim) throw new Error(`diffvit.generate: argument 'context' given but the model has no context (context_dim 0)`);
  if (given && (given.rank !== 3 || given.shape[1] !== c.context_len || given.shape[2] !== c.context_dim)) {
    throw new Error(`diffvit.generate: argument 'context' expected shape [B, ${c.context_len}, ${c.context_dim}], received ${formatShape(given.shape)}`);
  }
  if (given && options.labels && options.labels.length !== given.shape[0]) {
    throw new Error(`diffvit.generate: arguments 'labels' and 'context' expected one entry per image, received ${options.labels.length} labels and ${given.shape[0]} contexts`);
  }
  const count = options.labels ? options.labels.length : given ? given.shape[0] : (options.count ?? 16);
  const shape = [count, c.in_chans, c.img_size, c.img_size];
  const sampler = options.sampler ?? 'heun';
  if (!SAMPLERS.includes(sampler)) throw new Error(`diffvit.generate: argument 'sampler' expected one of ${SAMPLERS.join(', ')}, received '${sampler}'`);
  const g = new Generator(options.seed ?? 0);
  // A context model sampled without a context: the empty (all-zero) context, i.e. unconditional.
  const empty = c.context_dim && !given ? zeros([count, c.context_len, c.context_dim]) : null;
  const guidance = options.labels || given ? options.guidance : 1; // nothing to guide towards
  let net: GuidedNetwork;
  try {
    net = new GuidedNetwork(model, shape, { labels: options.labels, context: given ?? empty, guidance, guidanceInterval: options.guidanceInterval });
  } catch (e) {
    empty?.dispose();
    throw e;
  }
  const latents = randn(shape, { generator: g });
  const steps = options.steps ?? (sampler === 'ddim' ? 50 : 18);
  const sigmas = sampler === 'ddim' ? ddimSigmas(steps, options.sigmaMin, options.sigmaMax) : edmSigmas(steps, options.sigmaMin, options.sigmaMax, options.rho);
  try {
    // Every sampler runs on the latents' device; the images come back to the host once, at the end.
    const x = sampler === 'heun' ? heunSampler(net, latents, sigmas, { churn: options.churn ?? 0, generator: g }, options.onStep)
      : sampler === 'euler' ? eulerSampler(net, latents, sigmas, options.onStep)
      : sampler === 'dpmpp2m' ? dpmSolver2M(net, latents, sigmas, options.onStep)
      : ddimSampler(net, latents, sigmas, options.onStep);
    const images = Float64Array.from(x.data());
    x.dispose();
    return { images, shape };
  } finally {
    latents.dispose();
    net.dispose();
    empty?.dispose();
  }
}
