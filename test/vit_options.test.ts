/**
 * IU-ViT/ASCEND options without a twin (#22 item 3): `conv_width` (a 3×3 conv stem before the patch
 * embedding and a conv head after the unpatchify), `label_token` (the label also as a token),
 * `qk_norm` (LayerNorm of each head's queries and keys) and `mlp: 'swiglu'` (a gated MLP).
 * Their parameters, a whole-network gradient check, the device against the host, a checkpoint round
 * trip, and the config errors. Off by default, so the presets keep the twin's parameters (the
 * parity fixtures check those).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { fullConfig, type ModelConfig } from '../lib/models/configs.js';
import { IUViT } from '../lib/models/diffusion_vit.js';
import { describeEachBackend, randomValues } from './helpers.js';
import { expectNetworkGradients, expectNetworkMatchesHost, randomizeParameters } from './trainer_checks.js';

/** 8×8 images in 2×2 patches, 4 classes, a stem of 5 channels, a SwiGLU of 43: odd widths everywhere. */
const TINY: ModelConfig = {
  arch: 'iuvit', img_size: 8, in_chans: 3, patch: 2, dim: 16, depth: 3, heads: 2, freq_dim: 8, num_classes: 4,
  conv_width: 5, label_token: true, qk_norm: true, mlp: 'swiglu',
};
const OFF: Partial<ModelConfig> = { conv_width: 0, label_token: false, qk_norm: false, mlp: 'gelu' };

const shapes = (m: IUViT) => new Map([...m.namedParameters()].map(([name, p]) => [name, p.shape]));

/** F of fixed inputs (two images, labels 2 and 1). */
function output(m: IUViT): Float32Array {
  return dv.scope(() => {
    const x = dv.tensor(Float32Array.from(randomValues(2 * 3 * 64, 1, 1)), [2, 3, 8, 8]);
    return m.forward(x, dv.tensor([0.3, -0.7]), dv.tensor([2, 1], [2], 'int32')).data();
  });
}

