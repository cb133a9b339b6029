/**
 * Checkpoints of any size: the streamed safetensors writer, positioned reads past 4 GiB (a sparse
 * file whose tensors sit after a > 4 GiB hole: loadCheckpoint, Trainer.resume and exportWeights
 * read only what they need, in bounded memory), and weights-only exports that the PyTorch twin
 * loads.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { EDMDenoiser } from '../lib/diffusion/edm.js';
import { loadCheckpoint, saveCheckpoint } from '../lib/models/checkpoint.js';
import { exportWeights } from '../lib/models/export.js';
import { type RawEntry, readSafetensors, writeSafetensors, writeSafetensorsRaw, writeSafetensorsStreamed } from '../lib/models/safetensors.js';
import { readSafetensorsFloats, readSafetensorsHeader } from '../lib/models/safetensors_header.js';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, Trainer } from '../lib/train/trainer.js';
import { randomValues } from './helpers.js';

const TWIN = join(import.meta.dirname, '..', '..', 'shared', 'reference', 'diffvit_torch.py');
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
const twinSkip = !existsSync(TWIN) ? `the twin is not at ${TWIN}` : !hasTorch ? '/usr/bin/python3 has no torch (apt-get install -y python3-torch)' : '';

const TINY: TrainConfig = {
  ...DEFAULT_TRAIN_CONFIG,
  model: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 2, heads: 2, num_classes: 4 },
  data: { kind: 'shapes', seed: 0, size: 32 },
  batchSize: 4,
  steps: 4,
  warmupSteps: 1,
  emaHalfLifeImages: 20,
  matmulPrecision: 'float32',
};
// Past 4 GiB (and 2 GiB, the old whole-file read's limit) with room to spare; a hole, not data.
const HOLE_BYTES = 2 ** 32 + 2 ** 20;

const dir = join(tmpdir(), `diffvit-checkpoints-${process.pid}`);
beforeAll(() => mkdirSync(dir, { recursive: true }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const values = (ts: dv.Tensor[]) => ts.map((t) => t.data());
const sameValues = (a: Float32Array[], b: Float32Array[]) => {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength))).toBe(true));
};

/** Every tensor of a (small) safetensors file as it is stored. */
function rawEntries(path: string): RawEntry[] {
  const bytes = readFileSync(path);
  return [...readSafetensorsHeader(path).entries].map(([name, e]) => [name, e.dtype, e.shape, bytes.subarray(e.begin, e.end)]);
}

/**
 * A copy of safetensors file `src` at `dst` with an F32 tensor 'train.hole' of HOLE_BYTES first in
 * the data: ftruncate leaves it a hole (nothing written), and every tensor of `src` follows it, past
 * 4 GiB, written with positioned writes.
 */
function padWithHole(src: string, dst: string): void {
  const { entries, metadata } = readSafetensorsHeader(src);
  const bytes = readFileSync(src);
  const header: Record<string, unknown> = { __metadata__: metadata, 'train.hole': { dtype: 'F32', shape: [HOLE_BYTES / 4], data_offsets: [0, HOLE_BYTES] } };
  let offset = HOLE_BYTES;
  for (const [name, { dtype, shape, begin, end }] of entries) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + end - begin] };
    offset += end - begin;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  const dataStart = 8 + json.length;
  const fd = openSync(dst, 'w');
  try {
    writeSync(fd, head, 0, 8, 0);
    writeSync(fd, Buffer.from(json), 0, json.length, 8);
    ftruncateSync(fd, dataStart + offset);
    offset = HOLE_BYTES;
    for (const { begin, end } of entries.values()) {
      writeSync(fd, bytes, begin, end - begin, dataStart + offset);
      offset += end - begin;
    }
  } finally {
    closeSync(fd);
  }
}

