/**
 * The EDM training loop: AdamW with warm-up, gradient clipping, a NaN/Inf guard, EMA weights,
 * label and context dropout for classifier-free guidance, horizontal flips, and checkpoints that resume the
 * same run bit for bit (weights, optimiser moments, EMA, RNG stream position, data position).
 */
import { resolveDevice } from '../backend/backend.js';
import { graph as cudaGraph, type CudaGraph } from '../cuda.js';
import { createDataset } from '../data/dataset.js';
import { type Batch, BatchSampler } from '../data/loader.js';
import { EDMDenoiser, edmLoss, edmNoisedLoss, type ModelGuidanceTarget } from '../diffusion/edm.js';
import { full, tensor } from '../ops/creation.js';
import { edmTrainingNoise } from '../ops/edm.js';
import { adamwUpdateControlled, emaUpdateControlled, STEP_CONTROL, trainStepControl } from '../ops/optim.js';
import { assign_, axpby_, copy_ } from '../ops/inplace.js';
import { sumSquares } from '../ops/reduce.js';
import { clone, stack } from '../ops/shape.js';
import { noGrad } from '../tensor/autograd.js';
import { readCheckpointModel } from '../models/checkpoint.js';
import { fullConfig } from '../models/configs.js';
import { readSafetensorsValues, writeSafetensors } from '../models/safetensors.js';
import { closeSafetensors, openSafetensors } from '../models/safetensors_header.js';
import { DiffusionViT, IUViT } from '../models/diffusion_vit.js';
import { disposeTokenMask, drawTokenMask, keptTokens, tokenMaskIndices, type TokenMask } from '../models/token_mask.js';
import { backward } from '../ops/backward.js';
import { Generator } from '../tensor/random.js';
import { autocast, getMatmulPrecision } from '../tensor/autocast.js';
import { keep, scope } from '../tensor/scope.js';
import { range } from '../profiler/range.js';
import { Tensor } from '../tensor/tensor.js';
import { EMA } from './ema.js';
import { AdamW } from './optim.js';
import { MODEL_GUIDANCE_RAMP, type TrainConfig } from './config.js';
import { cooldownStart, LR_SCHEDULES, learningRate } from './schedule.js';

export { DEFAULT_TRAIN_CONFIG, type TrainConfig } from './config.js';

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  skipped: boolean;
}

/** A whole training step captured in a CUDA graph and what it reads (Trainer with cudaGraph). */
interface CapturedStep {
  /** The captured input tensors: each step writes its batch and draws its noise into them. */
  y: Tensor;
  labels: Tensor | null;
  context: Tensor | null;
  noise: { sigmas: Tensor; cNoise: Tensor; xNoisy: Tensor; xIn: Tensor };
  /** The token mask's index tensors (made at the first masked step): each masked step writes its mask into them. */
  mask: TokenMask | null;
  /** Whether `graph` was captured for masked steps (the switch to full steps captures anew). */
  maskedGraph: boolean;
  /** Model guidance's per-image w (written every step) and null labels, or null. */
  modelGuidance: ModelGuidanceTarget | null;
  /** The step's control block (STEP_CONTROL): the scalars the eager step passes as arguments. */
  control: Tensor;
  /**
   * Captured at the first step: forward, loss, backward, the clipping and NaN/Inf decision, AdamW
   * and the EMA. Its result is the step's [loss, sum of squared gradients], rewritten by every replay.
   */
  graph: CudaGraph<{ stats: Tensor; grads: Tensor[] }> | null;
}

/** Destroys a captured step and its result, which lives outside every scope (replays rewrite it). */
function disposeGraph(graph: NonNullable<CapturedStep['graph']>): void {
  graph.dispose();
  graph.result.stats.dispose();
}

/** What a step's forward and backward leave for the update. */
interface StepMetrics {
  lossValue: number;
  gradNorm: number;
  finite: boolean;
  grads: Tensor[];
}

interface TrainerState {
  step: number;
  imagesSeen: number;
  nonFinite: number;
  generator: { seed: number; counter: number };
  adamStep: number;
}

