/**
 * The async API (lib/async): sampling and training on a worker thread give the synchronous
 * results bit for bit, leave the event loop free, fail with clear errors and clean up; and the
 * native addon under it is safe with several JS threads computing at once.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { addonPath } from '../lib/backend/cpu/addon.js';
import { packageRoot } from '../lib/package_root.js';

const root = packageRoot();
const dir = mkdtempSync(join(tmpdir(), 'diffvit-async-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The worker thread runs the compiled dist/ (a worker cannot load the TypeScript sources these
 * tests import): CI compiles it before the tests (npm ci runs prepare); here it is recompiled when
 * any lib/ source is newer, so that both sides run the same code. tsc exits non-zero on a type
 * error anywhere but still writes every file.
 */
function compileWhenStale(): void {
  const sources = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []));
  const stale = sources(join(root, 'lib')).some((ts) => {
    const js = join(root, 'dist', relative(root, ts)).replace(/\.ts$/, '.js');
    return !existsSync(js) || statSync(js).mtimeMs < statSync(ts).mtimeMs;
  });
  if (!stale) return;
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'pipe' });
  } catch (e) {
    if (!existsSync(join(root, 'dist', 'lib', 'async', 'worker.js'))) throw e;
  }
}
beforeAll(compileWhenStale);

const TINY: dv.ModelConfig = { arch: 'iuvit', img_size: 16, in_chans: 3, patch: 4, dim: 32, depth: 3, heads: 2, num_classes: 4 };

/** A tiny model with every weight random: at its zero-initialised start a model's output is 0, whatever its other weights. */
function randomModel(config: dv.ModelConfig, seed: number): dv.DiffusionViT {
  const model = new dv.DiffusionViT(config);
  const g = new dv.Generator(seed);
  for (const p of model.parameters()) dv.normal_(p, 0, 0.2, g);
  return model;
}

const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => Object.is(v, b[i]));

describe('the native addon in several JS threads at once', () => {
  test('two worker threads and the main thread compute at once, both workers resizing the pool: results bit-identical to a single-threaded run', async () => {
    // Raw kernels on the addon (no dist/ needed): a GEMM and a row sum per iteration, checked against
    // the values the main thread computed alone on one pool thread.
    const body = `
      const n = 192;
      const buf = (seed) => {
        const b = new native.NativeBuffer('cpu', 'float32', n * n);
        native.randomFill({ out: b, offset: 0, n: n * n, distribution: 'normal', seed, counter: 0, a: 0, b: 1 });
        return b;
      };
      const a = buf(1), b = buf(2), c = new native.NativeBuffer('cpu', 'float32', n * n), s = new native.NativeBuffer('cpu', 'float32', n);
      const compute = () => {
        native.gemm({ a, aOffset: 0, b, bOffset: 0, c, cOffset: 0, batch: 1, m: n, n, k: n, transA: false, transB: false, alpha: 1, beta: 0,
          strideA: 0, strideB: 0, strideC: 0, lda: n, ldb: n, ldc: n, precision: 'float32' });
        native.reduceSum({ x: c, xOffset: 0, out: s, outOffset: 0, outer: n, r: n, inner: 1 });
        return [c.read(0, n * n), s.read(0, n)];
      };`;
    // The addon the library loaded (require caches it): the same module instance, in this thread.
    const native = createRequire(import.meta.url)(addonPath);
    const run = new Function('native', `${body}\nreturn compute;`)(native) as () => Float32Array[];
    const threads = dv.runtimeInfo().threads;
    dv.setThreads(1);
    const ref = run();
    dv.setThreads(threads);
    const started = new Int32Array(new SharedArrayBuffer(8)); // [workers running, stop]
    const source = `
      const { parentPort, workerData: { addonPath, ref, flags } } = require('node:worker_threads');
      const native = require(addonPath);
      ${body}
      const f = new Int32Array(flags);
      const differs = (x, y) => x.some((v, i) => !Object.is(v, y[i]));
      let iterations = 0, wrong = 0;
      Atomics.add(f, 0, 1);
      while (!Atomics.load(f, 1) || iterations < 20) {
        const [c, s] = compute();
        if (differs(c, ref[0]) || differs(s, ref[1])) wrong++;
        native.setThreads(1 + (iterations % 3));
        iterations++;
      }
      parentPort.postMessage({ iterations, wrong });`;
    // Two threads resizing at once used to join the same pool thread twice and abort the process.
    const workers = [0, 1].map(() => new Worker(source, { eval: true, workerData: { addonPath, ref, flags: started.buffer } }));
    const done = workers.map((w) => new Promise<{ iterations: number; wrong: number }>((resolve, reject) => (w.once('message', resolve), w.once('error', reject))));
    while (Atomics.load(started, 0) < workers.length) await new Promise((r) => setTimeout(r, 5));
    let mainWrong = 0;
    for (let i = 0; i < 100; i++) {
      const [c, s] = run();
      if (!same(c, ref[0]) || !same(s, ref[1])) mainWrong++;
    }
    Atomics.store(started, 1, 1);
    const results = await Promise.all(done);
    dv.setThreads(threads);
    expect(mainWrong, 'main-thread results that differ').toBe(0);
    for (const r of results) {
      expect(r.wrong, 'worker results that differ').toBe(0);
      expect(r.iterations).toBeGreaterThanOrEqual(20);
    }
  });
});