describe('the streamed safetensors writer', () => {
  test('round trip: float32 and int32 tensors, raw F16/I64 entries and metadata', () => {
    const path = join(dir, 'round.safetensors');
    const a = dv.tensor(Float32Array.from(randomValues(24, 1)), [2, 3, 4]);
    const b = dv.tensor(Int32Array.from([-3, 0, 7, 2147483647]), [4], 'int32');
    const view = dv.transpose(a, 1, 2); // a non-contiguous view is written in logical order
    writeSafetensors(path, [['a', a], ['b', b], ['view', view]], { note: 'x' });
    const back = readSafetensors(path);
    expect(back.metadata).toEqual({ note: 'x' });
    expect([...back.tensors.keys()]).toEqual(['a', 'b', 'view']);
    expect(back.tensors.get('a')!.shape).toEqual([2, 3, 4]);
    sameValues([back.tensors.get('a')!.data(), back.tensors.get('view')!.data()], [a.data(), view.data()]);
    expect(back.tensors.get('b')!.dtype).toBe('int32');
    expect([...back.tensors.get('b')!.toArray()]).toEqual([-3, 0, 7, 2147483647]);
    for (const t of [a, b, ...back.tensors.values()]) t.dispose();

    const half = Buffer.alloc(4);
    half.writeUInt16LE(0x3c00, 0); // 1
    half.writeUInt16LE(0xc000, 2); // -2
    const big = Buffer.alloc(16);
    big.writeBigInt64LE(-5n, 0);
    big.writeBigInt64LE(2n ** 40n, 8);
    writeSafetensorsRaw(path, [['h', 'F16', [2], half], ['i', 'I64', [2], big]]);
    expect(() => readSafetensors(path)).toThrow(/round\.safetensors: tensor 'i': value 1099511627776 does not fit int32/);
    writeSafetensorsRaw(path, [['h', 'F16', [2], half], ['i', 'I64', [1], big.subarray(0, 8)]]);
    const raw = readSafetensors(path);
    expect([...raw.tensors.get('h')!.data()]).toEqual([1, -2]);
    expect([...raw.tensors.get('i')!.toArray()]).toEqual([-5]);
    for (const t of raw.tensors.values()) t.dispose();
  });

  test('one tensor at a time: each is written before the next one is made', () => {
    const path = join(dir, 'streamed.safetensors');
    const sizes: number[] = [];
    const tmp = () => readdirSync(dir).find((f) => f.startsWith('streamed.safetensors.tmp-'))!;
    const entry = (name: string, n: number) => ({
      name, dtype: 'F32', shape: [n],
      bytes: () => {
        sizes.push(statSync(join(dir, tmp())).size); // what the temp file holds when this entry is made
        return new Uint8Array(Float32Array.from({ length: n }, (_, i) => i + n).buffer);
      },
    });
    writeSafetensorsStreamed(path, [entry('x', 3), entry('y', 5), entry('z', 2)]);
    const { entries } = readSafetensorsHeader(path);
    const start = entries.get('x')!.begin;
    expect(sizes).toEqual([start, start + 12, start + 32]);
    expect([...readSafetensorsFloats(readSafetensorsHeader(path), 'y')]).toEqual([5, 6, 7, 8, 9]);
  });

  test('a failed write leaves the old file and no temp file; bad entries are refused before writing', () => {
    const path = join(dir, 'atomic.safetensors');
    writeSafetensorsRaw(path, [['keep', 'F32', [1], new Uint8Array(4)]]);
    const before = readFileSync(path);
    const boom = { name: 'b', dtype: 'F32', shape: [1], bytes: (): Uint8Array => { throw new Error('read back failed'); } };
    expect(() => writeSafetensorsStreamed(path, [{ name: 'a', dtype: 'F32', shape: [1], bytes: () => new Uint8Array(4) }, boom])).toThrow('read back failed');
    expect(() => writeSafetensorsStreamed(path, [{ name: 'a', dtype: 'F32', shape: [2], bytes: () => new Uint8Array(4) }])).toThrow(
      /atomic\.safetensors: cannot write tensor 'a': 4 bytes for F32 shape \[2\] \(expected 8\)/);
    expect(() => writeSafetensorsRaw(path, [['a', 'F32', [1], new Uint8Array(4)], ['a', 'F32', [1], new Uint8Array(4)]])).toThrow(/tensor name 'a' is repeated/);
    expect(() => writeSafetensorsRaw(path, [['__metadata__', 'F32', [1], new Uint8Array(4)]])).toThrow(/tensor name '__metadata__' is reserved/);
    expect(() => writeSafetensorsRaw(path, [['constructor', 'U8', [1], new Uint8Array(1)]])).toThrow(/tensor 'constructor': unsupported dtype "U8"/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(() => writeSafetensorsRaw(join(dir, 'no', 'such', 'dir.safetensors'), [])).toThrow(/dir\.safetensors: cannot write .*dir\.safetensors\.tmp-\d+ \(ENOENT\)/);
    expect(() => writeSafetensorsRaw(dir, [])).toThrow(/cannot write the file \(EISDIR\)/);
  });
});

describe('checkpoints past 4 GiB (a sparse file)', () => {
  const small = join(dir, 'train.safetensors'), large = join(dir, 'large.safetensors');
  let trainer: Trainer;
  beforeAll(() => {
    trainer = new Trainer(TINY);
    for (let i = 0; i < 2; i++) trainer.trainStep();
    trainer.save(small);
    padWithHole(small, large);
  });
  afterAll(() => trainer.dispose());

  test('the file is over 4 GiB and its tensors lie past 2^32', () => {
    expect(statSync(large).size).toBeGreaterThan(2 ** 32);
    const header = readSafetensorsHeader(large);
    const name = 'mid_block.attn.qkv.weight';
    expect(header.entries.get(name)!.begin).toBeGreaterThan(2 ** 32);
    sameValues([readSafetensorsFloats(header, name)], [readSafetensorsFloats(readSafetensorsHeader(small), name)]);
  });

  test('loadCheckpoint reads the model (the EMA weights) exactly, not the rest of the file', () => {
    globalThis.gc?.();
    const rss = process.memoryUsage.rss();
    const { model, extra, metadata } = loadCheckpoint(large);
    const grown = process.memoryUsage.rss() - rss;
    sameValues(values(model.parameters()), values(trainer.ema.shadow));
    expect(extra.size).toBe(0);
    expect(JSON.parse(metadata.trainer).step).toBe(2);
    model.dispose();
    // The model is ~100 kB; a read of the file would be 4 GiB.
    expect(grown).toBeLessThan(64 * 2 ** 20);
  });

  test('Trainer.resume continues the run from it as from the small file', () => {
    const a = Trainer.resume(small), b = Trainer.resume(large);
    try {
      const state = (t: Trainer) => values([...t.optimizer.params, ...t.optimizer.expAvg, ...t.optimizer.expAvgSq, ...t.ema.shadow]);
      sameValues(state(b), state(trainer));
      expect(b.step).toBe(2);
      expect(b.trainStep().loss).toBe(a.trainStep().loss);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  test('a file cut short past 2^32 names the tensor and the offsets', () => {
    const cut = join(dir, 'cut.safetensors');
    padWithHole(small, cut);
    const fd = openSync(cut, 'r+');
    ftruncateSync(fd, statSync(cut).size - 4);
    closeSync(fd);
    // The last tensor's end and the data size, both past 2^32 (ten digits or more).
    expect(() => loadCheckpoint(cut)).toThrow(/cut\.safetensors: tensor 'train\.exp_avg_sq\.[\w.]+': data ends at byte \d{10,} but the file has \d{10,} data bytes \(truncated\)/);
    rmSync(cut);
  });

  test('exportWeights copies the EMA or the raw weights of it', () => {
    const ema = join(dir, 'ema.safetensors'), raw = join(dir, 'raw.safetensors');
    expect(exportWeights(large, ema)).toEqual({ weights: 'ema', step: 2, tensors: trainer.model.parameters().length, bytes: 4 * trainer.model.numParameters() });
    expect(exportWeights(large, raw, { ema: false }).weights).toBe('raw');
    expect(statSync(ema).size).toBeLessThan(4 * trainer.model.numParameters() + 64 * 1024);
    const header = readSafetensorsHeader(ema);
    expect([...header.entries.keys()]).toEqual([...trainer.model.stateDict().keys()]);
    expect(header.metadata).toEqual({ format: 'diffvit', config: JSON.stringify(trainer.model.config), weights: 'ema', step: '2' });
    for (const [path, expected] of [[ema, trainer.ema.shadow], [raw, trainer.optimizer.params]] as const) {
      const { model } = loadCheckpoint(path);
      sameValues(values(model.parameters()), values(expected));
      model.dispose();
    }
    // An export is a model-only checkpoint: nothing to resume.
    expect(() => Trainer.resume(ema)).toThrow(/ema\.safetensors has no trainer state/);
  });
});

describe('exportWeights errors', () => {
  const trained = join(dir, 'errors-train.safetensors');
  beforeAll(() => {
    const t = new Trainer({ ...TINY, steps: 1 });
    t.trainStep();
    t.save(trained);
    t.dispose();
  });

  test('a model-only checkpoint has no EMA weights; an EMA export has no raw ones', () => {
    const model = new dv.DiffusionViT(TINY.model, { seed: 1 });
    const plain = join(dir, 'plain.safetensors'), copy = join(dir, 'plain-copy.safetensors');
    saveCheckpoint(plain, model);
    expect(() => exportWeights(plain, copy)).toThrow(/diffvit\.exportWeights: .*plain\.safetensors: has no EMA weights \(a model-only checkpoint/);
    expect(exportWeights(plain, copy, { ema: false })).toMatchObject({ weights: null, step: null });
    const { model: back } = loadCheckpoint(copy);
    sameValues(values(back.parameters()), values(model.parameters()));
    back.dispose();
    model.dispose();
    const ema = join(dir, 'errors-ema.safetensors');
    exportWeights(trained, ema);
    expect(exportWeights(ema, join(dir, 'errors-ema2.safetensors'))).toMatchObject({ weights: 'ema', step: 1 });
    expect(() => exportWeights(ema, copy, { ema: false })).toThrow(/errors-ema\.safetensors: holds only EMA weights/);
  });

  test('not a diffvit checkpoint, a missing raw weight, the checkpoint itself, bad arguments', () => {
    const other = join(dir, 'other.safetensors'), out = join(dir, 'out.safetensors');
    writeSafetensorsRaw(other, [['w', 'F32', [1], new Uint8Array(4)]], { format: 'something' });
    expect(() => exportWeights(other, out)).toThrow(/diffvit\.exportWeights: .*other\.safetensors: no 'config' in __metadata__ \(not a diffvit checkpoint\)/);
    writeSafetensorsRaw(other, [], { config: '{"arch":"iuvit","img_size":16,"in_chans":3,"patch":5,"dim":32,"depth":2,"heads":2}' });
    expect(() => exportWeights(other, out)).toThrow(/other\.safetensors: __metadata__\.config: diffvit\.modelConfig: 'patch' expected a divisor of img_size 16, received 5/);
    expect(() => exportWeights(join(dir, 'absent.safetensors'), out)).toThrow(/absent\.safetensors: cannot read the file \(ENOENT\)/);

    writeSafetensorsRaw(other, rawEntries(trained).filter(([name]) => name !== 'train.weights.pos_embed'), readSafetensorsHeader(trained).metadata);
    expect(() => exportWeights(other, out, { ema: false })).toThrow(/other\.safetensors: lacks 'train\.weights\.pos_embed'/);

    expect(() => exportWeights(trained, trained)).toThrow(/errors-train\.safetensors: is the checkpoint itself/);
    symlinkSync(trained, join(dir, 'link.safetensors'));
    expect(() => exportWeights(trained, join(dir, 'link.safetensors'))).toThrow(/link\.safetensors: is the checkpoint itself/);
    expect(() => exportWeights(trained, out, { ema: 'yes' as unknown as boolean })).toThrow(/diffvit\.exportWeights: option 'ema' expected true or false, received "yes"/);
    expect(() => exportWeights(trained, '')).toThrow(/argument 'outPath' expected a file path, received ""/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('loadCheckpoint options', () => {
  test('extra: true reads the trainer state too', () => {
    const path = join(dir, 'extra.safetensors');
    const t = new Trainer({ ...TINY, steps: 1 });
    t.trainStep();
    t.save(path);
    const { model, extra } = loadCheckpoint(path, { extra: true });
    const names = [...model.stateDict().keys()];
    expect([...extra.keys()].sort()).toEqual(names.flatMap((n) => [`train.weights.${n}`, `train.exp_avg.${n}`, `train.exp_avg_sq.${n}`]).sort());
    sameValues(values(names.map((n) => extra.get(`train.exp_avg.${n}`)!)), values(t.optimizer.expAvg));
    for (const x of extra.values()) x.dispose();
    model.dispose();
    t.dispose();
  });
});

describe('Trainer.resume', () => {
  test('names a missing or misshapen tensor of the trainer state', () => {
    const path = join(dir, 'resume.safetensors'), bad = join(dir, 'resume-bad.safetensors');
    const t = new Trainer({ ...TINY, steps: 1 });
    t.trainStep();
    t.save(path);
    t.dispose();
    const { metadata } = readSafetensorsHeader(path), entries = rawEntries(path);
    writeSafetensorsRaw(bad, entries.filter(([name]) => name !== 'train.exp_avg.pos_embed'), metadata);
    expect(() => Trainer.resume(bad)).toThrow(/resume-bad\.safetensors lacks 'train\.exp_avg\.pos_embed'; cannot resume/);
    writeSafetensorsRaw(bad, entries.map((e): RawEntry => (e[0] === 'train.exp_avg_sq.pos_embed' ? [e[0], 'F32', [1, 4], new Uint8Array(16)] : e)), metadata);
    expect(() => Trainer.resume(bad)).toThrow(/resume-bad\.safetensors has F32 \[1, 4\] for 'train\.exp_avg_sq\.pos_embed' \(expected float \[1, 16, 32\]\); cannot resume/);
  });
});

describe.skipIf(twinSkip !== '')(`the PyTorch twin loads an export${twinSkip ? ` (skipped: ${twinSkip})` : ''}`, () => {
  test('D(x; σ) of the twin on the exported EMA weights equals diffvit\'s', () => {
    const ckpt = join(dir, 'twin-train.safetensors'), out = join(dir, 'twin-ema.safetensors');
    const t = new Trainer(TINY);
    for (let i = 0; i < 2; i++) t.trainStep();
    t.save(ckpt);
    t.dispose();
    exportWeights(ckpt, out, { ema: true });
    const config = dv.fullConfig(TINY.model);
    const batch = 2, n = batch * config.in_chans * config.img_size ** 2;
    const x = Float32Array.from(randomValues(n, 5));
    const sigma = Float32Array.from([0.05, 4]), labels = Int32Array.from([1, 3]);
    writeFileSync(join(dir, 'x.f32'), x);
    writeFileSync(join(dir, 'sigma.f32'), sigma);
    writeFileSync(join(dir, 'labels.i32'), labels);
    execFileSync(PYTHON, [TWIN, 'forward', '--ckpt', out, '--x', join(dir, 'x.f32'), '--sigma', join(dir, 'sigma.f32'),
      '--labels', join(dir, 'labels.i32'), '--out', join(dir, 'd.f32')]);
    const b = readFileSync(join(dir, 'd.f32'));
    const theirs = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const { model } = loadCheckpoint(out);
    const ours = dv.noGrad(() => dv.scope(() => new EDMDenoiser(model).forward(
      dv.tensor(x, [batch, config.in_chans, config.img_size, config.img_size]), Float64Array.from(sigma), dv.tensor(labels, [batch], 'int32')).data()));
    model.dispose();
    expect(ours.length).toBe(theirs.length);
    const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = ours.reduce((m, v, i) => Math.max(m, Math.abs(v - theirs[i])), 0);
    expect(worst / scale).toBeLessThanOrEqual(1e-4);
  });
});