export class Trainer {
  readonly model: DiffusionViT;
  readonly denoiser: EDMDenoiser;
  readonly optimizer: AdamW;
  readonly ema: EMA;
  readonly sampler: BatchSampler;
  readonly generator: Generator;
  /** The canonical device the run executes on ('cpu', 'cuda:0', ...): config.device. */
  readonly device: string;
  private captured: CapturedStep | null = null;
  /** A masked run's first full step, once setSteps has changed the total after it (then it stays there). */
  private maskEnd: number | null = null;
  /** The cooldown's first step, once setSteps has changed the total after it (likewise). */
  private cooldownFrom: number | null = null;
  step = 0;
  imagesSeen = 0;
  nonFinite = 0;

  /** The run's options; matmulPrecision always set (a config without one: the default precision now). */
  readonly config: TrainConfig;

  constructor(config: TrainConfig, model?: DiffusionViT) {
    // The run's GEMM precision lives in its config (and so in its checkpoints), not in process state.
    this.config = config = { ...config, matmulPrecision: config.matmulPrecision ?? getMatmulPrecision() };
    if (config.lrSchedule !== undefined && !LR_SCHEDULES.includes(config.lrSchedule)) {
      throw new Error(`diffvit.train: lrSchedule expected ${LR_SCHEDULES.map((s) => `'${s}'`).join(' or ')}, received ${JSON.stringify(config.lrSchedule)}`);
    }
    const maskRatio = config.maskRatio ?? 0, maskUntil = config.maskUntil ?? 1;
    if (!(maskRatio >= 0 && maskRatio < 1)) throw new Error(`diffvit.train: maskRatio expected a fraction in [0, 1) of the patch tokens to drop, received ${config.maskRatio}`);
    const modelGuidance = config.modelGuidance ?? 0;
    if (!(modelGuidance >= 0 && modelGuidance < 1)) throw new Error(`diffvit.train: modelGuidance expected a weight w in [0, 1) (guidance scale 1/(1 − w)), received ${config.modelGuidance}`);
    if (!(maskUntil >= 0 && maskUntil <= 1)) throw new Error(`diffvit.train: maskUntil expected a fraction in [0, 1] of the run's steps, received ${config.maskUntil}`);
    if (config.cooldownFraction !== undefined && !(config.cooldownFraction > 0 && config.cooldownFraction <= 1)) {
      throw new Error(`diffvit.train: cooldownFraction expected a fraction in (0, 1] of the run's steps, received ${config.cooldownFraction}`);
    }
    // The device: the config's, else a given model's, else the host; cudaGraph needs a CUDA one.
    const { device, backend } = resolveDevice(config.device ?? model?.device ?? 'cpu', 'train');
    if (config.cudaGraph && backend.name !== 'cuda') {
      throw new Error(`diffvit.train: cudaGraph captures the training step in a CUDA graph and needs a CUDA device, but the run's device is '${device}' (set device: 'cuda')`);
    }
    this.device = device;
    const modelConfig = model?.config ?? fullConfig(config.model);
    if (maskRatio > 0 && (modelConfig.arch === 'unet' || modelConfig.rope)) {
      throw new Error(`diffvit.train: maskRatio > 0 drops patch tokens and needs an IU-ViT/ASCEND model without rope, received ${modelConfig.arch === 'unet' ? "arch 'unet'" : 'a rope model'}`);
    }
    this.model = model ? model.to(device) : new DiffusionViT(config.model, { seed: config.seed, device });
    this.denoiser = new EDMDenoiser(this.model);
    const params = this.model.parameters();
    this.optimizer = new AdamW(params, { lr: config.lr, weightDecay: config.weightDecay });
    this.ema = new EMA(params, config.emaHalfLifeImages, config.emaRampup ?? 0.05);
    const dataset = createDataset(config.data);
    const mc = this.model.config;
    if (dataset.imageSize !== mc.img_size || dataset.channels !== mc.in_chans) {
      throw new Error(`diffvit.train: the data has ${dataset.channels}x${dataset.imageSize}x${dataset.imageSize} images but the model expects ${mc.in_chans}x${mc.img_size}x${mc.img_size}`);
    }
    if (modelGuidance > 0 && !mc.num_classes) {
      throw new Error('diffvit.train: modelGuidance needs a class-conditional model (num_classes > 0): its target mixes in the null-label denoiser');
    }
    if (mc.num_classes && dataset.numClasses !== mc.num_classes) {
      throw new Error(`diffvit.train: the model has num_classes ${mc.num_classes} but the data has ${dataset.numClasses} classes`);
    }
    if (mc.context_dim && (dataset.contextDim !== mc.context_dim || dataset.contextLen !== mc.context_len)) {
      const has = dataset.contextDim ? `contexts of ${dataset.contextLen} tokens x ${dataset.contextDim} features` : 'no context (use a captions dataset)';
      throw new Error(`diffvit.train: the model has context_len ${mc.context_len}, context_dim ${mc.context_dim} but the data has ${has}`);
    }
    // Conditioning dropout (a pure function of (seed, position) in the sampler) trains the unconditional mode for guidance.
    const conditioned = mc.num_classes > 0 || mc.context_dim > 0;
    this.sampler = new BatchSampler(dataset, { batchSize: config.batchSize, seed: config.seed, hflip: config.hflip, labelDropout: conditioned ? config.labelDropout : 0 });
    this.generator = new Generator(config.seed + 1);
  }

