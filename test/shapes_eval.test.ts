/**
 * `diffvit eval shapes`: its classifier must recognise real shapes (else every score it gives is
 * noise), and the evaluation refuses a classifier that does not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import { evaluateShapes } from '../lib/cli/eval.js';
import { ShapesDataset } from '../lib/data/dataset.js';
import { classify, ShapesClassifier, trainShapesClassifier } from '../lib/eval/shapes_classifier.js';
import { DiffusionViT } from '../lib/models/diffusion_vit.js';
import { writeSafetensors } from '../lib/models/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'diffvit-shapes-eval-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Accuracy on `count` held-out shapes (a seed no training stream uses). */
function heldOutAccuracy(classifier: ShapesClassifier, count = 1000): number {
  const data = new ShapesDataset(4242, count);
  const pixels = new Float32Array(count * 3072), labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const e = data.get(i);
    pixels.set(e.pixels, i * 3072);
    labels[i] = e.label;
  }
  const { predictions } = classify(classifier, pixels, count);
  return labels.reduce((n, l, i) => n + (predictions[i] === l ? 1 : 0), 0) / count;
}

describe('shapes classifier', () => {
  const trainedPath = join(dir, 'trained.safetensors');

  test('the default training recognises held-out real shapes (>= 95%)', () => {
    const classifier = trainShapesClassifier();
    const accuracy = heldOutAccuracy(classifier);
    console.log(`shapes classifier: ${(100 * accuracy).toFixed(1)}% on 1000 held-out shapes`);
    expect(accuracy).toBeGreaterThanOrEqual(0.95);
    writeSafetensors(trainedPath, classifier.stateDict(), { format: 'diffvit-shapes-classifier' });
    classifier.dispose();
  }, 900_000); // ~2 min alone on an AVX2 machine; the limit only guards against a hang (it ran 259 s on a machine with three jobs)

  test('eval shapes reports the classifier\'s real-shape accuracy and refuses an untrained classifier', () => {
    const model = new DiffusionViT({ arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 1, heads: 2, num_classes: 4 });
    try {
      const r = evaluateShapes(model, { perClass: 4, steps: 2, real: 200, classifierPath: trainedPath });
      expect(r.realAccuracy).toBeGreaterThanOrEqual(0.95);
      expect(r.samples).toBe(16);
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
      // more samples than real references: the real-vs-real baseline grows to the sample count
      const many = evaluateShapes(model, { perClass: 20, steps: 2, real: 50, guidance: 3, guidanceInterval: [1, Infinity], classifierPath: trainedPath });
      expect([many.samples, Number.isFinite(many.frechetRealVsReal), many.guidanceInterval]).toEqual([80, true, [1, Infinity]]);
      const untrained = new ShapesClassifier(7);
      const untrainedPath = join(dir, 'untrained.safetensors');
      writeSafetensors(untrainedPath, untrained.stateDict(), { format: 'diffvit-shapes-classifier' });
      untrained.dispose();
      expect(() => evaluateShapes(model, { perClass: 4, steps: 2, real: 200, classifierPath: untrainedPath }))
        .toThrow(/recognises only \d+\.\d% of real shapes \(expected >= 90%\); delete the file to train a new one/);
    } finally {
      model.dispose();
    }
  });
});
