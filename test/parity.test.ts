/**
 * Parity with the PyTorch twin: checkpoints exported by shared/reference/diffvit_torch.py load into
 * diffvit and D(x; σ) matches the twin's output within 1e-4 × max|output|. Committed fixtures
 * (test/fixtures/parity/generate.sh) always run; a live export + forward runs where torch exists.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { EDMDenoiser } from '../lib/diffusion/edm.js';
import { loadCheckpoint } from '../lib/models/checkpoint.js';
import { writeSafetensors } from '../lib/models/safetensors.js';
import { randomValues } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'parity');
const TWIN = join(import.meta.dirname, '..', '..', 'shared', 'reference', 'diffvit_torch.py');
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;
const liveSkip = !existsSync(TWIN) ? `the twin is not at ${TWIN}` : !hasTorch ? '/usr/bin/python3 has no torch (apt-get install -y python3-torch)' : '';

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function i32(path: string): Int32Array {
  const b = readFileSync(path);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** D(x; σ, labels, context) of `model` on a fixture directory's inputs. */
function denoise(model: dv.DiffusionViT, dir: string): dv.Tensor {
  const { batch } = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { batch: number };
  const c = model.config;
  const x = dv.tensor(f32(join(dir, 'x.f32')), [batch, c.in_chans, c.img_size, c.img_size]);
  const sigma = f32(join(dir, 'sigma.f32'));
  const labels = existsSync(join(dir, 'labels.i32')) ? dv.tensor(i32(join(dir, 'labels.i32')), [batch], 'int32') : null;
  const context = existsSync(join(dir, 'context.f32')) ? dv.tensor(f32(join(dir, 'context.f32')), [batch, c.context_len, c.context_dim]) : null;
  return new EDMDenoiser(model).forward(x, Float64Array.from(sigma), labels, context);
}

/** Runs diffvit's D on a fixture directory and returns [ours, twin's]. */
function runCase(dir: string): [Float32Array, Float32Array] {
  const { model } = loadCheckpoint(join(dir, 'model.safetensors'));
  try {
    const ours = dv.noGrad(() => dv.scope(() => denoise(model, dir).data()));
    return [ours, f32(join(dir, 'd.f32'))];
  } finally {
    model.dispose();
  }
}

function expectParity(ours: Float32Array, theirs: Float32Array, label: string): number {
  expect(ours.length, label).toBe(theirs.length);
  const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let worst = 0;
  for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
  expect(worst / scale, `${label}: max abs error ${worst} vs output scale ${scale}`).toBeLessThanOrEqual(1e-4);
  return worst / scale;
}

describe('parity with the PyTorch twin (committed fixtures)', () => {
  for (const name of readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, 'case.json')))) {
    test(name, () => {
      const [ours, theirs] = runCase(join(FIXTURES, name));
      const rel = expectParity(ours, theirs, name);
      console.log(`parity ${name}: max |diff| / max |output| = ${rel.toExponential(2)}`);
    });
  }
});

describe('gradients match the twin (committed fixtures)', () => {
  // d/dθ sum(D(x; σ) · r) for every parameter θ, against torch autograd on the same checkpoint:
  // catches a backward that is right op by op but wired wrongly in the model.
  for (const name of readdirSync(FIXTURES).filter((n) => existsSync(join(FIXTURES, n, 'grads.safetensors')))) {
    test(name, () => {
      const dir = join(FIXTURES, name);
      const { model } = loadCheckpoint(join(dir, 'model.safetensors'));
      const { tensors: expected } = dv.readSafetensors(join(dir, 'grads.safetensors'));
      try {
        dv.scope(() => {
          const D = denoise(model, dir);
          dv.backward(dv.sum(dv.mul(D, dv.tensor(f32(join(dir, 'r.f32')), D.shape))));
        });
        let worst = 0;
        for (const [param, p] of model.namedParameters()) {
          const theirs = expected.get(param)!.data(), ours = p.grad!.data();
          const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          let err = 0;
          for (let i = 0; i < ours.length; i++) err = Math.max(err, Math.abs(ours[i] - theirs[i]));
          expect(err / scale, `${name}: d/d ${param}: max abs error ${err} vs gradient scale ${scale}`).toBeLessThanOrEqual(1e-4);
          worst = Math.max(worst, err / scale);
        }
        expect(model.parameters().length).toBe(expected.size);
        console.log(`gradient parity ${name}: worst max |diff| / max |grad| = ${worst.toExponential(2)}`);
      } finally {
        model.dispose();
        for (const t of expected.values()) t.dispose();
      }
    });
  }
});