  /**
   * Changes the run's length (`diffvit train --minutes` sizes it as it goes): the learning-rate
   * schedule and the checkpoints saved from now on follow the new total (the steps done: the run ends).
   */
  setSteps(total: number): void {
    if (!Number.isInteger(total) || total < this.step) {
      throw new Error(`diffvit.Trainer.setSteps: total expected an integer of at least the ${this.step} steps done, received ${total}`);
    }
    // Masked steps that have ended stay ended: the switch to full steps keeps its step, and maskUntil
    // becomes the fraction of the new total it is at (so a resumed run switches there too).
    const c = this.config, end = this.maskEnd ?? Math.round((c.maskUntil ?? 1) * c.steps);
    if ((c.maskRatio ?? 0) > 0 && end <= this.step) {
      this.maskEnd = end;
      c.maskUntil = end / total;
    }
    // So does a cooldown that has begun: its rate decays from where it began to the new end.
    const from = this.cooldownFrom ?? cooldownStart(c.steps, c.warmupSteps, c.cooldownFraction);
    if (c.lrSchedule === 'cooldown' && from <= this.step && total > from) {
      this.cooldownFrom = from;
      c.cooldownFraction = (total - from) / total;
    }
    c.steps = total;
  }

  /**
   * One optimiser step (or a skipped one when the gradients are not finite). `batch` must be
   * batch number `step` of the run (a PrefetchLoader provides it); by default it is loaded here.
   *
   * Profiler ranges (lib/profiler: NVTX for nsys, and the built-in profiler's trace): `train_step`
   * around the whole step, inside it `data` (only when the batch is loaded here), `forward` (the
   * batch to tensors, the noise and the denoiser, the loss), `backward`, `metrics` (the gradient
   * norm and the step's one read of the loss and the norm to the host; on a device that queues
   * kernels this read is where the host waits for the forward and backward), `optimizer` (the
   * clipping and the AdamW update) and `ema`. With cudaGraph, `forward` holds the batch's write to
   * the device, the eager noise draw and the control block's write (and at the first step the
   * warm-up, the capture and its run), `graph_replay` the replay of the whole step (forward, loss,
   * backward, clipping, AdamW and EMA in one launch) and `metrics` the read of the loss and norm.
   */
  trainStep(batch?: Batch): StepResult {
    return range('train_step', () => this.runStep(batch ?? range('data', () => this.sampler.batch(this.step))));
  }

