/** Training options and their defaults (no native code: the CLI's help reads them). */
import type { Device } from '../backend/backend.js';
import type { MatmulPrecision } from '../backend/kernels/gemm.js';
import type { DatasetSpec } from '../data/dataset.js';
import type { ModelConfig } from '../models/configs.js';
import type { LrSchedule } from './schedule.js';

export interface TrainConfig {
  model: ModelConfig | string;
  data: DatasetSpec;
  batchSize: number;
  /** Total optimiser steps of the run. */
  steps: number;
  lr: number;
  warmupSteps: number;
  /**
   * After the warm-up: 'constant' (EDM), 'cosine' (decays to 0 at the last step) or 'cooldown'
   * (constant, then linear to 0 over the last cooldownFraction). Older checkpoints: constant.
   */
  lrSchedule: LrSchedule;
  /**
   * The 'cooldown' schedule's share of the run (default COOLDOWN_FRACTION, a quarter). A run resized
   * after its decay has begun (`--minutes`) keeps the decay's first step and stores the fraction of
   * its new total the decay is.
   */
  cooldownFraction?: number;
  weightDecay: number;
  /** Global gradient-norm clip (null: off). */
  gradClip: number | null;
  /** EMA half-life in images (EDM: 500k for CIFAR-10 at batch 512). */
  emaHalfLifeImages: number;
  /**
   * EMA ramp-up: the half-life is at most this fraction of the images seen so far (EDM: 0.05).
   * Checkpoints from before the option: 0.05.
   */
  emaRampup: number;
  labelDropout: number;
  hflip: boolean;
  seed: number;
  /** Stop after this many skipped (non-finite) steps. */
  maxNonFinite: number;
  P_mean: number;
  P_std: number;
  /**
   * Masked-token training (IU-ViT/ASCEND without rope; lib/models/token_mask.ts): the fraction of
   * each image's patch tokens a step drops (0: off). The blocks run on the rest and the loss covers
   * the kept patches, so a step costs about 1 − maskRatio of a full one. Checkpoints from before
   * the option: 0.
   */
  maskRatio?: number;
  /**
   * Masking runs for this fraction of the run's steps; the rest train on every token, as sampling
   * sees them. A run resized after its switch (`--minutes`) keeps the switch's step and stores the
   * fraction of its new total that step is.
   */
  maskUntil?: number;
  /**
   * Model guidance (Tang et al. 2025; class-conditional models): w in [0, 1). A labelled image's
   * target becomes y + w·sg(D(x; σ, c) − D(x; σ, ∅)), so the network learns what classifier-free
   * guidance of scale 1/(1 − w) would sample, without an unconditional pass at sampling time. w
   * ramps in linearly over the first MODEL_GUIDANCE_RAMP of the run; a step costs one more forward
   * pass (no gradients). 0: off (checkpoints from before the option).
   */
  modelGuidance?: number;
  /**
   * Precision of the run's GEMMs: 'bf16' rounds matmul operands to bfloat16 with fp32
   * accumulation. The Trainer runs each step inside autocast(matmulPrecision), leaving the process
   * default (setMatmulPrecision) alone; `diffvit train` samples its grids at it too; a resumed
   * run keeps it. A config without it (checkpoints from before the option) gets the default
   * precision of the process that builds the Trainer, and records it.
   */
  matmulPrecision: MatmulPrecision;
  /**
   * Where the run executes: 'cpu', 'cuda' (= 'cuda:0'), ... Default: the device of the model given
   * to the Trainer, else 'cpu'. The model (a given one is moved there in place: Module.to), the
   * optimiser's moments and the EMA weights live there; each step writes its host batch there once
   * and reads back one pair of numbers (the loss and the gradient norm, for the metrics, the
   * clipping and the NaN/Inf guard). Where a run executes is not part of the run: checkpoints do
   * not record it (they are written from host copies), and a resumed run executes where its
   * resume says.
   */
  device?: Device;
  /**
   * CUDA device only (an error on any other device): capture the whole training step — forward,
   * loss, backward, gradient clipping, the NaN/Inf guard, AdamW and the EMA — in a CUDA graph (at the
   * first step, after one eager warm-up run that updates nothing) and replay it at every step. The
   * EDM noise for the step is drawn eagerly into the captured input tensors before each replay,
   * because seeds/counters are numbers frozen into a graph (σ, c_noise, the noisy and the scaled
   * inputs; the step's batch is written into the captured inputs too); the step's learning rate,
   * bias correction and EMA β reach the graph through a control block in device memory
   * (STEP_CONTROL, lib/ops/optim.ts). The gradients are the parameters' .grad tensors, owned by the
   * graph: every replay overwrites them. Losses and weights equal the eager run's. Not recorded in
   * checkpoints (like device).
   */
  cudaGraph?: boolean;
}

export const DEFAULT_TRAIN_CONFIG: Omit<TrainConfig, 'model' | 'data'> = {
  batchSize: 32,
  steps: 5600,
  lr: 1e-3,
  warmupSteps: 200,
  // The last quarter decays the rate to 0: +2.5 points of sample accuracy over a constant rate
  // at 7 200 steps, and less grain (docs/training-notes.md §7).
  lrSchedule: 'cooldown',
  weightDecay: 0,
  gradClip: 1.0,
  // A minutes-long run's raw weights swing from step to step (sample accuracy 55-77% where the
  // EMA's is 80-88%): average over the last ~25k images, not EDM's 5% of those seen.
  emaHalfLifeImages: 25_000,
  emaRampup: 0.25,
  labelDropout: 0.1,
  hflip: true,
  seed: 0,
  maxNonFinite: 20,
  // EDM's CIFAR-10 values are -1.2 and 1.2; a run of minutes needs more weight on the noise
  // levels where a sample's layout is decided (σ of about 2 to 20): docs/training-notes.md.
  P_mean: -0.3,
  P_std: 1.3,
  maskRatio: 0,
  // MaskDiT ends with unmasked steps; here they are the learning-rate cooldown's quarter.
  maskUntil: 0.75,
  modelGuidance: 0,
  matmulPrecision: 'float32',
};

/** The fraction of a run over which model guidance's w ramps in from 0 (the network first learns D(x; σ, c) at all). */
export const MODEL_GUIDANCE_RAMP = 0.25;
