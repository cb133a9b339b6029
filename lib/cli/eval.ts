/**
 * `diffvit eval shapes`: how good are a checkpoint's class-conditional samples of the built-in
 * shapes? A small CNN (trained once and cached) reports the accuracy of the requested class and the
 * Fréchet distance between sample and real-image features (with a real-vs-real baseline for scale).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

import { ShapesDataset } from '../data/dataset.js';
import { generate, SAMPLERS, type SamplerName } from '../diffusion/sample.js';
import { CLASSIFIER_FEATURES, CLASSIFIER_STEPS, CLASSIFIER_VERSION, classify, loadOrTrainClassifier } from '../eval/shapes_classifier.js';
import { featureStats, frechetDistance } from '../eval/frechet.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import type { DiffusionViT } from '../models/diffusion_vit.js';
import { checkpointConfig } from './checkpoint_header.js';
import { deviceOption } from './device.js';
import { DEFAULT_GUIDANCE } from './defaults.js';
import { guideOption } from './guide.js';
import { guidanceIntervalOption } from './guidance_interval.js';
import { cliHooks, didYouMean, type OptionSpec, parseOptions, usage } from './options.js';
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
  /** Whether the guidance was autoguidance (away from a guide model) rather than classifier-free. */
  autoguidance: boolean;
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
  /** Autoguidance: guide away from this weaker model instead of the unconditional one. */
  guide?: DiffusionViT | null;
  real?: number;
  classifierPath?: string;
  seed?: number;
}

export function evaluateShapes(model: DiffusionViT, options: ShapesEvalOptions = {}): ShapesEvaluation {
  const perClass = options.perClass ?? EVAL_SHAPES_OPTIONS['per-class'].default, guidance = options.guidance ?? DEFAULT_GUIDANCE;
  const realCount = options.real ?? EVAL_SHAPES_OPTIONS.real.default;
  const classifierPath = options.classifierPath ?? join(homedir(), '.cache', 'diffvit', `shapes-classifier-v${CLASSIFIER_VERSION}.safetensors`);
  const numClasses = model.config.num_classes;
  if (numClasses !== SHAPE_CLASSES) throw new Error(`diffvit eval shapes: expected a class-conditional model with ${SHAPE_CLASSES} classes, the model has num_classes ${numClasses}`);
  const classifierBar = new ProgressBar(CLASSIFIER_STEPS, 'classifier (first run only)');
  const classifier = loadOrTrainClassifier(classifierPath, (step, loss) => classifierBar.update(step, { loss: loss.toFixed(3) }));
  const labels = Int32Array.from({ length: perClass * numClasses }, (_, i) => i % numClasses);
  const sampler = options.sampler ?? 'heun';
  const steps = options.steps ?? (sampler === 'ddim' ? 50 : 18);
  const bar = new ProgressBar(steps, `sample ${labels.length} images`);
  const { images } = generate(model, { labels, guidance, sampler, steps, churn: options.churn, guidanceInterval: options.guidanceInterval, guide: options.guide, seed: options.seed ?? 12345, onStep: (i) => bar.update(i) });
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
    autoguidance: Boolean(options.guide) && guidance !== 1,
  };
}

/** The number of classes of the built-in shapes data (circle, square, triangle, cross). */
const SHAPE_CLASSES = 4;

export const EVAL_SHAPES_OPTIONS = {
  checkpoint: { kind: 'file', arg: 'FILE', required: true },
  'per-class': { kind: 'int', min: 1, max: 10_000, arg: 'N', default: 64 },
  guidance: { kind: 'number', min: 0, max: 100, arg: 'W', default: DEFAULT_GUIDANCE },
  'guidance-interval': { kind: 'string', arg: 'LO,HI' },
  guide: { kind: 'file', arg: 'FILE' },
  sampler: { kind: 'choice', choices: SAMPLERS, arg: 'NAME', default: 'heun' },
  steps: { kind: 'int', min: 1, max: 10_000, arg: 'N', default: 18 },
  churn: { kind: 'number', min: 0, max: 1000, arg: 'S', default: 0 },
  real: { kind: 'int', min: 2, max: 100_000, arg: 'N', default: 1000 },
  classifier: { kind: 'out-file', arg: 'FILE', extensions: ['.safetensors'] },
  device: { kind: 'string', arg: 'D' },
  json: { kind: 'flag' },
} as const satisfies Record<string, OptionSpec>;

export async function evalCommand(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (what === '-h' || what === '--help') {
    console.log(EVAL_HELP);
    return 0;
  }
  if (what === undefined) usage('eval', 'which evaluation? shapes or fid');
  if (what.startsWith('-')) usage('eval', `unknown option '${what}' (the evaluation comes first: diffvit eval shapes|fid [options])`);
  if (what === 'fid') {
    const { fidCommand } = await import('./fid.js');
    return fidCommand(rest);
  }
  if (what !== 'shapes') usage('eval', `unknown evaluation '${what}' (available: shapes, fid)${didYouMean(what, ['shapes', 'fid'])}`);
  if (rest.includes('-h') || rest.includes('--help')) {
    console.log(EVAL_HELP);
    return 0;
  }
  const { values, given } = parseOptions('eval shapes', rest, EVAL_SHAPES_OPTIONS);
  const sampler = values.sampler as SamplerName;
  const guidanceInterval = guidanceIntervalOption('eval shapes', values['guidance-interval']);
  const { device } = deviceOption('eval shapes', values.device, false);
  // The model must be one of the shapes' classes before the classifier is trained or loaded.
  const mainConfig = checkpointConfig('eval shapes', values.checkpoint);
  const numClasses = mainConfig.num_classes;
  if (numClasses !== SHAPE_CLASSES) usage('eval shapes', `--checkpoint ${values.checkpoint}: expected a class-conditional model of the ${SHAPE_CLASSES} shapes classes, the checkpoint has num_classes ${numClasses}`);
  const guidePath = guideOption('eval shapes', values.guide, mainConfig);
  cliHooks.beforeWork('eval shapes');
  const guide = guidePath ? loadCheckpoint(guidePath, { device }).model : null;
  let r: ShapesEvaluation;
  try {
    const { model } = loadCheckpoint(values.checkpoint, { device });
    try {
      r = evaluateShapes(model, {
        perClass: values['per-class'], guidance: values.guidance, guidanceInterval, guide, sampler,
        steps: given.has('steps') ? values.steps : undefined, churn: values.churn, real: values.real, classifierPath: values.classifier,
      });
    } finally {
      model.dispose();
    }
  } finally {
    guide?.dispose();
  }
  if (values.json) {
    console.log(JSON.stringify(r, null, 2));
  } else {
    console.log(`class accuracy   ${(100 * r.accuracy).toFixed(1)}%  (per class: ${r.perClassAccuracy.map((a) => (100 * a).toFixed(0) + '%').join(', ')}; ${r.samples} samples, ${r.autoguidance ? 'autoguidance' : 'guidance'} ${r.guidance}${r.guidanceInterval ? ` at ${r.guidanceInterval[0]} < sigma <= ${r.guidanceInterval[1]}` : ''}; the classifier on real shapes: ${(100 * r.realAccuracy).toFixed(1)}%)`);
    console.log(`Fréchet distance ${r.frechet.toFixed(3)}  (classifier features; real vs real: ${r.frechetRealVsReal.toFixed(3)})`);
  }
  return 0;
}
