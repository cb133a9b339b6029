/**
 * A small CNN that recognises the four `shapes` classes, built from diffvit's own ops. It scores
 * class-conditional samples (accuracy of the requested class) and provides the feature space for a
 * Fréchet distance against real shapes (`diffvit eval shapes`).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import { ShapesDataset } from '../data/dataset.js';
import { BatchSampler } from '../data/loader.js';
import { DataRng } from '../data/rng.js';
import { randn, tensor } from '../ops/creation.js';
import { add, exp, log, mul, relu, sub } from '../ops/elementwise.js';
import { mean, sum } from '../ops/reduce.js';
import { fillConstant, normal } from '../nn/init.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { readSafetensors, writeSafetensors } from '../models/safetensors.js';
import { AdamW } from '../train/optim.js';
import { noGrad } from '../tensor/autograd.js';
import { backward } from '../ops/backward.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export const CLASSIFIER_FEATURES = 64;
/** Bumped when the classifier's definition or training changes (it names the cached weights file). */
export const CLASSIFIER_VERSION = 2;
export const CLASSIFIER_STEPS = 2500;

export class ShapesClassifier extends Module {
  readonly convs: Conv2d[];
  readonly head: Linear;
  constructor(seed = 0, numClasses = 4) {
    super();
    const g = new Generator(seed);
    const widths = [3, 16, 32, 64, CLASSIFIER_FEATURES];
    this.convs = widths.slice(1).map((w, i) => this.child(`conv${i}`, new Conv2d(widths[i], w, 3, g, i === 0 ? 1 : 2, 1)));
    this.head = this.child('head', new Linear(CLASSIFIER_FEATURES, numClasses, g));
    // He initialisation for the ReLU stack: torch's default shrinks activations ~2.5× per layer,
    // and the classifier then sat at chance for hundreds of steps.
    for (const c of this.convs) {
      const [, cin, kh, kw] = c.weight.shape;
      normal(c.weight, 0, Math.sqrt(2 / (cin * kh * kw)), g);
      if (c.bias) fillConstant(c.bias, 0);
    }
  }

  /** x: (B, 3, 32, 32) -> pooled features (B, 64). */
  features(x: Tensor): Tensor {
    let h = x;
    for (const c of this.convs) h = relu(c.forward(h));
    return mean(h, [2, 3]);
  }

  /** x: (B, 3, 32, 32) -> logits (B, classes). */
  forward(x: Tensor): Tensor {
    return this.head.forward(this.features(x));
  }
}

/**
 * mean_i (logsumexp(logits_i) − logits_i[label_i]) for logits (B, K), shifted by each row's max
 * (a constant: the value and gradient do not depend on it) so a confident row cannot overflow.
 */
function crossEntropy(logits: Tensor, labels: Int32Array): Tensor {
  const [B, K] = logits.shape;
  const values = logits.data();
  const rowMax = Float32Array.from({ length: B }, (_, i) => Math.max(...values.subarray(i * K, (i + 1) * K)));
  const onehot = new Float32Array(B * K);
  labels.forEach((l, i) => (onehot[i * K + l] = 1));
  const z = sub(logits, tensor(rowMax, [B, 1]));
  return mean(sub(log(sum(exp(z), -1)), sum(mul(z, tensor(onehot, [B, K])), -1)));
}

/** Trains on real shapes drawn from `seed` (disjoint from the diffusion model's default stream). */
export function trainShapesClassifier(options: { steps?: number; batch?: number; seed?: number; onStep?: (step: number, loss: number) => void } = {}): ShapesClassifier {
  const steps = options.steps ?? CLASSIFIER_STEPS, B = options.batch ?? 64, seed = options.seed ?? 1000;
  const model = new ShapesClassifier(seed);
  const data = new BatchSampler(new ShapesDataset(seed, 1_000_000), { batchSize: B, seed, hflip: true });
  const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
  const noise = new Generator(seed + 1), noiseRng = new DataRng(seed + 2, 0);
  for (let step = 0; step < steps; step++) {
    const batch = data.batch(step);
    const loss = scope(() => {
      // Pixel noise of a random strength per image (std up to 0.3): samples carry grain and
      // small artefacts, and the shape, not the texture, is what the classifier should read.
      const strength = tensor(Float32Array.from({ length: B }, () => noiseRng.uniform(0, 0.3)), [B, 1, 1, 1]);
      const x = add(tensor(batch.images, [B, 3, 32, 32]), mul(randn([B, 3, 32, 32], { generator: noise }), strength));
      const l = crossEntropy(model.forward(x), batch.labels);
      backward(l);
      return l.item();
    });
    opt.lr = 0.5 * 3e-3 * (1 + Math.cos((Math.PI * step) / steps)); // cosine decay: a settled end point
    opt.update();
    model.zeroGrad();
    options.onStep?.(step + 1, loss);
  }
  opt.dispose();
  return model.eval();
}

/** Predicted classes and features of images (N, 3, 32, 32) in [-1, 1], in batches. */
export function classify(model: ShapesClassifier, images: Float32Array | Float64Array, count: number, batch = 256): { predictions: Int32Array; features: Float32Array } {
  const predictions = new Int32Array(count), features = new Float32Array(count * CLASSIFIER_FEATURES);
  const per = 3 * 32 * 32;
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    noGrad(() => scope(() => {
      const x = tensor(Float32Array.from(images.subarray(start * per, (start + n) * per)), [n, 3, 32, 32]);
      const f = model.features(x);
      const logits = model.head.forward(f).data();
      features.set(f.data(), start * CLASSIFIER_FEATURES);
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let k = 1; k < 4; k++) if (logits[i * 4 + k] > logits[i * 4 + best]) best = k;
        predictions[start + i] = best;
      }
    }));
  }
  return { predictions, features };
}

/** Loads the classifier from `path`, or trains one and saves it there. */
export function loadOrTrainClassifier(path: string, onStep?: (step: number, loss: number) => void): ShapesClassifier {
  const model = new ShapesClassifier();
  if (existsSync(path)) {
    const { tensors } = readSafetensors(path);
    model.loadStateDict(tensors);
    for (const t of tensors.values()) t.dispose();
    return model.eval();
  }
  model.dispose();
  const trained = trainShapesClassifier({ onStep });
  mkdirSync(dirname(path), { recursive: true });
  writeSafetensors(path, trained.stateDict(), { format: 'diffvit-shapes-classifier' });
  return trained;
}