describe.skipIf(liveSkip !== '')(`parity with the PyTorch twin (live${liveSkip ? `; skipped: ${liveSkip}` : ''})`, () => {
  test.each([
    ['iuvit-t/4 with labels', { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 4, dim: 256, depth: 7, heads: 4, num_classes: 10 }],
    ['ascend token', { arch: 'ascend', img_size: 16, in_chans: 3, patch: 2, dim: 64, enc_depth: 3, dec_depth: 1, heads: 2, time_cond: 'token', num_classes: 3 }],
  ])('%s', (_name, config) => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-parity-'));
    try {
      const batch = 2;
      execFileSync(PYTHON, [TWIN, 'export', '--config', JSON.stringify(config), '--out', join(dir, 'model.safetensors'), '--seed', '3']);
      const n = batch * config.in_chans * config.img_size ** 2;
      writeFileSync(join(dir, 'x.f32'), Float32Array.from(randomValues(n, 11)));
      writeFileSync(join(dir, 'sigma.f32'), Float32Array.from([0.03, 7.5]));
      writeFileSync(join(dir, 'labels.i32'), Int32Array.from([1, config.num_classes]));
      writeFileSync(join(dir, 'case.json'), JSON.stringify({ config, batch }));
      execFileSync(PYTHON, [TWIN, 'forward', '--ckpt', join(dir, 'model.safetensors'), '--x', join(dir, 'x.f32'),
        '--sigma', join(dir, 'sigma.f32'), '--labels', join(dir, 'labels.i32'), '--out', join(dir, 'd.f32')]);
      const [ours, theirs] = runCase(dir);
      expectParity(ours, theirs, 'live');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bad checkpoints give clear errors', () => {
  const good = join(FIXTURES, 'iuvit-adaln-labels', 'model.safetensors');
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-badckpt-'));
  test('truncated file', () => {
    const bytes = readFileSync(good);
    const path = join(dir, 'truncated.safetensors');
    writeFileSync(path, bytes.subarray(0, bytes.length - 1000));
    expect(() => loadCheckpoint(path)).toThrow(/truncated\.safetensors: tensor '.*': data ends at byte \d+ but the file has \d+ data bytes \(truncated\)/);
    writeFileSync(path, bytes.subarray(0, 5));
    expect(() => loadCheckpoint(path)).toThrow(/truncated: 5 bytes/);
  });
  test('missing file', () => {
    expect(() => loadCheckpoint(join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors: cannot read the file \(ENOENT\)/);
  });
  test('wrong-shaped and mislabelled parameters', () => {
    const { model } = loadCheckpoint(good);
    const sd = model.stateDict();
    const path = join(dir, 'wrong.safetensors');
    const bad = new Map(sd);
    bad.set('pos_embed', dv.zeros([1, 3, 32]));
    writeSafetensors(path, bad, { config: JSON.stringify(model.config) });
    expect(() => loadCheckpoint(path)).toThrow(/parameter 'pos_embed' expected shape \[1, 16, 32\], received \[1, 3, 32\]/);
    const renamed = new Map([...sd].map(([k, v]) => [k === 'mid_block.attn.qkv.weight' ? 'mid_block.attn.qkv.w' : k, v]));
    writeSafetensors(path, renamed, { config: JSON.stringify(model.config) });
    expect(() => loadCheckpoint(path)).toThrow(/missing mid_block\.attn\.qkv\.weight/);
    writeSafetensors(path, sd, {});
    expect(() => loadCheckpoint(path)).toThrow(/no 'config' in __metadata__/);
    model.dispose();
    bad.get('pos_embed')!.dispose();
  });
});
