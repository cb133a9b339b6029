/**
 * `diffvit eval shapes`: how good are a checkpoint's class-conditional samples of the built-in
 * shapes? A small CNN (trained once and cached) reports the accuracy of the requested class and the
 * Fréchet distance between sample and real-image features (with a real-vs-real baseline for scale).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { ShapesDataset } from '../data/dataset.js';
import { generate, SAMPLERS, type SamplerName } from '../diffusion/sample.js';
import { CLASSIFIER_FEATURES, CLASSIFIER_STEPS, CLASSIFIER_VERSION, classify, loadOrTrainClassifier } from '../eval/shapes_classifier.js';
import { featureStats, frechetDistance } from '../eval/frechet.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { guidanceIntervalOption } from './guidance_interval.js';
import { EVAL_HELP } from './help.js';
import { ProgressBar } from './progress.js';

export interface ShapesEvaluation {
  accuracy: number;
  perClassAccuracy: number[];
  /** The classifier's accuracy on the real reference shapes: the ceiling of `accuracy`. */
  realAccuracy: number;
  frechet: number;
  frechetRealVsReal: number;
  samples: number;
  guidance: number;
  /** The noise levels lo < σ <= hi that were guided (null: every level). */
  guidanceInterval: readonly [number, number] | null;
}

export interface ShapesEvalOptions {
  perClass?: number;
  guidance?: number;
  sampler?: SamplerName;
  steps?: number;
  /** Heun's S_churn (0: deterministic). */
  churn?: number;
  /** Guide only at lo < σ <= hi. */
  guidanceInterval?: readonly [number, number];
  real?: number;
  classifierPath?: string;
  seed?: number;
}

export function evaluateShapes(model: DiffusionViT, options: ShapesEvalOptions = {}): ShapesEvaluation {
  const perClass = options.perClass ?? 64, guidance = options.guidance ?? 2, realCount = options.real ?? 1000;
  const classifierPath = options.classifierPath ?? join(homedir(), '.cache', 'diffvit', `shapes-classifier-v${CLASSIFIER_VERSION}.safetensors`);
  const classifierBar = new ProgressBar(CLASSIFIER_STEPS, 'classifier (first run only)');
  const classifier = loadOrTrainClassifier(classifierPath, (step, loss) => classifierBar.update(step, { loss: loss.toFixed(3) }));
  const numClasses = model.config.num_classes;
  if (numClasses !== 4) throw new Error(`diffvit eval shapes: expected a class-conditional model with 4 classes, the checkpoint has num_classes ${numClasses}`);
  const labels = Int32Array.from({ length: perClass * numClasses }, (_, i) => i % numClasses);
  const sampler = options.sampler ?? 'heun';
  const steps = options.steps ?? (sampler === 'ddim' ? 50 : 18);
  const bar = new ProgressBar(steps, `sample ${labels.length} images`);
  const { images } = generate(model, { labels, guidance, sampler, steps, churn: options.churn, guidanceInterval: options.guidanceInterval, seed: options.seed ?? 12345, onStep: (i) => bar.update(i) });
  const samples = classify(classifier, images, labels.length);
  const correct = new Array(numClasses).fill(0);
  labels.forEach((l, i) => (correct[l] += samples.predictions[i] === l ? 1 : 0));
  // real references: two disjoint sets of held-out shapes (seed 2000): `realCount` for the
  // statistics, then at least as many as there are samples for the real-vs-real baseline
  const total = realCount + Math.max(realCount, labels.length);
  const real = new ShapesDataset(2000, total);
  const pixels = new Float32Array(total * 3072);
  const realLabels = new Int32Array(total);
  for (let i = 0; i < total; i++) {
    const example = real.get(i);
    pixels.set(example.pixels, i * 3072);
    realLabels[i] = example.label;
  }
  const realClassified = classify(classifier, pixels, total);
  const realFeatures = realClassified.features;
  const realAccuracy = realLabels.reduce((n, l, i) => n + (realClassified.predictions[i] === l ? 1 : 0), 0) / realLabels.length;
  if (realAccuracy < 0.9) {
    classifier.dispose();
    throw new Error(`diffvit eval shapes: the classifier in ${classifierPath} recognises only ${(100 * realAccuracy).toFixed(1)}% of real shapes (expected >= 90%); delete the file to train a new one`);
  }
  const refStats = featureStats(realFeatures.subarray(0, realCount * CLASSIFIER_FEATURES), realCount, CLASSIFIER_FEATURES);
  const baseline = featureStats(realFeatures.subarray(realCount * CLASSIFIER_FEATURES, realCount * CLASSIFIER_FEATURES + labels.length * CLASSIFIER_FEATURES), labels.length, CLASSIFIER_FEATURES);
  const sampleStats = featureStats(samples.features, labels.length, CLASSIFIER_FEATURES);
  classifier.dispose();
  return {
    accuracy: correct.reduce((a, b) => a + b, 0) / labels.length,
    perClassAccuracy: correct.map((c) => c / perClass),
    realAccuracy,
    frechet: frechetDistance(sampleStats, refStats),
    frechetRealVsReal: frechetDistance(baseline, refStats),
    samples: labels.length,
    guidance,
    guidanceInterval: options.guidanceInterval ?? null,
  };
}

export async function evalCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === '-h' || what === '--help' || what === undefined) {
    console.log(EVAL_HELP);
    return what === undefined ? 2 : 0;
  }
  if (what === 'fid') {
    const { fidCommand } = await import('./fid.js');
    return fidCommand(rest);
  }
  if (what !== 'shapes') throw new Error(`diffvit eval: unknown evaluation '${what}' (available: shapes, fid)`);
  const { values } = parseArgs({
    args: rest,
    options: {
      checkpoint: { type: 'string' }, 'per-class': { type: 'string' }, guidance: { type: 'string' }, 'guidance-interval': { type: 'string' }, steps: { type: 'string' },
      sampler: { type: 'string' }, churn: { type: 'string' },
      real: { type: 'string' }, classifier: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(EVAL_HELP);
    return 0;
  }
  if (!values.checkpoint) throw new Error('diffvit eval shapes: --checkpoint FILE is required');
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const { model, extra } = loadCheckpoint(values.checkpoint);
  for (const t of extra.values()) t.dispose();
  const sampler = values.sampler as SamplerName | undefined;
  if (sampler !== undefined && !SAMPLERS.includes(sampler)) throw new Error(`diffvit eval shapes: --sampler expected one of ${SAMPLERS.join(', ')}, received '${sampler}'`);
  const r = evaluateShapes(model, { perClass: num(values['per-class']), guidance: num(values.guidance), guidanceInterval: guidanceIntervalOption('eval shapes', values['guidance-interval']), sampler, steps: num(values.steps), churn: num(values.churn), real: num(values.real), classifierPath: values.classifier });
  model.dispose();
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
  } else {
    console.log(`class accuracy   ${(100 * r.accuracy).toFixed(1)}%  (per class: ${r.perClassAccuracy.map((a) => (100 * a).toFixed(0) + '%').join(', ')}; ${r.samples} samples, guidance ${r.guidance}${r.guidanceInterval ? ` at ${r.guidanceInterval[0]} < sigma <= ${r.guidanceInterval[1]}` : ''}; the classifier on real shapes: ${(100 * r.realAccuracy).toFixed(1)}%)`);
    console.log(`Fréchet distance ${r.frechet.toFixed(3)}  (classifier features; real vs real: ${r.frechetRealVsReal.toFixed(3)})`);
  }
  return 0;
}
