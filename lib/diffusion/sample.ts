/** Image generation from a model: latents from a seed, a sampler, optional guidance, on the model's device. */
import { type Device, resolveDevice } from '../backend/backend.js';
import { graph as cudaGraph, type CudaGraph } from '../cuda.js';
import { randn, zeros } from '../ops/creation.js';
import { to } from '../ops/device.js';
import { copy_ } from '../ops/inplace.js';
import { clone, slice } from '../ops/shape.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { range } from '../profiler/range.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { keep } from '../tensor/scope.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { checkLabels, GuidedNetwork } from './guidance.js';
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
   * (B, context_len, context_dim) text embeddings, one row per image, for models with a context
   * (on any device: it is copied to the sampling device once). Without it such a model samples
   * unconditionally (the all-zero empty context).
   */
  context?: Tensor | null;
  sampler?: SamplerName;
  /** Sampler steps (Heun: 18 → 35 evaluations). */
  steps?: number;
  guidance?: number;
  /** Guide only at noise levels lo < σ <= hi (Kynkäänniemi et al. 2024); default every level. */
  guidanceInterval?: readonly [number, number];
  /**
   * Autoguidance (Karras et al. 2024): guide away from this weaker model of the same kind (e.g. a
   * checkpoint of the same run taken earlier), with the same labels and context, instead of from
   * the unconditional model: D = D_guide + guidance·(D_model − D_guide). On the model's device.
   */
  guide?: DiffusionViT | null;
  seed?: number;
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
  /** Heun's S_churn. */
  churn?: number;
  /**
   * Called after each sampler step (step, steps, σ, batch). With cudaGraph, a replayed batch runs
   * its whole loop in one launch: it is reported once, as its last step.
   */
  onStep?: StepCallback;
  /**
   * Where the sampling runs: default (and the only choice) the device of the model's parameters
   * (move a model with model.to(device) or build it with { device }); an error if it names
   * another. The latents, the labels, the context and every step stay there; the images come back
   * to the host once, at the end.
   */
  device?: Device;
  /**
   * Images per sampling batch (default: all of them in one batch). The latents of every image are
   * drawn at once, as without batches, so the images do not depend on the batching beyond the
   * rounding of batched kernels (Heun's churn noise, drawn per step, does).
   */
  batchSize?: number;
  /**
   * CUDA device only (an error elsewhere), deterministic samplers only (an error for Heun with
   * churn > 0: its per-step noise comes from seeds and counters a graph would freeze). The first
   * batch runs eagerly, which warms the allocator and the GEMM plans up, then the whole sampling
   * loop of one batch is captured in a CUDA graph (dv.cuda.graph); every further batch of the same
   * size writes its initial noise and labels (and context) into the captured input tensors in
   * place and replays the graph: one launch per batch instead of one per kernel. A last, smaller
   * batch runs eagerly. The images equal the eager run's within float tolerance (same noise).
   * One graph per call: it pays off when batchSize < count.
   */
  cudaGraph?: boolean;
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
  const { device, backend } = resolveDevice(options.device ?? model.device, 'generate');
  if (model.device !== device) {
    throw new Error(`diffvit.generate: option 'device' is '${device}' but the model's parameters are on '${model.device}' (move the model there first: model.to('${device}'))`);
  }
  const batchSize = options.batchSize ?? count;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`diffvit.generate: option 'batchSize' expected an integer >= 1, received ${String(options.batchSize)}`);
  const churn = options.churn ?? 0;
  if (options.cudaGraph) {
    if (backend.name !== 'cuda') {
      throw new Error(`diffvit.generate: option 'cudaGraph' needs a CUDA device, but the sampling runs on '${device}' (put the model on 'cuda': model.to('cuda'))`);
    }
    if (sampler === 'heun' && churn > 0) {
      throw new Error(`diffvit.generate: option 'cudaGraph' needs a deterministic sampler, but Heun with churn ${churn} draws new noise at every step from seeds and counters that a CUDA graph would freeze (use churn 0, or cudaGraph: false)`);
    }
  }
  if (options.labels) checkLabels(options.labels, c.num_classes);
  const g = new Generator(options.seed ?? 0);
  const guidance = options.labels || given || options.guide ? options.guidance : 1; // nothing to guide towards
  const steps = options.steps ?? (sampler === 'ddim' ? 50 : 18);
  const sigmas = sampler === 'ddim' ? ddimSigmas(steps, options.sigmaMin, options.sigmaMax) : edmSigmas(steps, options.sigmaMin, options.sigmaMax, options.rho);
  const run = (net: GuidedNetwork, latents: Tensor, onStep?: StepCallback): Tensor =>
    sampler === 'heun' ? heunSampler(net, latents, sigmas, { churn, generator: g }, onStep)
      : sampler === 'euler' ? eulerSampler(net, latents, sigmas, onStep)
      : sampler === 'dpmpp2m' ? dpmSolver2M(net, latents, sigmas, onStep)
      : ddimSampler(net, latents, sigmas, onStep);
  const cond = (B: number, labels: Int32Array | null, context: Tensor | null) =>
    new GuidedNetwork(model, [B, ...shape.slice(1)], { labels, context, guidance, guidanceInterval: options.guidanceInterval, guide: options.guide });

  // The context on the sampling device (a copy when it was elsewhere); a context model sampled
  // without one: the empty (all-zero) context, i.e. unconditional.
  const context = given ? noGrad(() => to(given, device)) : c.context_dim ? zeros([count, c.context_len, c.context_dim], { device }) : null;
  const ownsContext = context !== given;
  const toDispose: (Tensor | GuidedNetwork | null)[] = ownsContext ? [context] : [];
  // Disposed first: destroying a graph waits for its queued replays.
  const graphs: CudaGraph<Tensor>[] = [];
  try {
    if (batchSize >= count) {
      // One batch: everything on the latents' device; the images come back to the host once, at the end.
      const net = cond(count, options.labels ?? null, context);
      toDispose.push(net);
      const latents = randn(shape, { generator: g, device });
      toDispose.push(latents);
      const x = run(net, latents, options.onStep && ((i, n, s) => options.onStep!(i, n, s, 0)));
      const images = Float64Array.from(x.data());
      x.dispose();
      return { images, shape };
    }
    return batched(count, batchSize);
  } finally {
    for (const graph of graphs) graph.dispose();
    for (const t of toDispose) t?.dispose();
  }

  /** Batches of batchSize images over one draw of every latent, gathered on the device, read once. */
  function batched(total: number, B: number): { images: Float64Array; shape: number[] } {
    const latents = randn(shape, { generator: g, device });
    toDispose.push(latents);
    const out = Tensor.empty(shape, 'float32', device);
    toDispose.push(out);
    const N = sigmas.length - 1;
    let captured: { net: GuidedNetwork; latents: Tensor; graph: CudaGraph<Tensor> } | null = null;
    for (let b = 0, start = 0; start < total; b++, start += B) {
      const n = Math.min(B, total - start);
      const onStep = options.onStep && ((i: number, steps: number, s: number) => options.onStep!(i, steps, s, b));
      noGrad(() => {
        const lat = slice(latents, 0, start, start + n);
        const labels = options.labels ? options.labels.subarray(start, start + n) : null;
        const ctx = context ? slice(context, 0, start, start + n) : null;
        const dst = slice(out, 0, start, start + n);
        try {
          if (captured) {
            // A replay: the next batch's inputs written in place into the captured tensors.
            copy_(captured.latents, lat);
            captured.net.setConditioning({ labels, context: ctx });
            captured.graph.replay();
            copy_(dst, captured.graph.result);
            options.onStep?.(N, N, sigmas[N], b);
          } else if (options.cudaGraph && start + 2 * B <= total) {
            // (captured only when a further batch of this size will replay it)
            // The graph's inputs: copies this call owns (replays write the next batches into them).
            const capturedLatents = keep(clone(lat));
            toDispose.push(capturedLatents);
            const capturedContext = ctx ? keep(clone(ctx)) : null;
            toDispose.push(capturedContext);
            const net = cond(n, labels, capturedContext);
            toDispose.push(net);
            // This batch runs eagerly (the warm-up: the allocator's blocks, the GEMM plans), then is captured.
            const x = run(net, capturedLatents, onStep);
            copy_(dst, x);
            x.dispose();
            const graph = cudaGraph(() => run(net, capturedLatents), { warmup: 0 });
            graphs.push(graph);
            keep(graph.result);
            toDispose.push(graph.result);
            captured = { net, latents: capturedLatents, graph };
          } else {
            const net = cond(n, labels, ctx);
            try {
              const x = run(net, lat, onStep);
              copy_(dst, x);
              x.dispose();
            } finally {
              net.dispose();
            }
          }
        } finally {
          for (const t of [lat, ctx, dst]) t?.dispose();
        }
      });
    }
    return { images: Float64Array.from(out.data()), shape };
  }
}
