/** Image generation from a model: latents from a seed, a sampler, optional guidance. */
import { randn } from '../ops/creation.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { GuidedNetwork } from './guidance.js';
import { edmSigmas, type StepCallback } from './samplers/common.js';
import { ddimSampler, ddimSigmas } from './samplers/ddim.js';
import { dpmSolver2M } from './samplers/dpm_solver.js';
import { eulerSampler } from './samplers/euler.js';
import { heunSampler } from './samplers/heun.js';
import { SAMPLERS, type SamplerName } from './samplers/names.js';

export { SAMPLERS, type SamplerName };

export interface GenerateOptions {
  /** Number of images (ignored when labels are given: one image per label). */
  count?: number;
  labels?: Int32Array | null;
  context?: Tensor | null;
  sampler?: SamplerName;
  /** Sampler steps (Heun: 18 → 35 evaluations). */
  steps?: number;
  guidance?: number;
  seed?: number;
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
  /** Heun's S_churn. */
  churn?: number;
  onStep?: StepCallback;
}

/** Generates images (B, C, H, W) in [-1, 1] (not clipped). */
export function generate(model: DiffusionViT, options: GenerateOptions = {}): { images: Float64Array; shape: number[] } {
  const c = model.config;
  const count = options.labels ? options.labels.length : (options.count ?? 16);
  const shape = [count, c.in_chans, c.img_size, c.img_size];
  const sampler = options.sampler ?? 'heun';
  if (!SAMPLERS.includes(sampler)) throw new Error(`diffvit.generate: argument 'sampler' expected one of ${SAMPLERS.join(', ')}, received '${sampler}'`);
  const g = new Generator(options.seed ?? 0);
  const net = new GuidedNetwork(model, shape, { labels: options.labels, context: options.context, guidance: options.guidance });
  const latents = randn(shape, { generator: g });
  const steps = options.steps ?? (sampler === 'ddim' ? 50 : 18);
  const sigmas = sampler === 'ddim' ? ddimSigmas(steps, options.sigmaMin, options.sigmaMax) : edmSigmas(steps, options.sigmaMin, options.sigmaMax, options.rho);
  try {
    if (sampler === 'dpmpp2m') return { images: dpmSolver2M(net.denoise, Float64Array.from(latents.data()), sigmas, options.onStep), shape };
    const x = sampler === 'heun' ? heunSampler(net, latents, sigmas, { churn: options.churn ?? 0, generator: g }, options.onStep)
      : sampler === 'euler' ? eulerSampler(net, latents, sigmas, options.onStep)
      : ddimSampler(net, latents, sigmas, options.onStep);
    const images = Float64Array.from(x.data());
    x.dispose();
    return { images, shape };
  } finally {
    latents.dispose();
    net.dispose();
  }
}
