/**
 * Models, training and sampling on any device. Module.to moves parameters (and gradients) in place;
 * DiffusionViT and loadCheckpoint take a device; the Trainer keeps the model, the optimiser state
 * and the EMA on its device and reads back one pair of numbers per step; generate() samples on the
 * model's device and reads the images back once; both can run under CUDA graphs.
 *
 * Everything is checked twice: on 'mirror', a backend registered here whose buffers wrap CPU
 * buffers and whose kernels are the CPU's (so a device mix-up anywhere fails, and results must
 * equal the CPU's bit for bit) — this runs everywhere; and on 'cuda' (results within float
 * tolerance of the CPU's; graphs equal to eager runs), skipped with the reason where no CUDA
 * device is usable. The CUDA suites run in the emulated run of the tests (DIFFVIT_ADDON=
 * build-emu/diffvit_cuda_emu.node), where every CUDA thread is a CPU fiber: the model is tiny
 * (width 32, depth 2, 8×8 images, batch 2) and so are the step counts.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import { KERNEL_NAMES } from '../lib/backend/kernel_names.js';
import { sampleCommand } from '../lib/cli/sample.js';
import { trainCommand } from '../lib/cli/train.js';
import { writeDatasetCache } from '../lib/data/cache.js';
import { ShapesDataset } from '../lib/data/dataset.js';
import type { Example, ImageDataset } from '../lib/data/types.js';
import * as dv from '../lib/index.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { expectClose, randomValues } from './helpers.js';
import { makeToyBackend, type Transfers } from './toy_backend.js';

const dir = mkdtempSync(join(tmpdir(), 'diffvit-device-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// The 'mirror' device: the CPU's memory and kernels behind another device name
// ---------------------------------------------------------------------------------------------

/** Host reads and writes of the mirror's memory, counted (the trainer and the samplers promise few). */
const transfers: Transfers = { reads: [], writes: [] };

dv.registerBackend(makeToyBackend('mirror', KERNEL_NAMES, transfers));
afterAll(() => dv.removeBackend('mirror'));

/** Host transfers of the mirror made while fn runs. */
function countTransfers(fn: () => void): { reads: number[]; writes: number[] } {
  transfers.reads = [];
  transfers.writes = [];
  fn();
  const seen = { reads: transfers.reads, writes: transfers.writes };
  transfers.reads = [];
  transfers.writes = [];
  return seen;
}

// ---------------------------------------------------------------------------------------------
// A tiny model and 8×8 data
// ---------------------------------------------------------------------------------------------

const MODEL = { arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 32, depth: 2, heads: 2, num_classes: 4 } as const;

/** The built-in shapes at 8×8 (4×4 block means of the 32×32 images). */
class TinyShapes implements ImageDataset {
  readonly name = 'tiny-shapes';
  readonly size = 64;
  readonly channels = 3;
  readonly imageSize = 8;
  private readonly shapes = new ShapesDataset(7, 64);
  readonly numClasses = this.shapes.numClasses;
  readonly classNames = this.shapes.classNames;
  get(index: number): Example {
    const { pixels, label } = this.shapes.get(index);
    const out = new Float32Array(3 * 8 * 8);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[(c * 8 + (y >> 2)) * 8 + (x >> 2)] += pixels[(c * 32 + y) * 32 + x] / 16;
    }
    return { pixels: out, label };
  }
}
const dataPath = join(dir, 'tiny.dvcache');
writeDatasetCache(new TinyShapes(), dataPath);

const TRAIN: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: MODEL,
  data: { kind: 'cache', path: dataPath },
  batchSize: 2,
  steps: 4,
  lr: 2e-3,
  warmupSteps: 1,
  emaHalfLifeImages: 20,
  matmulPrecision: 'float32',
};