  private runStep(batch: Batch): StepResult {
    const c = this.config;
    const lr = learningRate(this.step, c.lr, c.warmupSteps, c.lrSchedule ?? 'constant', c.steps, c.cooldownFraction);
    if (c.cudaGraph) return this.graphedStep(batch, lr);
    const device = this.device;
    // Every GEMM of the step (forward and backward) at the run's precision.
    const result = autocast(c.matmulPrecision, () => scope(() => {
      const loss = range('forward', () => {
        const mc = this.model.config;
        // The host batch goes to the run's device here, once per step.
        const y = tensor(batch.images, [c.batchSize, mc.in_chans, mc.img_size, mc.img_size], { device });
        const labels = mc.num_classes ? tensor(batch.labels, [c.batchSize], { dtype: 'int32', device }) : null;
        let context: Tensor | null = null;
        if (mc.context_dim) {
          this.checkContext(batch);
          context = tensor(batch.context!, [c.batchSize, mc.context_len, mc.context_dim], { device }); // (B, L, C)
        }
        const weights = this.modelGuidanceWeights(batch.labels);
        const modelGuidance = weights && { weight: tensor(weights, [c.batchSize], { device }), nullLabels: full([c.batchSize], mc.num_classes, { dtype: 'int32', device }) };
        return edmLoss(this.denoiser, y, labels, { generator: this.generator, P_mean: c.P_mean, P_std: c.P_std, context, mask: this.tokenMask(), modelGuidance });
      });
      range('backward', () => backward(loss));
      return this.metrics(loss);
    }));
    let skipped = false;
    if (!result.finite) {
      skipped = true;
      this.nonFinite++;
      if (this.nonFinite > c.maxNonFinite) {
        this.model.zeroGrad();
        this.tooManyNonFinite();
      }
    } else {
      range('optimizer', () => {
        if (c.gradClip !== null && result.gradNorm > c.gradClip) {
          const scale = c.gradClip / (result.gradNorm + 1e-6);
          for (const g of result.grads) axpby_(g, g, scale, 0);
        }
        this.optimizer.lr = lr;
        this.optimizer.update();
      });
      this.imagesSeen += c.batchSize;
      range('ema', () => this.ema.update(c.batchSize, this.imagesSeen));
    }
    this.model.zeroGrad();
    this.step++;
    return { step: this.step, loss: result.lossValue, gradNorm: result.gradNorm, lr, skipped };
  }

  /** The first step of a run of `total` steps that sees every token (config.maskRatio until maskUntil of the run; 0 when none drops any). */
  private maskEndOf(total: number): number {
    const c = this.config;
    if (!((c.maskRatio ?? 0) > 0 && this.model instanceof IUViT)) return 0;
    return this.maskEnd ?? Math.round((c.maskUntil ?? 1) * total);
  }

  /** Whether step `step` of a run of `total` steps drops tokens. */
  private masked(step: number, total: number): boolean {
    return step < this.maskEndOf(total);
  }

  /** This step's token mask, or null (a step on every token). */
  private tokenMask(): TokenMask | null {
    const c = this.config;
    if (!this.masked(this.step, c.steps)) return null;
    return drawTokenMask(c.batchSize, (this.model as IUViT).nPatches, c.maskRatio!, c.seed, this.step, this.device);
  }

  /**
   * Model guidance's w for each image of a batch with these labels at this step (0 where the label
   * was dropped; ramped in over MODEL_GUIDANCE_RAMP of the run), or null without model guidance.
   */
  private modelGuidanceWeights(labels: Int32Array): Float32Array | null {
    const c = this.config, w = c.modelGuidance ?? 0;
    if (!(w > 0)) return null;
    const ramped = w * Math.min(1, this.step / Math.max(1, MODEL_GUIDANCE_RAMP * c.steps));
    return Float32Array.from(labels, (l) => (l === this.model.config.num_classes ? 0 : ramped));
  }

  /**
   * The cost of steps from..to-1 of a run of `total` steps relative to a full one each (`diffvit
   * train --minutes` sizes a masked run by it, so it is summed in closed form): a masked step does
   * the kept fraction of the token work plus about a tenth that does not shrink — data, optimiser,
   * EMA (measured: 0.55 of a full step at maskRatio 0.5 and 0.36 at 0.75 on iuvit-xs/4; this gives
   * 0.55 and 0.33). Model guidance's extra forward pass adds a third to the token work of every step.
   */
  relativeRunCost(from: number, to: number, total: number): number {
    const tokenWork = (this.config.modelGuidance ?? 0) > 0 ? 0.9 * (4 / 3) : 0.9;
    const maskedSteps = Math.max(0, Math.min(to, this.maskEndOf(total)) - from);
    const fullCost = (to - from - maskedSteps) * (0.1 + tokenWork);
    if (maskedSteps === 0) return fullCost;
    const tokens = (this.model as IUViT).nPatches;
    return fullCost + maskedSteps * (0.1 + tokenWork * keptTokens(tokens, this.config.maskRatio!) / tokens);
  }

  private tooManyNonFinite(): never {
    throw new Error(`diffvit.train: ${this.nonFinite} steps had a non-finite loss or gradient (limit ${this.config.maxNonFinite}); stopping at step ${this.step}. Lower the learning rate or enable gradient clipping.`);
  }

