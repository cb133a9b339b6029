/**
 * The FID Inception-v3 against PyTorch: scripts/convert_inception.py builds pytorch-fid's graph
 * (FIDInceptionA/C/E_1/E_2) with random weights and BatchNorm statistics, exports them and the
 * pool3 features of random images at three sizes (32 and 64: resized to 299; 299: not), and
 * diffvit's network loaded from that file must give the same features. Skipped, saying why, where
 * /usr/bin/python3 has no torch. Then the FID/KID machinery: streaming statistics, statistics
 * files, KID against frechet.ts's reference estimator, and `diffvit eval fid` end to end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';

import * as dv from '../lib/index.js';
import { fidCommand, fidLabels } from '../lib/cli/fid.js';
import { arraySource, computeStats, fid, kid, loadStats, quantize8bit, saveStats, StatsAccumulator, type FidStats } from '../lib/eval/fid.js';
import { featureStats, frechetDistance, kernelDistance } from '../lib/eval/frechet.js';
import { InceptionV3, loadInception } from '../lib/eval/inception.js';
import { ShapesDataset } from '../lib/data/dataset.js';
import { encodePNG } from '../lib/image/png.js';
import { saveCheckpoint } from '../lib/models/checkpoint.js';
import { DiffusionViT } from '../lib/models/diffusion_vit.js';
import { readSafetensors, writeSafetensors } from '../lib/models/safetensors.js';
import { expectClose, randomValues, recordError } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(import.meta.dirname, '..', 'scripts', 'convert_inception.py');
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch'], { timeout: 60_000 }).status !== 0;
const numpyMissing = spawnSync(PYTHON, ['-c', 'import numpy'], { timeout: 60_000 }).status !== 0;

/** Deterministic images in [-1, 1] (uniform noise: every pixel differs from its neighbours). */
function images(count: number, size: number, seed: number): Float32Array {
  return Float32Array.from(randomValues(count * 3 * size * size, seed), (v) => Math.tanh(v));
}

function readF32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const groups = [
  { size: 32, count: 3 },
  { size: 64, count: 2 },
  { size: 299, count: 1 },
];