/** A model with every parameter random (an initialised one has zero adaLN gates: a trivial network), on `device`. */
function randomModel(seed: number, device = 'cpu'): dv.DiffusionViT {
  const model = new dv.DiffusionViT(MODEL, { seed });
  for (const p of model.parameters()) dv.assign_(p, Float32Array.from(randomValues(p.size, p.size + seed, 0.1)));
  return model.to(device);
}

/** Every parameter's values, read to the host. */
const values = (tensors: readonly dv.Tensor[]) => tensors.map((t) => t.data());

/** The largest |value|, the scale a whole result's error is measured against. */
const maxAbs = (v: ArrayLike<number>) => Array.from(v).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/** The worst error of each comparison, relative to its array's largest |value|: printed after the file. */
const worstErrors = new Map<string, number>();
afterAll(() => {
  if (worstErrors.size) console.log(`worst error relative to each array's max |value|:\n${[...worstErrors].map(([k, v]) => `  ${k.padEnd(44)} ${v.toExponential(2)}`).join('\n')}`);
});

/** a and b (lists of arrays) within rtol of each array's largest |value| (plus atol). */
function expectAllClose(a: ArrayLike<number>[], b: ArrayLike<number>[], rtol: number, label: string, atol = 0): void {
  expect(a.length, `${label}: count`).toBe(b.length);
  let worst = 0;
  a.forEach((x, i) => {
    const m = maxAbs(b[i]);
    expectClose(x, b[i], { rtol, atol, scale: new Float64Array(x.length).fill(m) }, `${label} ${i}`);
    for (let j = 0; j < x.length; j++) if (m > 0) worst = Math.max(worst, Math.abs(x[j] - b[i][j]) / m);
  });
  worstErrors.set(label, Math.max(worstErrors.get(label) ?? 0, worst));
}

const sameBits = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Buffer.from(Float32Array.from(x).buffer).equals(Buffer.from(Float32Array.from(b[i]).buffer)), `array ${i}`).toBe(true));
};

// ---------------------------------------------------------------------------------------------
// Everywhere: the mirror device and the errors
// ---------------------------------------------------------------------------------------------