  private checkContext(batch: Batch): void {
    const c = this.config, mc = this.model.config;
    const n = c.batchSize * mc.context_len * mc.context_dim;
    if (batch.context?.length !== n) throw new Error(`diffvit.train: the model needs a batch context of ${c.batchSize}x${mc.context_len}x${mc.context_dim} = ${n} values, the batch has ${batch.context?.length ?? 'none'}`);
  }

  /**
   * The `metrics` range: the gradients, and the step's one read back to the host — the loss and the
   * squared gradient norm (one reduction over every parameter) side by side, for the metrics, the
   * clipping and the NaN/Inf guard.
   */
  private metrics(loss: Tensor): StepMetrics {
    return range('metrics', () => scope(() => {
      const grads = this.model.parameters().map((p) => p.grad).filter((g): g is Tensor => g !== null);
      const [lossValue, squaredNorm] = noGrad(() => stack([loss, sumSquares(grads)])).data();
      const gradNorm = Math.sqrt(squaredNorm);
      const finite = Number.isFinite(lossValue) && Number.isFinite(gradNorm);
      return { lossValue, gradNorm, finite, grads };
    }));
  }

  /**
   * The whole step through the CUDA graph (config.cudaGraph): the batch is written into the
   * captured inputs, the step's noise drawn eagerly into them (the same stream elements edmLoss
   * would take) and the control block written with what the eager step passes as arguments (the
   * AdamW scalars of this lr and step count, the EMA's β); then the graph — captured at the first
   * step after one eager warm-up run that updates nothing — is replayed: forward, loss, backward,
   * the clipping and NaN/Inf decision (on the device, as the eager step makes it on the host),
   * AdamW and the EMA in one launch. The step's one read brings back the loss and the gradient norm.
   */
  private graphedStep(batch: Batch, lr: number): StepResult {
    const c = this.config, mc = this.model.config, device = this.device;
    const B = c.batchSize, shape = [B, mc.in_chans, mc.img_size, mc.img_size];
    const s = (this.captured ??= noGrad(() => {
      const empty = (dims: number[], dtype: 'float32' | 'int32' = 'float32') => keep(Tensor.empty(dims, dtype, device));
      return {
        y: empty(shape),
        labels: mc.num_classes ? empty([B], 'int32') : null,
        context: mc.context_dim ? empty([B, mc.context_len, mc.context_dim]) : null,
        noise: { sigmas: empty([B]), cNoise: empty([B]), xNoisy: empty(shape), xIn: empty(shape) },
        control: empty([STEP_CONTROL.size]),
        mask: null,
        maskedGraph: false,
        modelGuidance: (c.modelGuidance ?? 0) > 0 ? { weight: empty([B]), nullLabels: keep(full([B], mc.num_classes, { dtype: 'int32', device })) } : null,
        graph: null,
      };
    }));
    // A masked step runs on the kept tokens: another graph than a full step's, so the switch
    // from masked to full steps (maskUntil) captures the step again.
    const masked = this.masked(this.step, c.steps);
    if (s.graph && s.maskedGraph !== masked) {
      disposeGraph(s.graph);
      s.graph = null;
    }
    let justCaptured = false;
    range('forward', () => {
      // The host batch into the captured inputs (one write each), then the step's EDM noise.
      if (batch.images.length !== s.y.size || (s.labels && batch.labels.length !== B)) {
        throw new Error(`diffvit.train: a batch of ${B} expected ${s.y.size} pixel values and ${B} labels, received ${batch.images.length} and ${batch.labels.length}`);
      }
      assign_(s.y, batch.images);
      if (s.labels) assign_(s.labels, batch.labels);
      if (s.context) {
        this.checkContext(batch);
        assign_(s.context, batch.context!);
      }
      edmTrainingNoise(s.y, this.generator, { P_mean: c.P_mean, P_std: c.P_std, sigmaData: this.denoiser.sigmaData, out: s.noise });
      if (masked) {
        // This step's mask (the eager step's) into the captured index tensors.
        const tokens = (this.model as IUViT).nPatches;
        const { kept, keep: keepRows, fill } = tokenMaskIndices(B, tokens, c.maskRatio!, c.seed, this.step);
        s.mask ??= { tokens, kept, keep: keep(Tensor.empty([B, kept], 'int32', device)), fill: keep(Tensor.empty([B, tokens], 'int32', device)) };
        assign_(s.mask.keep, keepRows);
        assign_(s.mask.fill, fill);
      }
      if (s.modelGuidance) assign_(s.modelGuidance.weight, this.modelGuidanceWeights(batch.labels)!);
      this.optimizer.lr = lr;
      const writeControl = (enabled: boolean) => {
        const { decay, stepSize, invSqrtBc2 } = this.optimizer.nextScalars();
        const beta = this.ema.beta(B, this.imagesSeen + B);
        const control = new Float32Array(STEP_CONTROL.size);
        control[STEP_CONTROL.enabled] = enabled ? 1 : 0;
        control[STEP_CONTROL.gradScale] = 1;
        control[STEP_CONTROL.decay] = decay;
        control[STEP_CONTROL.stepSize] = stepSize;
        control[STEP_CONTROL.invSqrtBc2] = invSqrtBc2;
        control[STEP_CONTROL.emaBeta] = beta;
        control[STEP_CONTROL.emaOneMinusBeta] = 1 - beta;
        assign_(s.control, control);
      };
      if (s.graph) {
        writeControl(true);
        return;
      }
      const params = this.model.parameters();
      const { expAvg, expAvgSq } = this.optimizer, shadow = this.ema.shadow;
      const step = () => autocast(c.matmulPrecision, () => scope(() => {
        // Gradients made fresh by this run (the warm-up's are dropped), never accumulated.
        this.model.zeroGrad();
        const loss = edmNoisedLoss(this.denoiser, s.noise, s.y, s.labels, { context: s.context, mask: masked ? s.mask : null, modelGuidance: s.modelGuidance });
        backward(loss);
        const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
        const stats = noGrad(() => stack([loss, sumSquares(grads)]));
        trainStepControl(stats, s.control, c.gradClip ?? null);
        // (the optimiser's betas and eps, as its eager update passes them)
        params.forEach((p, i) => p.grad && adamwUpdateControlled(p, p.grad, expAvg[i], expAvgSq[i], s.control, this.optimizer.options));
        params.forEach((p, i) => emaUpdateControlled(shadow[i], p, s.control));
        return { stats, grads };
      }));
      // The warm-up run (the kernels' first launches, the allocator's blocks) updates nothing.
      writeControl(false);
      const warm = step();
      warm.stats.dispose();
      this.model.zeroGrad();
      writeControl(true);
      // Captured, then run once by graph(): this step.
      s.graph = cudaGraph(step, { warmup: 0 });
      s.maskedGraph = masked;
      justCaptured = true;
      // Out of any scope the caller has open: every replay rewrites it (the gradients are kept already).
      keep(s.graph.result.stats);
    });
    const graph = s.graph!;
    // (the first step ran as graph()'s run of what it captured)
    if (!justCaptured) range('graph_replay', () => graph.replay());
    const [lossValue, squaredNorm] = range('metrics', () => graph.result.stats.data());
    const gradNorm = Math.sqrt(squaredNorm);
    const skipped = !(Number.isFinite(lossValue) && Number.isFinite(gradNorm));
    if (skipped) {
      this.nonFinite++;
      if (this.nonFinite > c.maxNonFinite) this.tooManyNonFinite();
    } else {
      // The graph applied AdamW and the EMA exactly when the host would have.
      this.optimizer.step++;
      this.imagesSeen += B;
    }
    this.step++;
    return { step: this.step, loss: lossValue, gradNorm, lr, skipped };
  }

