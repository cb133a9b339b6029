/**
 * A small CNN that recognises the four `shapes` classes, built from diffvit's own ops. It scores
 * class-conditional samples (accuracy of the requested class) and provides the feature space for a
 * Fréchet distance against real shapes (`diffvit eval shapes`).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import { ShapesDataset } from '../data/dataset.js';
import { BatchSampler } from '../data/loader.js';
import { tensor } from '../ops/creation.js';
import { log, mul, relu } from '../ops/elementwise.js';
import { mean, sum } from '../ops/reduce.js';
import { softmax } from '../ops/norm.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { readSafetensors, writeSafetensors } from '../models/safetensors.js';
import { AdamW } from '../train/optim.js';
import { backward, noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export const CLASSIFIER_FEATURES = 64;

export class ShapesClassifier extends Module {
  readonly convs: Conv2d[];
  readonly head: Linear;
  constructor(seed = 0, numClasses = 4) {
    super();
    const g = new Generator(seed);
    const widths = [3, 16, 32, 64, CLASSIFIER_FEATURES];
    this.convs = widths.slice(1).map((w, i) => this.child(`conv${i}`, new Conv2d(widths[i], w, 3, g, i === 0 ? 1 : 2, 1)));
    this.head = this.child('head', new Linear(CLASSIFIER_FEATURES, numClasses, g));
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

/** Trains on real shapes drawn from `seed` (disjoint from the diffusion model's default stream). */
export function trainShapesClassifier(options: { steps?: number; batch?: number; seed?: number; onStep?: (step: number, loss: number) => void } = {}): ShapesClassifier {
  const steps = options.steps ?? 300, B = options.batch ?? 64, seed = options.seed ?? 1000;
  const model = new ShapesClassifier(seed);
  const data = new BatchSampler(new ShapesDataset(seed, 1_000_000), { batchSize: B, seed, hflip: true });
  const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
  for (let step = 0; step < steps; step++) {
    const batch = data.batch(step);
    const loss = scope(() => {
      const x = tensor(batch.images, [B, 3, 32, 32]);
      const onehot = new Float32Array(B * 4);
      batch.labels.forEach((l, i) => (onehot[i * 4 + l] = 1));
      // cross-entropy: −mean_i log softmax(logits_i)[label_i]
      const ce = mul(sum(mul(log(softmax(model.forward(x), -1)), tensor(onehot, [B, 4])), -1), -1);
      const l = mean(ce);
      backward(l);
      return l.item();
    });
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