describe('Module.to and device options (the mirror device)', () => {
  test('moves every parameter and grad in place: the same objects, the same bits, the old memory freed', () => {
    const model = new dv.DiffusionViT(MODEL, { seed: 1 });
    const params = model.parameters();
    const before = values(params);
    params[0].grad = dv.keep(dv.full(params[0].shape, 0.5));
    const cpuBuffers = dv.memory('cpu').buffers, mirrorBuffers = dv.memory('mirror').buffers;
    expect(model.to('mirror')).toBe(model);
    expect(model.device).toBe('mirror');
    model.parameters().forEach((p, i) => {
      expect(p).toBe(params[i]);
      expect(p.device).toBe('mirror');
      expect(p.isContiguous() && p.offset === 0).toBe(true);
    });
    expect(params[0].grad!.device).toBe('mirror');
    expect(dv.memory('mirror').buffers).toBe(mirrorBuffers + params.length + 1);
    expect(model.to('mirror')).toBe(model); // already there: nothing moves
    expect(dv.memory('mirror').buffers).toBe(mirrorBuffers + params.length + 1);
    model.to('cpu');
    sameBits(values(model.parameters()), before);
    expect([...params[0].grad!.data()].every((v) => v === 0.5)).toBe(true);
    expect(dv.memory('mirror').buffers).toBe(mirrorBuffers);
    expect(dv.memory('cpu').buffers).toBe(cpuBuffers); // (the mirror's buffers are CPU buffers inside)
    // A model built on a device holds the initial values a host-built one gets.
    const built = new dv.DiffusionViT(MODEL, { seed: 1, device: 'mirror' });
    expect(built.device).toBe('mirror');
    sameBits(values(built.parameters()), before);
    built.dispose();
    model.dispose();
  });

  test('a moved tensor stays under the GC safety net: collecting it frees its new memory', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'run with node --expose-gc (vitest.config.ts passes it to the workers)').toBeTypeOf('function');
    const settle = async () => {
      for (let i = 0; i < 10; i++) {
        gc!();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await settle();
    const start = { mirror: dv.memory('mirror').buffers, tensors: dv.memory().tensors };
    (() => {
      for (let i = 0; i < 20; i++) {
        const t = dv.full([16], i); // top level: under the FinalizationRegistry
        t.relocate('mirror');
      }
    })();
    expect(dv.memory('mirror').buffers).toBe(start.mirror + 20);
    await settle();
    expect(dv.memory('mirror').buffers).toBe(start.mirror);
    expect(dv.memory().tensors).toBe(start.tensors);
  });

  test('training on another device equals the cpu bit for bit: one batch write and one read per step', () => {
    const cpu = new Trainer(TRAIN);
    const dev = new Trainer({ ...TRAIN, device: 'mirror' });
    expect(dev.device).toBe('mirror');
    for (const t of [...dev.model.parameters(), ...dev.optimizer.expAvg, ...dev.optimizer.expAvgSq, ...dev.ema.shadow]) expect(t.device).toBe('mirror');
    const lossesCpu = [0, 1, 2].map(() => cpu.trainStep().loss);
    const lossesDev = [dev.trainStep().loss];
    // After the first step (which also writes the constant frequency table): the images and the
    // labels go to the device once each, and the loss and the gradient norm come back together.
    const seen = countTransfers(() => lossesDev.push(dev.trainStep().loss, dev.trainStep().loss));
    expect(seen.writes).toEqual([2 * 3 * 8 * 8, 2, 2 * 3 * 8 * 8, 2]);
    expect(seen.reads).toEqual([2, 2]);
    expect(lossesDev).toEqual(lossesCpu);
    const state = (t: Trainer) => values([...t.model.parameters(), ...t.optimizer.expAvg, ...t.optimizer.expAvgSq, ...t.ema.shadow]);
    sameBits(state(dev), state(cpu));

    // A checkpoint of the device run reads back to the host; it loads onto a device; a resume
    // on the device continues as the host run does.
    const path = join(dir, 'mirror.safetensors');
    dev.save(path);
    const { model, extra, metadata } = dv.loadCheckpoint(path);
    expect(model.device).toBe('cpu');
    expect(JSON.parse(metadata.train_config).device).toBeUndefined(); // where it ran is not part of the run
    sameBits(values(model.parameters()), values(cpu.ema.shadow));
    for (const t of extra.values()) t.dispose();
    model.dispose();
    const onDevice = dv.loadCheckpoint(path, { device: 'mirror' });
    expect(onDevice.model.device).toBe('mirror');
    for (const t of onDevice.extra.values()) expect(t.device).toBe('cpu');
    sameBits(values(onDevice.model.parameters()), values(cpu.ema.shadow));
    onDevice.model.dispose();
    for (const t of onDevice.extra.values()) t.dispose();
    const resumed = Trainer.resume(path, { device: 'mirror' });
    expect(resumed.model.device).toBe('mirror');
    expect(resumed.trainStep().loss).toBe(cpu.trainStep().loss);
    sameBits(state(resumed), state(cpu));
    for (const t of [cpu, dev, resumed]) t.dispose();
  });

  test('a trainer given a model runs where the model is, or moves it to config.device', () => {
    const model = new dv.DiffusionViT(MODEL, { seed: 0, device: 'mirror' });
    const t = new Trainer(TRAIN, model);
    expect(t.device).toBe('mirror');
    t.dispose();
    const moved = new dv.DiffusionViT(MODEL, { seed: 0 });
    const u = new Trainer({ ...TRAIN, device: 'mirror' }, moved);
    expect(moved.device).toBe('mirror');
    u.dispose();
  });

  test('sampling on another device equals the cpu bit for bit and reads the images back once', () => {
    const cpu = randomModel(3), dev = randomModel(3, 'mirror');
    const labels = Int32Array.from([0, 3, 1, 2, 4]);
    dv.generate(dev, { count: 1, steps: 1 }); // the first forward on a device also writes its constant frequency table
    for (const sampler of dv.SAMPLERS) {
      const options = { sampler, labels, guidance: 2, guidanceInterval: [0.3, 20] as const, steps: 3, seed: 4 };
      const ref = dv.generate(cpu, options);
      let got: ReturnType<typeof dv.generate> | null = null;
      const seen = countTransfers(() => {
        got = dv.generate(dev, options);
      });
      expect(seen.reads, sampler).toEqual([5 * 3 * 8 * 8]);
      // the labels (the guided batch's and its conditional half's): the only host writes
      expect(seen.writes, sampler).toEqual([10, 5]);
      sameBits([got!.images], [ref.images]);
      // in batches of 2 (the last of 1): the same latents, gathered on the device, one read
      const batched = countTransfers(() => {
        got = dv.generate(dev, { ...options, batchSize: 2 });
      });
      expect(batched.reads, sampler).toEqual([5 * 3 * 8 * 8]);
      expectAllClose([got!.images], [ref.images], 1e-6, `mirror: ${sampler} in batches vs one batch`);
    }
    // Heun's churn on the device: the same draws as on the host.
    const churn = { count: 3, churn: 4, steps: 3, seed: 2 };
    sameBits([dv.generate(dev, churn).images], [dv.generate(cpu, churn).images]);
    cpu.dispose();
    dev.dispose();
  });

  test('a model on one device and inputs or options on another: errors that say so', () => {
    const model = new dv.DiffusionViT(MODEL, { seed: 0 });
    dv.scope(() => {
      const x = dv.zeros([1, 3, 8, 8], { device: 'mirror' });
      expect(() => model.forward(x, dv.zeros([1], { device: 'mirror' }), dv.zeros([1], { dtype: 'int32', device: 'mirror' })))
        .toThrow("diffvit.DiffusionViT: argument 'x' is on device 'mirror' but the model's parameters are on 'cpu'");
    });
    expect(() => dv.generate(model, { count: 1, device: 'mirror' }))
      .toThrow("diffvit.generate: option 'device' is 'mirror' but the model's parameters are on 'cpu' (move the model there first: model.to('mirror'))");
    expect(() => new dv.DiffusionViT(MODEL, { device: 'nowhere' })).toThrow(/diffvit\.DiffusionViT: argument 'device' expected one of the devices/);
    expect(() => model.to('nowhere')).toThrow(/diffvit\.Module\.to: argument 'device'/);
    model.dispose();
  });

  test('cudaGraph off CUDA: clear errors before any work', () => {
    const model = new dv.DiffusionViT(MODEL, { seed: 0 });
    expect(() => dv.generate(model, { count: 2, cudaGraph: true }))
      .toThrow("diffvit.generate: option 'cudaGraph' needs a CUDA device, but the sampling runs on 'cpu' (put the model on 'cuda': model.to('cuda'))");
    model.to('mirror');
    expect(() => dv.generate(model, { count: 2, cudaGraph: true })).toThrow(/option 'cudaGraph' needs a CUDA device, but the sampling runs on 'mirror'/);
    model.dispose();
    expect(() => new Trainer({ ...TRAIN, cudaGraph: true }))
      .toThrow("diffvit.train: cudaGraph captures the training step in a CUDA graph and needs a CUDA device, but the run's device is 'cpu' (set device: 'cuda')");
    expect(() => new Trainer({ ...TRAIN, device: 'mirror', cudaGraph: true })).toThrow(/needs a CUDA device, but the run's device is 'mirror'/);
  });

  test('the CLI checks --device and --cuda-graph before reading or building anything', async () => {
    const missing = join(dir, 'no-such-checkpoint.safetensors');
    // usage errors (exit code 2), named by command and option
    const usage = (message: string | RegExp) => expect.objectContaining({ name: 'UsageError', message: typeof message === 'string' ? message : expect.stringMatching(message) });
    await expect(sampleCommand(['--checkpoint', missing, '--cuda-graph']))
      .rejects.toEqual(usage(/^diffvit sample: --checkpoint FILE expected an existing file/));
    const checkpoint = join(dir, 'device-cli.safetensors');
    const tiny = new dv.DiffusionViT(MODEL, { seed: 0 });
    dv.saveCheckpoint(checkpoint, tiny);
    tiny.dispose();
    await expect(sampleCommand(['--checkpoint', checkpoint, '--cuda-graph']))
      .rejects.toEqual(usage("diffvit sample: --cuda-graph needs a CUDA device (--device cuda), but the device is 'cpu'"));
    await expect(sampleCommand(['--checkpoint', checkpoint, '--device', 'bogus'])).rejects.toEqual(usage(/^diffvit sample: --device D: argument '--device' expected one of the devices of this build/));
    await expect(trainCommand(['--device', 'mirror', '--cuda-graph', '--out', join(dir, 'never')]))
      .rejects.toEqual(usage("diffvit train: --cuda-graph needs a CUDA device (--device cuda), but the device is 'mirror'"));
    await expect(trainCommand(['--device', 'cpu:3'])).rejects.toEqual(usage(/^diffvit train: --device D: .*there is one 'cpu' device/));
    expect(existsSync(join(dir, 'never'))).toBe(false);
    if (!dv.cuda.isAvailable()) {
      // Not a usage error: the reason this process has no CUDA device.
      await expect(sampleCommand(['--checkpoint', checkpoint, '--device', 'cuda'])).rejects.toThrow(/diffvit sample: --device cuda: device 'cuda' is not available: /);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// CUDA (emulated in the test build): against the CPU within tolerance, graphs against eager runs
// ---------------------------------------------------------------------------------------------

const cudaUsable = dv.cuda.isAvailable();
const why = cudaUsable ? '' : ` (skipped: no CUDA device is usable: ${dv.cuda.info().reason || dv.runtimeInfo().cudaStatus})`;
const cudaTest = test.skipIf(!cudaUsable);

describe('on the CUDA device', () => {
  cudaTest(`Module.to round trip cpu -> cuda -> cpu keeps every parameter and grad bit-exact${why}`, () => {
    const model = randomModel(5);
    const params = model.parameters();
    const before = values(params);
    params[1].grad = dv.keep(dv.tensor(Float32Array.from(randomValues(params[1].size, 9)), params[1].shape));
    const grad = params[1].grad.data();
    expect(model.to('cuda')).toBe(model);
    expect(model.device).toBe('cuda:0');
    model.parameters().forEach((p, i) => {
      expect(p).toBe(params[i]);
      expect(p.device).toBe('cuda:0');
    });
    expect(params[1].grad.device).toBe('cuda:0');
    sameBits(values(params), before); // read straight from the device
    model.to('cpu');
    sameBits(values(params), before);
    sameBits([params[1].grad.data()], [grad]);
    model.dispose();
  });

  cudaTest(`2 training steps on cuda equal the same steps on the cpu: loss and every parameter${why}`, () => {
    const cpu = new Trainer(TRAIN);
    const gpu = new Trainer({ ...TRAIN, device: 'cuda' });
    expect(gpu.device).toBe('cuda:0');
    for (const t of [...gpu.model.parameters(), ...gpu.optimizer.expAvg, ...gpu.ema.shadow]) expect(t.device).toBe('cuda:0');
    const a = [cpu.trainStep(), cpu.trainStep()], b = [gpu.trainStep(), gpu.trainStep()];
    worstErrors.set('cuda vs cpu: losses (relative)', expectClose(b.map((r) => r.loss), a.map((r) => r.loss), { rtol: 1e-4, atol: 0 }, 'losses'));
    worstErrors.set('cuda vs cpu: gradient norms (relative)', expectClose(b.map((r) => r.gradNorm), a.map((r) => r.gradNorm), { rtol: 1e-4, atol: 0 }, 'gradient norms'));
    // Each tensor within 1e-4 of its largest value, plus lr/1000 absolute: AdamW's first updates
    // are lr·g/(|g| + ε), which for gradients near ε (rounding-level ones, e.g. of the zero-initialised
    // adaLN weights) follow their last bits — the CPU's own avx512 and scalar kernels differ by 1e-6 there.
    expectAllClose(values(gpu.model.parameters()), values(cpu.model.parameters()), 1e-4, 'cuda vs cpu: parameters after 2 steps', 1e-3 * TRAIN.lr);
    expectAllClose(values(gpu.ema.shadow), values(cpu.ema.shadow), 1e-4, 'cuda vs cpu: EMA after 2 steps', 1e-3 * TRAIN.lr);
    // its checkpoint reads back to the host
    const path = join(dir, 'cuda.safetensors');
    gpu.save(path);
    const { model, extra } = dv.loadCheckpoint(path, { device: 'cuda' });
    expect(model.device).toBe('cuda:0');
    sameBits(values(model.parameters()), values(gpu.ema.shadow));
    for (const t of extra.values()) t.dispose();
    model.dispose();
    cpu.dispose();
    gpu.dispose();
  });

  cudaTest(`sampling on cuda equals the cpu within tolerance${why}`, () => {
    const cpu = randomModel(6), gpu = randomModel(6, 'cuda');
    const labels = Int32Array.from([1, 4]);
    for (const sampler of ['heun', 'dpmpp2m'] as const) {
      const options = { sampler, labels, guidance: 2.5, steps: 3, seed: 8 };
      const ref = dv.generate(cpu, options).images, got = dv.generate(gpu, options).images;
      expectAllClose([got], [ref], 1e-4, `cuda vs cpu: ${sampler} images`);
    }
    cpu.dispose();
    gpu.dispose();
  });

  cudaTest(`generate with cudaGraph equals the eager run: the graph replayed with new noise and labels${why}`, () => {
    const model = randomModel(7, 'cuda');
    // 3 batches of 2: the first eager (and captured), the next two replays; guidance doubles the batch.
    const labels = Int32Array.from([0, 1, 2, 3, 4, 1]);
    const graphsBefore = (native as { cudaGraphCount?: () => number }).cudaGraphCount?.() ?? 0;
    for (const sampler of ['euler', 'heun'] as const) {
      const options = { sampler, labels, guidance: 2, steps: 3, seed: 11, batchSize: 2 };
      const steps: number[][] = [];
      const eager = dv.generate(model, options).images;
      const graphed = dv.generate(model, { ...options, cudaGraph: true, onStep: (i, n, _s, b) => steps.push([b!, i, n]) }).images;
      expectAllClose([graphed], [eager], 1e-6, `cuda graph vs eager: ${sampler} images`);
      // the eager first batch reports each step; a replayed batch reports its whole loop once
      expect(steps).toEqual([[0, 1, 3], [0, 2, 3], [0, 3, 3], [1, 3, 3], [2, 3, 3]]);
    }
    expect((native as { cudaGraphCount?: () => number }).cudaGraphCount?.() ?? 0).toBe(graphsBefore); // destroyed
    expect(() => dv.generate(model, { count: 4, batchSize: 2, churn: 1, cudaGraph: true }))
      .toThrow(/option 'cudaGraph' needs a deterministic sampler, but Heun with churn 1 draws new noise at every step/);
    model.dispose();
  });

  cudaTest(`a trainer with cudaGraph equals the eager trainer within tolerance${why}`, () => {
    const graphCount = () => (native as { cudaGraphCount?: () => number }).cudaGraphCount?.() ?? 0;
    const graphsBefore = graphCount();
    const eager = new Trainer({ ...TRAIN, device: 'cuda' });
    const graphed = new Trainer({ ...TRAIN, device: 'cuda', cudaGraph: true });
    const a = [0, 1, 2].map(() => eager.trainStep()), b = [0, 1, 2].map(() => graphed.trainStep());
    expect(graphCount()).toBe(graphsBefore + 1); // captured once, replayed at every step
    worstErrors.set('cuda graph vs eager: losses (relative)', expectClose(b.map((r) => r.loss), a.map((r) => r.loss), { rtol: 1e-5, atol: 0 }, 'losses'));
    worstErrors.set('cuda graph vs eager: gradient norms (relative)', expectClose(b.map((r) => r.gradNorm), a.map((r) => r.gradNorm), { rtol: 1e-5, atol: 0 }, 'gradient norms'));
    expect(graphed.generator.state()).toEqual(eager.generator.state()); // the same noise was drawn
    const state = (t: Trainer) => values([...t.model.parameters(), ...t.optimizer.expAvg, ...t.optimizer.expAvgSq, ...t.ema.shadow]);
    // (as above: lr/1000 absolute for AdamW's updates of rounding-level gradients, should a device's
    // reductions not repeat their order)
    expectAllClose(state(graphed), state(eager), 1e-5, 'cuda graph vs eager: trainer state after 3 steps', 1e-3 * TRAIN.lr);
    eager.dispose();
    graphed.dispose();
    expect(graphCount()).toBe(graphsBefore);
  });

  cudaTest(`the captured step clips, follows the learning-rate warm-up and skips a non-finite step on the device as the eager trainer does on the host${why}`, () => {
    const config: TrainConfig = { ...TRAIN, device: 'cuda', gradClip: 0.05, warmupSteps: 3, steps: 6 };
    const eager = new Trainer(config), graphed = new Trainer({ ...config, cudaGraph: true });
    // 5 steps; the third one's batch has a NaN pixel: its loss is NaN and the step is skipped.
    const run = (t: Trainer) => [0, 1, 2, 3, 4].map((i) => {
      const batch = t.sampler.batch(t.step);
      if (i === 2) batch.images[5] = NaN;
      return t.trainStep(batch);
    });
    const a = run(eager), b = run(graphed);
    expect(a.map((r) => r.skipped)).toEqual([false, false, true, false, false]);
    expect(b.map((r) => r.skipped)).toEqual(a.map((r) => r.skipped));
    expect(b.map((r) => r.lr)).toEqual(a.map((r) => r.lr));
    expect(a.filter((r) => !r.skipped && r.gradNorm > 0.05).length, 'steps whose gradients were clipped').toBeGreaterThanOrEqual(2);
    expectClose(b.filter((r) => !r.skipped).map((r) => r.loss), a.filter((r) => !r.skipped).map((r) => r.loss), { rtol: 1e-5, atol: 0 }, 'losses');
    for (const t of [eager, graphed]) {
      expect([t.optimizer.step, t.imagesSeen, t.nonFinite, t.step]).toEqual([4, 4 * config.batchSize, 1, 5]);
    }
    const state = (t: Trainer) => values([...t.model.parameters(), ...t.optimizer.expAvg, ...t.optimizer.expAvgSq, ...t.ema.shadow]);
    expectAllClose(state(graphed), state(eager), 1e-5, 'cuda graph vs eager: clipped, warmed-up, skipped steps', 1e-3 * config.lr);
    // The checkpoint of the captured run resumes (eagerly) to the same next step as the eager run's.
    const path = join(dir, 'graphed.safetensors');
    graphed.save(path);
    const resumed = Trainer.resume(path, { device: 'cuda' });
    expectClose([resumed.trainStep().loss], [eager.trainStep().loss], { rtol: 1e-5, atol: 0 }, 'the step after resuming');
    for (const t of [eager, graphed, resumed]) t.dispose();
  });
});