  private state(): TrainerState {
    return { step: this.step, imagesSeen: this.imagesSeen, nonFinite: this.nonFinite, generator: this.generator.state(), adamStep: this.optimizer.step };
  }

  /** Checkpoint: EMA weights under the plain names (what sampling and the twin load), plus training state. */
  save(path: string): void {
    const extra = new Map<string, Tensor>();
    const names = [...this.model.stateDict().keys()];
    names.forEach((name, i) => {
      extra.set(`train.weights.${name}`, this.optimizer.params[i]);
      extra.set(`train.exp_avg.${name}`, this.optimizer.expAvg[i]);
      extra.set(`train.exp_avg_sq.${name}`, this.optimizer.expAvgSq[i]);
    });
    // The file's model entries are the EMA weights: swap them in for the write.
    const ema = new Map(names.map((n, i) => [n, this.ema.shadow[i]]));
    // Where the run executed is not part of it (see TrainConfig.device).
    const { device: _device, cudaGraph: _cudaGraph, ...run } = this.config;
    // Tensors on a device are read back to the host for the write.
    writeSafetensors(path, [...ema, ...extra], {
      format: 'diffvit',
      config: JSON.stringify(this.model.config),
      train_config: JSON.stringify(run),
      trainer: JSON.stringify(this.state()),
    });
  }