describe.skipIf(torchMissing)(`FID Inception-v3 against PyTorch${torchMissing ? ' (skipped: /usr/bin/python3 cannot import torch)' : ''}`, () => {
  let dir = '';
  let net: InceptionV3 | null = null;
  const inputs = new Map<number, Float32Array>();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'diffvit-inception-'));
    const args = [SCRIPT, '--random', join(dir, 'w.safetensors'), '--seed', '3'];
    for (const g of groups) {
      const x = images(g.count, g.size, g.size);
      inputs.set(g.size, x);
      writeFileSync(join(dir, `x${g.size}.f32`), x);
      args.push('--inputs', join(dir, `x${g.size}.f32`), '--count', String(g.count), '--size', String(g.size), '--features', join(dir, `f${g.size}.f32`));
    }
    execFileSync(PYTHON, args, { stdio: 'pipe', timeout: 300_000 });
    net = loadInception(join(dir, 'w.safetensors'));
  }, 300_000);

  afterAll(() => {
    net?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test.each(groups)('$count image(s) of $size×$size: features match torch (relative error <= 1e-4)', ({ size, count }) => {
    const expected = readF32(join(dir, `f${size}.f32`));
    const got = dv.scope(() => net!.features(dv.tensor(inputs.get(size)!, [count, 3, size, size]), { batchSize: 2 }).data());
    expect(got.length).toBe(count * 2048);
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
    // relative to the features' scale (DESIGN §4), and elementwise with that as the floor
    expect(worst / scale).toBeLessThanOrEqual(1e-4);
    expectClose(got, expected, { atol: 1e-4 * scale, rtol: 1e-4 }, `pool3 features ${size}×${size}`);
    recordError(`inception pool3 vs torch (${size}×${size}, |err|/max|ref|)`, worst / scale);
  });

  test('loadInception names missing, misshapen and unexpected tensors, and leaks nothing', () => {
    const { tensors } = readSafetensors(join(dir, 'w.safetensors'));
    try {
      const live = dv.liveTensorCount();
      const without = new Map(tensors);
      without.delete('Mixed_6c.branch7x7dbl_3.bn.running_var');
      expect(() => new InceptionV3(without)).toThrow(/diffvit\.loadInception: missing tensor 'Mixed_6c\.branch7x7dbl_3\.bn\.running_var' \(expected shape \[160\]\)/);
      expect(dv.liveTensorCount()).toBe(live);
      const misshapen = new Map(tensors);
      misshapen.set('Mixed_7b.branch3x3_2a.conv.weight', dv.zeros([384, 384, 3, 1]));
      expect(() => new InceptionV3(misshapen)).toThrow(/tensor 'Mixed_7b\.branch3x3_2a\.conv\.weight' expected shape \[384, 384, 1, 3\], received \[384, 384, 3, 1\]/);
      misshapen.get('Mixed_7b.branch3x3_2a.conv.weight')!.dispose();
      expect(dv.liveTensorCount()).toBe(live);
      // pytorch-fid's classifier and num_batches_tracked are ignored, anything else is refused
      const extra = dv.zeros([1]);
      const path = join(dir, 'extra.safetensors');
      writeSafetensors(path, [...tensors, ['fc.bias', extra], ['Conv2d_1a_3x3.bn.num_batches_tracked', extra], ['Mixed_5b.branch9x9.conv.weight', extra]]);
      extra.dispose();
      expect(() => loadInception(path)).toThrow(/diffvit\.loadInception: .*extra\.safetensors: unexpected tensors Mixed_5b\.branch9x9\.conv\.weight \(not pytorch-fid's FID Inception-v3\)/);
      expect(dv.liveTensorCount()).toBe(live);
      rmSync(path);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  });

  test('diffvit eval fid: reference statistics from --data shapes, statistics of --images and --checkpoint', async () => {
    const weights = join(dir, 'w.safetensors'), refPath = join(dir, 'ref.safetensors');
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await fidCommand(['--weights', weights, '--ref-stats', refPath, '--data', 'shapes', '--count', '3', '--batch', '2'])).toBe(0);
      const ref = loadStats(refPath);
      expect(ref.count).toBe(3);
      expect(ref.kidCount).toBe(3);
      expect(ref.metadata.source).toBe('3 images of shapes');

      // the same three shapes as 8-bit PNG files: nearly the same features
      const folder = join(dir, 'pngs');
      mkdirSync(folder);
      const shapes = new ShapesDataset(0, 3);
      for (let i = 0; i < 3; i++) {
        const px = shapes.get(i).pixels, rgb = new Uint8Array(32 * 32 * 3);
        for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = Math.round((px[c * 1024 + p] + 1) * 127.5);
        writeFileSync(join(folder, `${i}.png`), encodePNG(rgb, 32, 32));
      }
      const pngStats = join(dir, 'pngs.safetensors');
      expect(await fidCommand(['--weights', weights, '--images', folder, '--save-stats', pngStats])).toBe(0);
      const fromPng = loadStats(pngStats);
      expect(fromPng.count).toBe(3);
      expect(fromPng.metadata.source).toMatch(/^3 images of folder:.*pngs$/);
      const scale = ref.mu.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectClose(fromPng.mu, ref.mu, { atol: 1e-2 * scale, rtol: 1e-2 }, 'PNG vs float shapes');

      // a tiny class-conditional checkpoint, sampled with 2 Heun steps in batches of 1
      const model = new DiffusionViT({ arch: 'iuvit', img_size: 8, in_chans: 3, patch: 4, dim: 32, depth: 1, heads: 2, num_classes: 4 }, { seed: 1 });
      const ckpt = join(dir, 'tiny.safetensors'), sampleStats = join(dir, 'samples.safetensors');
      saveCheckpoint(ckpt, model);
      model.dispose();
      const live = dv.liveTensorCount();
      expect(await fidCommand(['--weights', weights, '--checkpoint', ckpt, '--count', '2', '--steps', '2', '--guidance', '1.5',
        '--sample-batch', '1', '--kid-features', '0', '--save-stats', sampleStats])).toBe(0);
      expect(dv.liveTensorCount()).toBe(live);
      const samples = loadStats(sampleStats);
      expect(samples.count).toBe(2);
      expect(samples.kidFeatures).toBeNull();
      expect(samples.metadata.source).toMatch(/^2 samples of .*tiny\.safetensors \(heun, 2 steps, guidance 1\.5, labels all, seed 0\)$/);

      await expect(fidCommand(['--weights', weights, '--ref-stats', refPath])).rejects.toThrow(/give exactly one of --data \(reference statistics\), --checkpoint, --images or --stats, received none/);
      await expect(fidCommand(['--weights', weights, '--ref-stats', refPath, '--images', folder, '--data', 'shapes'])).rejects.toThrow(/received --data, --images/);
      await expect(fidCommand(['--weights', weights, '--images', folder])).rejects.toThrow(/--images needs --ref-stats FILE \(to compare with\) or --save-stats FILE/);
      await expect(fidCommand(['--weights', join(dir, 'nope'), '--ref-stats', refPath, '--images', folder])).rejects.toThrow(/--weights .*nope: no such file/);
      await expect(fidCommand(['--weights', weights, '--ref-stats', join(dir, 'nope'), '--images', folder])).rejects.toThrow(/--ref-stats .*nope: no such file \(make it with --data\)/);
      await expect(fidCommand(['--weights', weights, '--ref-stats', refPath, '--images', join(dir, 'nope')])).rejects.toThrow(/--images DIR expected an existing folder \(no such folder\), received '.*nope'/);
      await expect(fidCommand(['--weights', weights, '--ref-stats', refPath, '--checkpoint', ckpt, '--count', '1'])).rejects.toThrow(/--count N expected an integer from 2 to 10000000, received '1'/);
      await expect(fidCommand(['--weights', weights, '--ref-stats', refPath, '--checkpoint', ckpt, '--sampler', 'rk4'])).rejects.toThrow(/--sampler NAME expected one of/);
    } finally {
      err.mockRestore();
      stderr.mockRestore();
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// FID/KID machinery (no torch needed)

/** Features with a non-zero mean and correlated columns, like pool3's. */
function features(count: number, dim: number, seed: number): Float32Array {
  const z = randomValues(count * dim, seed);
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) for (let j = 0; j < dim; j++) out[i * dim + j] = 2 + 0.5 * z[i * dim + j] + 0.3 * z[i * dim + ((j + 1) % dim)];
  return out;
}

describe('FID statistics and distances', () => {
  test('the streaming accumulator equals featureStats in float64, for any batching', () => {
    const dim = 17, count = 53, f = features(count, dim, 1);
    const ref = featureStats(f, count, dim);
    for (const sizes of [[53], [1, 52], [16, 16, 16, 5], [2, 1, 1, 49]]) {
      const acc = new StatsAccumulator(dim, 0);
      let at = 0;
      for (const n of sizes) {
        acc.add(f.subarray(at * dim, (at + n) * dim), n);
        at += n;
      }
      const s = acc.finish();
      expect(s.count).toBe(count);
      expect(s.kidFeatures).toBeNull();
      expectClose(s.mu, ref.mu, { atol: 1e-12, rtol: 1e-12 }, `mu ${sizes}`);
      expectClose(s.sigma, ref.sigma, { atol: 1e-12, rtol: 1e-10 }, `sigma ${sizes}`);
    }
    expect(() => new StatsAccumulator(dim).finish()).toThrow(/statistics need at least 2 images, received 0/);
    expect(() => new StatsAccumulator(dim).add(f.subarray(0, 5), 1)).toThrow(/expected 1×17 = 17 values, received 5/);
  });

  test('KID rows: all rows in order when they fit, else a seeded uniform subset of distinct rows', () => {
    const dim = 3, count = 400, f = Float32Array.from({ length: count * dim }, (_, i) => Math.floor(i / dim));
    const all = new StatsAccumulator(dim, 1000);
    all.add(f, count);
    expect(all.finish().kidFeatures).toEqual(f);
    const some = (seed: number) => {
      const acc = new StatsAccumulator(dim, 50, seed);
      for (let at = 0; at < count; at += 64) acc.add(f.subarray(at * dim, Math.min(count, at + 64) * dim), Math.min(64, count - at));
      const s = acc.finish();
      expect(s.kidCount).toBe(50);
      const rows = Array.from({ length: 50 }, (_, i) => s.kidFeatures![i * dim]);
      rows.forEach((r, i) => expect(s.kidFeatures!.subarray(i * dim, (i + 1) * dim)).toEqual(new Float32Array([r, r, r])));
      expect(new Set(rows).size).toBe(50);
      return rows;
    };
    const rows = some(7);
    expect(some(7)).toEqual(rows);
    expect(some(8)).not.toEqual(rows);
    // uniform: the kept rows are spread over the whole stream, not the first 50
    expect(rows.filter((r) => r >= 200).length).toBeGreaterThan(10);
  });

  test('statistics files round-trip exactly and bad files give clear errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-stats-'));
    try {
      const acc = new StatsAccumulator(8, 5);
      acc.add(features(9, 8, 2), 9);
      const stats = acc.finish();
      const path = join(dir, 's.safetensors');
      saveStats(path, stats, { source: 'test' });
      const back = loadStats(path);
      expect(back.count).toBe(9);
      expect(back.dim).toBe(8);
      expect(back.mu).toEqual(stats.mu);
      expect(back.sigma).toEqual(stats.sigma);
      expect(back.kidFeatures).toEqual(stats.kidFeatures);
      expect(back.metadata).toMatchObject({ format: 'diffvit-fid-stats', source: 'test', count: '9' });
      expect(fid(back, stats)).toBeCloseTo(0, 10);

      // mu/sigma as F32 and no KID rows (as other tools may write them) are accepted
      const t = (v: Float64Array, shape: number[]) => dv.tensor(Float32Array.from(v), shape);
      const f32 = join(dir, 'f32.safetensors');
      writeSafetensors(f32, [['mu', t(stats.mu, [8])], ['sigma', t(stats.sigma, [8, 8])]], { count: '9' });
      const loose = loadStats(f32);
      expect(loose.count).toBe(9);
      expect(loose.kidFeatures).toBeNull();
      expectClose(loose.sigma, stats.sigma, { atol: 1e-6, rtol: 1e-6 });

      const bad = join(dir, 'bad.safetensors');
      writeSafetensors(bad, [['mu', t(stats.mu, [8])], ['sigma', t(stats.sigma.subarray(0, 56), [7, 8])]], { count: '9' });
      expect(() => loadStats(bad)).toThrow(/diffvit\.loadStats: .*bad\.safetensors: tensor 'sigma' expected shape \[8, 8\], received \[7,8\]/);
      writeSafetensors(bad, [['mu', t(stats.mu, [8])]]);
      expect(() => loadStats(bad)).toThrow(/no tensor 'sigma' \(not a statistics file\)/);
      writeSafetensors(bad, [['mu', t(stats.mu, [8])], ['sigma', t(stats.sigma, [8, 8])]]);
      expect(() => loadStats(bad)).toThrow(/count NaN \(expected an integer >= 2\)/);
      writeFileSync(bad, readFileSync(path).subarray(0, 200));
      expect(() => loadStats(bad)).toThrow(/truncated or corrupt|does not fit/);
      expect(() => loadStats(join(dir, 'missing'))).toThrow(/cannot read the file \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(numpyMissing)(`loadStats reads pytorch-fid/EDM .npz statistics (savez, savez_compressed, Fortran order, float32)${numpyMissing ? ' (skipped: /usr/bin/python3 cannot import numpy)' : ''}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-npz-'));
    try {
      const script = `
import numpy as np, sys
d = sys.argv[1]
mu = np.arange(5.0) / 3
sigma = np.arange(25.0).reshape(5, 5) / 7
sigma = sigma + sigma.T
np.savez(d + '/plain.npz', mu=mu, sigma=sigma)
np.savez_compressed(d + '/compressed.npz', mu=mu, sigma=sigma)
np.savez(d + '/fortran.npz', mu=mu.astype(np.float32), sigma=np.asfortranarray(np.arange(25.0).reshape(5, 5)))
np.savez(d + '/nosigma.npz', mu=mu)
np.savez(d + '/ints.npz', mu=np.arange(5), sigma=sigma)
`;
      execFileSync(PYTHON, ['-c', script, dir], { stdio: 'pipe', timeout: 60_000 });
      const mu = Float64Array.from({ length: 5 }, (_, i) => i / 3);
      const sigma = new Float64Array(25); // (A + Aᵀ) / 7 with A = arange(25) as 5×5: exact in float64 as numpy's
      for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) sigma[i * 5 + j] = (i * 5 + j) / 7 + (j * 5 + i) / 7;
      for (const name of ['plain', 'compressed']) {
        const s = loadStats(join(dir, `${name}.npz`));
        expect(s.mu).toEqual(mu);
        expect(s.sigma).toEqual(sigma);
        expect(s).toMatchObject({ dim: 5, count: 0, kidFeatures: null, kidCount: 0 });
      }
      const f = loadStats(join(dir, 'fortran.npz'));
      expect(f.mu).toEqual(Float64Array.from(mu, (v) => Math.fround(v)));
      expect(f.sigma).toEqual(Float64Array.from({ length: 25 }, (_, k) => k));
      expect(() => loadStats(join(dir, 'nosigma.npz'))).toThrow(/nosigma\.npz: no array 'sigma' in the archive \(holds mu\.npy\)/);
      expect(() => loadStats(join(dir, 'ints.npz'))).toThrow(/array 'mu' has dtype <i8 \(float64 '<f8' or float32 '<f4' are read\)/);
      writeFileSync(join(dir, 'cut.npz'), readFileSync(join(dir, 'plain.npz')).subarray(0, 300));
      expect(() => loadStats(join(dir, 'cut.npz'))).toThrow(/cut\.npz: (not a zip archive|truncated or corrupt)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('kid() on the GEMM equals kernelDistance (same subsets, float64 loops)', () => {
    const dim = 64, a = features(40, dim, 3), b = features(50, dim, 4).map((v) => v * 1.1);
    const stats = (f: Float32Array, n: number): FidStats => ({ ...featureStats(f, n, dim), kidFeatures: f, kidCount: n });
    for (const [subsets, subsetSize] of [[5, 30], [3, 1000]]) {
      const ours = kid(stats(a, 40), stats(b, 50), { subsets, subsetSize, seed: 9 });
      const ref = kernelDistance(a, 40, b, 50, dim, { subsets, subsetSize, seed: 9 });
      expect(ours.subsetSize).toBe(Math.min(subsetSize, 40));
      expect(ours.mean).toBeGreaterThan(0);
      expect(Math.abs(ours.mean - ref.mean)).toBeLessThan(1e-5 * Math.abs(ref.mean) + 1e-7);
      expect(Math.abs(ours.std - ref.std)).toBeLessThan(1e-4 * ref.std + 1e-7);
    }
    expect(() => kid({ ...stats(a, 40), kidFeatures: null, kidCount: 0 }, stats(b, 50))).toThrow(/both statistics need kept feature rows/);
  });

  test('fid() is the Fréchet distance of the statistics; quantize8bit gives what a saved PNG holds', () => {
    const s1 = featureStats(features(30, 6, 5), 30, 6), s2 = featureStats(features(30, 6, 6), 30, 6);
    expect(fid(s1, s2)).toBe(frechetDistance(s1, s2));
    const x = new Float64Array([-1, -0.99, 0, 0.5, 1, 1.5, -3, 1 / 127.5 - 1]); // the last: uint8 1 exactly
    quantize8bit(x);
    // uint8 = clip(floor(x·127.5 + 128)) as EDM's generate.py; back to [-1, 1] as k/127.5 - 1
    expect(Array.from(x, (v) => Math.round((v + 1) * 127.5))).toEqual([0, 1, 128, 191, 255, 255, 0, 1]);
  });

  test('computeStats replicates 1-channel images to RGB (as pytorch-fid\'s convert(\'RGB\')) and can quantise to 8 bits', () => {
    const seen: Float32Array[] = [];
    // a stand-in network: records its input, returns 2048 features from it
    const fake = {
      forward: (x: dv.Tensor) => {
        expect(x.shape).toEqual([2, 3, 4, 4]);
        const v = x.data();
        seen.push(v);
        return dv.tensor(Float32Array.from({ length: 2 * 2048 }, (_, i) => v[i % v.length] + i / 4096), [2, 2048]);
      },
    } as unknown as InceptionV3;
    const grey = Float32Array.from({ length: 2 * 16 }, (_, i) => Math.sin(i) * 0.9);
    const stats = computeStats(fake, arraySource(grey, [2, 1, 4, 4]), { kidFeatures: 0 });
    expect(stats.count).toBe(2);
    for (let n = 0; n < 2; n++) for (let c = 0; c < 3; c++) expect(seen[0].subarray((n * 3 + c) * 16, (n * 3 + c + 1) * 16)).toEqual(grey.subarray(n * 16, (n + 1) * 16));
    computeStats(fake, arraySource(grey, [2, 1, 4, 4]), { quantize: true });
    for (const v of seen[1]) expect(Math.abs((v + 1) * 127.5 - Math.round((v + 1) * 127.5))).toBeLessThan(1e-4);
    expect(() => computeStats(fake, arraySource(new Float32Array(2 * 2 * 16), [2, 2, 4, 4]))).toThrow(/images need 1 or 3 channels, received 2/);
  });

  test('diffvit eval fid --stats compares two statistics files (FID and KID), as JSON or text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-fidcli-'));
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    try {
      const make = (seed: number, shift: number, keep: number) => {
        const acc = new StatsAccumulator(16, keep, seed);
        acc.add(features(60, 16, seed).map((v) => v + shift), 60);
        return acc.finish();
      };
      const a = make(1, 0, 60), b = make(2, 0.3, 60);
      saveStats(join(dir, 'a.safetensors'), a, { source: 'set A' });
      saveStats(join(dir, 'b.safetensors'), b);
      expect(await fidCommand(['--ref-stats', join(dir, 'a.safetensors'), '--stats', join(dir, 'b.safetensors'), '--json', '--kid-subsets', '3', '--kid-subset-size', '20'])).toBe(0);
      const r = JSON.parse(out.pop()!);
      expect(r.fid).toBeCloseTo(frechetDistance(b, a), 8);
      expect(r.kid.mean).toBeCloseTo(kid(b, a, { subsets: 3, subsetSize: 20, seed: 0 }).mean, 10);
      expect(r).toMatchObject({ count: 60, refCount: 60, kid: { subsets: 3, subsetSize: 20 } });
      expect(await fidCommand(['--ref-stats', join(dir, 'b.safetensors'), '--stats', join(dir, 'a.safetensors'), '--kid-subsets', '2'])).toBe(0);
      expect(out.pop()).toMatch(/^KID {2}-?\d+\.\d{6} ± \d+\.\d{6} {3}\(2 subsets of 60\)$/);
      expect(out.pop()).toMatch(/^FID {2}\d+\.\d{4} {3}\(the statistics in .*a\.safetensors \(set A\) vs 60 reference images in .*b\.safetensors\)$/);
      saveStats(join(dir, 'c.safetensors'), make(3, 0, 0));
      expect(await fidCommand(['--ref-stats', join(dir, 'a.safetensors'), '--stats', join(dir, 'c.safetensors')])).toBe(0);
      expect(out.pop()).toMatch(/^KID not computed \(no feature rows kept: .*c\.safetensors\)$/);
      const eight = new StatsAccumulator(8, 0);
      eight.add(features(3, 8, 1), 3);
      saveStats(join(dir, 'd.safetensors'), eight.finish());
      await expect(fidCommand(['--ref-stats', join(dir, 'a.safetensors'), '--stats', join(dir, 'd.safetensors')])).rejects.toThrow(/holds 16-d statistics, the compared ones are 8-d/);
      await expect(fidCommand(['--stats', join(dir, 'a.safetensors')])).rejects.toThrow(/--stats needs --ref-stats FILE/);
      await expect(fidCommand(['--ref-stats', join(dir, 'a.safetensors'), '--stats', join(dir, 'nope')])).rejects.toThrow(/--stats FILE expected an existing file \(no such file\), received '.*nope'/);
      await expect(fidCommand(['--ref-stats', join(dir, 'a.safetensors'), '--stats', join(dir, 'b.safetensors'), '--kid-subsets', '0'])).rejects.toThrow(/--kid-subsets N expected an integer from 1 to 100000, received '0'/);
      await expect(fidCommand(['--data', 'shapes', '--ref-stats', join(dir, 'x.safetensors')])).rejects.toThrow(/--weights FILE is required/);
    } finally {
      log.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('fidLabels: classes in turn, a repeated list, none for unconditional models', () => {
    expect(Array.from(fidLabels(undefined, 4, 6)!)).toEqual([0, 1, 2, 3, 0, 1]);
    expect(Array.from(fidLabels('all', 3, 4)!)).toEqual([0, 1, 2, 0]);
    expect(Array.from(fidLabels('2,4', 4, 5)!)).toEqual([2, 4, 2, 4, 2]);
    expect(fidLabels(undefined, 0, 5)).toBeNull();
    expect(() => fidLabels('1', 0, 5)).toThrow(/the model is unconditional/);
    expect(() => fidLabels('5', 4, 5)).toThrow(/--labels L expected 'all' or classes in \[0, 4\]/);
  });
});