describe('IU-ViT options conv_width, label_token, qk_norm and mlp', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffvit-vit-options-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('all off by default: the same parameters as a config without them', () => {
    const plain: ModelConfig = { ...TINY, conv_width: undefined, label_token: undefined, qk_norm: undefined, mlp: undefined };
    expect(fullConfig(plain)).toMatchObject(OFF);
    const a = new IUViT(plain), b = new IUViT({ ...plain, ...OFF });
    expect(shapes(a)).toEqual(shapes(b));
    expect(shapes(a).has('stem.weight')).toBe(false);
    expect(shapes(a).has('mid_block.attn.q_norm.weight')).toBe(false);
    expect(shapes(a).get('mid_block.mlp.fc1.weight')).toEqual([64, 16]);
    expect(a.nExtra).toBe(0);
    a.dispose();
    b.dispose();
  });

  test('conv_width: a stem, patches and the head of conv_width channels; label_token: one more position; qk_norm: two LayerNorms of a head; swiglu: fc1 twice 2/3 of the width', () => {
    const m = new IUViT(TINY), s = shapes(m);
    expect(s.get('stem.weight')).toEqual([5, 3, 3, 3]);
    expect(s.get('patch_embed.weight')).toEqual([16, 5, 2, 2]);
    expect(s.get('final.linear.weight')).toEqual([2 * 2 * 5, 16]);
    expect(s.get('final_conv.weight')).toEqual([3, 5, 3, 3]);
    expect(m.nExtra).toBe(1);
    expect(s.get('pos_embed')).toEqual([1, 1 + 16, 16]);
    for (const name of ['q_norm', 'k_norm']) {
      expect(s.get(`enc_blocks.0.attn.${name}.weight`)).toEqual([8]);
      expect(s.has(`dec_blocks.0.attn.${name}.bias`)).toBe(false);
    }
    expect(s.get('mid_block.mlp.fc1.weight')).toEqual([2 * 43, 16]);
    expect(s.get('mid_block.mlp.fc2.weight')).toEqual([16, 43]);
    m.dispose();
  });

  test('each option changes the output', () => {
    // Each variant turns one option off; its parameters get the same seeded values in order, and F
    // must differ from the full model's in most elements (each key reaches the forward pass).
    const outputs = [TINY, { ...TINY, conv_width: 0 }, { ...TINY, label_token: false }, { ...TINY, qk_norm: false }, { ...TINY, mlp: 'gelu' as const }].map((config) => {
      const m = new IUViT(config, { seed: 3 });
      randomizeParameters(m, 50, 0.3);
      const F = output(m);
      m.dispose();
      return F;
    });
    expect(outputs[0].every(Number.isFinite)).toBe(true);
    for (const other of outputs.slice(1)) {
      expect(other.filter((v, i) => Math.abs(v - outputs[0][i]) > 1e-3).length).toBeGreaterThan(other.length / 2);
    }
  });

  test('gradient check of the whole network: every parameter and the input against central differences', () => {
    // Parameters of 0.3 (not 0.4): SwiGLU's products and the normalised q·k curve the loss more.
    const m = new IUViT(TINY, { seed: 1 });
    expect(expectNetworkGradients(m, 0.3)).toBe(1 + [...m.namedParameters()].length);
    m.dispose();
  });

  test('a checkpoint keeps the options: the loaded model gives the same output', () => {
    const m = new IUViT(TINY, { seed: 4 });
    randomizeParameters(m, 70, 0.3);
    const path = join(dir, 'options.safetensors');
    dv.saveCheckpoint(path, m);
    const { model } = dv.loadCheckpoint(path);
    expect(model.config).toMatchObject({ conv_width: 5, label_token: true, qk_norm: true, mlp: 'swiglu' });
    expect(output(model as IUViT)).toEqual(output(m));
    model.dispose();
    m.dispose();
  });

  test('config errors name the key and what it needs', () => {
    expect(() => fullConfig({ ...TINY, conv_width: -1 })).toThrow("diffvit.modelConfig: 'conv_width' expected an integer >= 0, received -1");
    expect(() => fullConfig({ ...TINY, conv_width: 2.5 })).toThrow("'conv_width' expected an integer >= 0, received 2.5");
    expect(() => fullConfig({ ...TINY, final_conv: false })).toThrow("diffvit.modelConfig: 'final_conv' expected true with conv_width > 0 (the conv head ends in final_conv), received false");
    expect(() => fullConfig({ ...TINY, label_token: 1 as unknown as boolean })).toThrow("'label_token' expected a boolean, received 1");
    expect(() => fullConfig({ ...TINY, num_classes: 0 })).toThrow("'label_token' expected false unless time_cond is 'adaln' and num_classes > 0");
    expect(() => fullConfig({ ...TINY, time_cond: 'token' })).toThrow("'label_token' expected false unless time_cond is 'adaln'");
    expect(() => fullConfig({ ...TINY, qk_norm: 'on' as unknown as boolean })).toThrow(`'qk_norm' expected a boolean, received "on"`);
    expect(() => fullConfig({ ...TINY, mlp: 'relu' as 'gelu' })).toThrow(`diffvit.modelConfig: 'mlp' expected 'gelu' or 'swiglu', received "relu"`);
    const unet: ModelConfig = { arch: 'unet', img_size: 8, in_chans: 3, dim: 8, heads: 2, channels: [4], conv_width: 4 };
    expect(() => fullConfig(unet)).toThrow("diffvit.modelConfig: 'conv_width' expected no value for arch 'unet' (an IU-ViT/ASCEND key), received 4");
  });
});

describeEachBackend('IU-ViT options conv_width, label_token, qk_norm and mlp on the device', ({ device }) => {
  test("forward and every parameter's gradient equal the host's", () => {
    expectNetworkMatchesHost(() => {
      const m = new IUViT(TINY, { seed: 2 });
      randomizeParameters(m, 30, 0.3);
      return m;
    }, device);
  });
});