describe('generateAsync and SamplingWorker', () => {
  const model = randomModel(TINY, 3);
  const options = { count: 4, steps: 5, seed: 7, labels: new Int32Array([0, 1, 2, 3]), guidance: 2 };
  afterAll(() => model.dispose());

  test('the images equal generate()\'s bit for bit: from a model, from a checkpoint, with batches, churn and a context model', async () => {
    const sync = dv.generate(model, options);
    const fromModel = await dv.generateAsync(model, options);
    expect(fromModel.shape).toEqual(sync.shape);
    expect(same(fromModel.images, sync.images)).toBe(true);

    const path = join(dir, 'tiny.safetensors');
    dv.saveCheckpoint(path, model);
    const fromFile = await dv.generateAsync(path, options);
    expect(same(fromFile.images, sync.images)).toBe(true);

    const heun = { count: 5, steps: 4, seed: 2, churn: 0.5, batchSize: 2 } as const;
    expect(same((await dv.generateAsync(model, heun)).images, dv.generate(model, heun).images)).toBe(true);

    // The caller's matmul precision at the call crosses with it.
    const bf16 = dv.autocast('bf16', () => dv.generate(model, options));
    expect(same(bf16.images, sync.images)).toBe(false);
    const bf16Async = await dv.autocast('bf16', () => dv.generateAsync(model, options));
    expect(same(bf16Async.images, bf16.images)).toBe(true);

    const captioned = randomModel({ ...TINY, num_classes: 0, context_len: 3, context_dim: 8 }, 1);
    const context = dv.randn([2, 3, 8], { generator: new dv.Generator(5) });
    try {
      const withContext = { context, steps: 3, guidance: 1.5, sampler: 'euler' } as const;
      expect(same((await dv.generateAsync(captioned, withContext)).images, dv.generate(captioned, withContext).images)).toBe(true);
    } finally {
      context.dispose();
      captioned.dispose();
    }
  });

  test('the event loop runs during a SamplingWorker call (~1 s of sampling), not during generate()', async () => {
    // About one second of sampling on this machine, whatever its speed.
    const probe = performance.now();
    dv.generate(model, { ...options, steps: 4 });
    const perStep = (performance.now() - probe) / 4;
    const steps = Math.max(4, Math.min(400, Math.round(1000 / perStep)));
    const long = { ...options, steps };

    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      const sync = dv.generate(model, long);
      // Certain, not timing: the callback cannot run while the thread is inside generate().
      expect(ticks).toBe(0);

      const sampler = await dv.SamplingWorker.create(model); // its start is not counted
      try {
        let stepsSeen = 0;
        ticks = 0;
        const result = await sampler.generate({ ...long, onStep: () => stepsSeen++ });
        expect(ticks, `10 ms ticks during ${steps} async sampling steps`).toBeGreaterThanOrEqual(5);
        expect(stepsSeen).toBe(steps);
        expect(same(result.images, sync.images)).toBe(true);
        // The worker keeps its weights: a second call needs none sent and gives the same images.
        expect(same((await sampler.generate(long)).images, sync.images)).toBe(true);
      } finally {
        await sampler.dispose();
      }
    } finally {
      clearInterval(timer);
    }
  });

  test('bad options, a disposed model, a bad checkpoint path and a disposed worker reject with clear messages', async () => {
    await expect(dv.generateAsync(model, { sampler: 'nope' as dv.SamplerName })).rejects.toThrow("diffvit.generate: argument 'sampler' expected one of heun, euler, ddim, dpmpp2m, received 'nope'");
    await expect(dv.generateAsync(model, { cont: 3 } as dv.GenerateOptions)).rejects.toThrow(/^diffvit\.generateAsync: unknown option 'cont' \(options: count, /);
    await expect(dv.generateAsync(model, { onStep: 3 } as unknown as dv.GenerateOptions)).rejects.toThrow("diffvit.generateAsync: option 'onStep' expected a function, received 3");
    await expect(dv.generateAsync(model, { batchSize: 0 })).rejects.toThrow("diffvit.generate: option 'batchSize' expected an integer >= 1, received 0");
    await expect(dv.generateAsync(model, { device: 'tpu' })).rejects.toThrow(/diffvit\.generate: argument 'device' expected one of the devices of this build .*received 'tpu'/);
    await expect(dv.generateAsync(42 as unknown as string)).rejects.toThrow("diffvit.generateAsync: argument 'model' expected a DiffusionViT or a checkpoint path, received 42");
    await expect(dv.generateAsync(join(dir, 'missing.safetensors'))).rejects.toThrow(/diffvit\.safetensors: .*missing\.safetensors: cannot read the file \(ENOENT\)/);
    await expect(dv.SamplingWorker.create(model, { devise: 'cpu' } as dv.SamplingWorkerOptions)).rejects.toThrow("diffvit.SamplingWorker.create: unknown option 'devise' (options: device, guide)");

    const disposed = new dv.DiffusionViT(TINY);
    disposed.dispose();
    await expect(dv.generateAsync(disposed)).rejects.toThrow("diffvit.generateAsync: argument 'model' is a disposed model");

    const sampler = await dv.SamplingWorker.create(model);
    // A throwing onStep ends the call with its error, as in generate(); the worker carries on.
    await expect(sampler.generate({ ...options, onStep: () => { throw new Error('stop here'); } })).rejects.toThrow('stop here');
    expect(same((await sampler.generate(options)).images, dv.generate(model, options).images)).toBe(true);
    await sampler.dispose();
    await expect(sampler.generate(options)).rejects.toThrow('diffvit.SamplingWorker: the worker was disposed');
    await sampler.dispose(); // idempotent
  });

  test('autoguidance: a worker given a guide (a model or a checkpoint), and generateAsync given one, sample as generate() with that guide, bit for bit', async () => {
    // A weaker model of the same kind: shallower, other weights.
    const guide = randomModel({ ...TINY, depth: 1 }, 4);
    try {
      const guided = dv.generate(model, { ...options, guide });
      expect(same(guided.images, dv.generate(model, options).images), 'autoguidance differs from classifier-free guidance').toBe(false);

      const sampler = await dv.SamplingWorker.create(model, { guide });
      try {
        expect(same((await sampler.generate(options)).images, guided.images)).toBe(true);
        // Every call of this worker guides away from its guide.
        const more = { ...options, guidance: 3, steps: 4 };
        expect(same((await sampler.generate(more)).images, dv.generate(model, { ...more, guide }).images)).toBe(true);
      } finally {
        await sampler.dispose();
      }

      const modelPath = join(dir, 'guided.safetensors'), guidePath = join(dir, 'guide.safetensors');
      dv.saveCheckpoint(modelPath, model);
      dv.saveCheckpoint(guidePath, guide);
      const fromFiles = await dv.SamplingWorker.create(modelPath, { guide: guidePath });
      try {
        expect(same((await fromFiles.generate(options)).images, guided.images)).toBe(true);
      } finally {
        await fromFiles.dispose();
      }
      expect(same((await dv.generateAsync(model, { ...options, guide: guidePath })).images, guided.images)).toBe(true);
      expect(same((await dv.generateAsync(modelPath, { ...options, guide })).images, guided.images)).toBe(true);
    } finally {
      guide.dispose();
    }
  });

  test('autoguidance errors: a guide of another kind, a disposed or missing one, a guide per call', async () => {
    const otherClasses = new dv.DiffusionViT({ ...TINY, num_classes: 3 });
    const disposed = new dv.DiffusionViT(TINY);
    disposed.dispose();
    try {
      await expect(dv.SamplingWorker.create(model, { guide: otherClasses })).rejects.toThrow("diffvit.SamplingWorker.create: argument 'guide' expected a model with the sampled model's num_classes (4), received 3");
      await expect(dv.generateAsync(model, { ...options, guide: otherClasses })).rejects.toThrow("diffvit.generateAsync: argument 'guide' expected a model with the sampled model's num_classes (4), received 3");
      await expect(dv.SamplingWorker.create(model, { guide: disposed })).rejects.toThrow("diffvit.SamplingWorker.create: argument 'guide' is a disposed model");
      await expect(dv.generateAsync(model, { guide: 42 as unknown as string })).rejects.toThrow("diffvit.generateAsync: argument 'guide' expected a DiffusionViT or a checkpoint path, received 42");
      await expect(dv.SamplingWorker.create(model, { guide: join(dir, 'no-guide.safetensors') })).rejects.toThrow(/diffvit\.safetensors: .*no-guide\.safetensors: cannot read the file \(ENOENT\)/);
      const sampler = await dv.SamplingWorker.create(model);
      try {
        await expect(sampler.generate({ ...options, guide: model } as dv.AsyncGenerateOptions)).rejects.toThrow("diffvit.SamplingWorker.generate: option 'guide' (autoguidance) is the worker's: give it to SamplingWorker.create");
        expect(same((await sampler.generate(options)).images, dv.generate(model, options).images)).toBe(true);
      } finally {
        await sampler.dispose();
      }
    } finally {
      otherClasses.dispose();
    }
  });

  test('an AbortSignal stops a call (before or during it); the worker serves the next call', async () => {
    const sampler = await dv.SamplingWorker.create(model);
    try {
      await expect(sampler.generate({ ...options, signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
      const controller = new AbortController();
      let after = 0;
      const reason = new Error('client went away');
      const aborted = sampler.generate({ ...options, steps: 50, signal: controller.signal, onStep: (i) => (i === 2 ? controller.abort(reason) : i > 2 && after++) });
      await expect(aborted).rejects.toBe(reason);
      expect(after, 'steps reported after the abort').toBe(0);
      expect(same((await sampler.generate(options)).images, dv.generate(model, options).images)).toBe(true);
    } finally {
      await sampler.dispose();
    }
  });

  test('dispose() frees the worker\'s tensors, rejects a call in flight, and an undisposed idle worker does not keep Node running', async () => {
    const before = dv.memory();
    const sampler = await dv.SamplingWorker.create(model);
    expect(dv.memory().buffers).toBeGreaterThan(before.buffers); // the worker's model (one process-wide allocator)
    const inFlight = expect(sampler.generate({ ...options, steps: 200 })).rejects.toThrow('diffvit.SamplingWorker: the worker was disposed');
    await sampler.dispose();
    await inFlight;
    expect(dv.memory().buffers).toBe(before.buffers);

    // A script that never disposes its worker still exits, with the images printed.
    const script = `
      import * as dv from ${JSON.stringify(join(root, 'dist', 'lib', 'index.js'))};
      const sampler = await dv.SamplingWorker.create(new dv.DiffusionViT(${JSON.stringify(TINY)}));
      const { shape } = await sampler.generate({ count: 2, steps: 2 });
      console.log(shape.join('x'));`;
    const file = join(dir, 'undisposed.mjs');
    writeFileSync(file, script);
    const child = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
    expect(child.error, 'the script exits by itself').toBeUndefined();
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('2x3x16x16');
    expect(child.status).toBe(0);
  });
});

describe('TrainerWorker', () => {
  const config: dv.TrainConfig = {
    ...dv.DEFAULT_TRAIN_CONFIG,
    model: { ...TINY, img_size: 32, patch: 8 },
    data: { kind: 'shapes', seed: 0, size: 64 },
    batchSize: 8,
    steps: 6,
    lr: 2e-3,
    warmupSteps: 2,
    emaHalfLifeImages: 50,
  };

  test('steps, checkpoints and a resumed step equal the synchronous Trainer\'s bit for bit', async () => {
    const sync = new dv.Trainer(config);
    const expected = [sync.trainStep(), sync.trainStep(), sync.trainStep()];
    const syncPath = join(dir, 'sync.safetensors');
    sync.save(syncPath);
    sync.dispose();

    const trainer = await dv.TrainerWorker.create(config);
    const asyncPath = join(dir, 'async.safetensors');
    try {
      expect(trainer.step).toBe(0);
      const results = [await trainer.trainStep(), await trainer.trainStep(), await trainer.trainStep()];
      expect(results).toEqual(expected);
      expect(trainer.step).toBe(3);
      await trainer.save(asyncPath);
    } finally {
      await trainer.dispose();
    }
    expect(readFileSync(asyncPath).equals(readFileSync(syncPath))).toBe(true);

    const resumedSync = dv.Trainer.resume(syncPath);
    const next = resumedSync.trainStep();
    resumedSync.dispose();
    const resumed = await dv.TrainerWorker.resume(asyncPath);
    try {
      expect(resumed.step).toBe(3);
      expect(await resumed.trainStep()).toEqual(next);
    } finally {
      await resumed.dispose();
    }
  });

  test('a bad config, a bad checkpoint and a disposed worker reject with clear messages', async () => {
    await expect(dv.TrainerWorker.create({ ...config, lrSchedule: 'nope' as dv.TrainConfig['lrSchedule'] })).rejects.toThrow("diffvit.train: lrSchedule expected 'constant' or");
    await expect(dv.TrainerWorker.create(null as unknown as dv.TrainConfig)).rejects.toThrow("diffvit.TrainerWorker.create: argument 'config' expected a TrainConfig object, received null");
    await expect(dv.TrainerWorker.resume(join(dir, 'missing.safetensors'))).rejects.toThrow(/missing\.safetensors: cannot read the file \(ENOENT\)/);
    const modelOnly = join(dir, 'model-only.safetensors');
    const m = new dv.DiffusionViT(TINY);
    dv.saveCheckpoint(modelOnly, m);
    m.dispose();
    await expect(dv.TrainerWorker.resume(modelOnly)).rejects.toThrow('is a model-only checkpoint');

    const trainer = await dv.TrainerWorker.create(config);
    await expect(trainer.save('')).rejects.toThrow("diffvit.TrainerWorker.save: argument 'path' expected a file path, received ''");
    await trainer.dispose();
    await expect(trainer.trainStep()).rejects.toThrow('diffvit.TrainerWorker: the worker was disposed');
  });
});