  /**
   * Continues the run saved in `path` exactly where it stopped (on `overrides.device`, default the
   * host). The file's tensors are read one at a time into the run's (bounded memory: the run plus
   * one tensor).
   */
  static resume(path: string, overrides: Partial<TrainConfig> = {}): Trainer {
    const file = openSafetensors(path);
    try {
      const { metadata } = file;
      if (!metadata.train_config || !metadata.trainer) {
        throw new Error(`diffvit.train: ${path} has no trainer state (it is a model-only checkpoint); cannot resume`);
      }
      const config = { ...(JSON.parse(metadata.train_config) as TrainConfig), ...overrides };
      const state = JSON.parse(metadata.trainer) as TrainerState;
      // The file's model entries are the EMA weights (see save).
      const model = readCheckpointModel(file, null);
      const params = model.stateDict(), names = [...params.keys()];
      // Every tensor of the trainer state is checked before the run is built.
      const problem = (key: string, shape: readonly number[]): string | null => {
        const entry = file.entries.get(key);
        if (!entry) return `lacks '${key}'`;
        if (entry.dtype.startsWith('I') || entry.shape.join() !== shape.join()) return `has ${entry.dtype} [${entry.shape.join(', ')}] for '${key}' (expected float [${shape.join(', ')}])`;
        return null;
      };
      for (const [name, p] of params) {
        for (const key of [`train.weights.${name}`, `train.exp_avg.${name}`, `train.exp_avg_sq.${name}`]) {
          const found = problem(key, p.shape);
          if (found) {
            model.dispose();
            throw new Error(`diffvit.train: ${path} ${found}; cannot resume`);
          }
        }
      }
      let trainer: Trainer;
      try {
        trainer = new Trainer(config, model);
      } catch (e) {
        model.dispose();
        throw e;
      }
      try {
        names.forEach((name, i) => {
          copy_(trainer.ema.shadow[i], trainer.model.parameters()[i]);
          assign_(trainer.optimizer.params[i], readSafetensorsValues(file, `train.weights.${name}`));
          assign_(trainer.optimizer.expAvg[i], readSafetensorsValues(file, `train.exp_avg.${name}`));
          assign_(trainer.optimizer.expAvgSq[i], readSafetensorsValues(file, `train.exp_avg_sq.${name}`));
        });
      } catch (e) {
        trainer.dispose();
        throw e;
      }
      trainer.step = state.step;
      trainer.imagesSeen = state.imagesSeen;
      trainer.nonFinite = state.nonFinite;
      trainer.generator.setState(state.generator);
      trainer.optimizer.step = state.adamStep;
      return trainer;
    } finally {
      closeSafetensors(file);
    }
  }

  /** Runs fn with the EMA weights loaded into the model (sampling), then restores the raw weights. */
  withEmaWeights<T>(fn: (model: DiffusionViT) => T): T {
    const params = this.model.parameters();
    const saved = noGrad(() => params.map((p) => clone(p)));
    params.forEach((p, i) => copy_(p, this.ema.shadow[i]));
    try {
      return fn(this.model);
    } finally {
      params.forEach((p, i) => copy_(p, saved[i]));
      for (const s of saved) s.dispose();
    }
  }

  dispose(): void {
    if (this.captured) {
      const { graph, y, labels, context, noise, control, mask, modelGuidance } = this.captured;
      if (graph) disposeGraph(graph);
      for (const t of [y, labels, context, control, ...Object.values(noise), modelGuidance?.weight, modelGuidance?.nullLabels]) t?.dispose();
      if (mask) disposeTokenMask(mask);
      this.captured = null;
    }
    this.optimizer.dispose();
    this.ema.dispose();
    this.model.dispose();
  }
}
