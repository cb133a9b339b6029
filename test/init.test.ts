/** DiffusionViT's initialisation: the twin's reset_parameters except sin-cos patch positions. */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { sinCos2d } from '../lib/nn/init.js';

describe('initialisation', () => {
  test('sinCos2d: row features then column features, [sin, cos] per frequency', () => {
    const grid = 3, dim = 10, q = 2; // 2 features past 4·q stay 0
    const pe = sinCos2d(grid, dim);
    expect(pe.length).toBe(grid * grid * dim);
    const token = 1 * grid + 2; // row 1, column 2
    const at = (i: number) => pe[token * dim + i];
    const omega = [1, 10000 ** -0.5];
    for (let i = 0; i < q; i++) {
      expect(at(i)).toBeCloseTo(Math.sin(1 * omega[i]), 6);
      expect(at(q + i)).toBeCloseTo(Math.cos(1 * omega[i]), 6);
      expect(at(2 * q + i)).toBeCloseTo(Math.sin(2 * omega[i]), 6);
      expect(at(3 * q + i)).toBeCloseTo(Math.cos(2 * omega[i]), 6);
    }
    expect([at(8), at(9)]).toEqual([0, 0]);
  });

  test.each([
    ['adaln with labels', { arch: 'iuvit', img_size: 16, in_chans: 3, patch: 4, dim: 24, depth: 3, heads: 2, num_classes: 3 }, 0],
    ['token with labels and context', { arch: 'ascend', img_size: 16, in_chans: 3, patch: 4, dim: 32, enc_depth: 2, dec_depth: 1, heads: 2, num_classes: 3, time_cond: 'token', context_dim: 5, context_len: 2 }, 4],
  ] as const)('%s: patch positions are sin-cos, extra tokens N(0, 0.02²), adaLN-Zero', (_name, config, extra) => {
    const model = new dv.DiffusionViT(config, { seed: 3 });
    try {
      const [, N, D] = model.pos_embed.shape;
      expect(N).toBe(extra + 16);
      const pe = model.pos_embed.data();
      expect(Array.from(pe.subarray(extra * D))).toEqual(Array.from(sinCos2d(4, D)));
      const extras = Array.from(pe.subarray(0, extra * D));
      for (const v of extras) expect(Math.abs(v)).toBeLessThanOrEqual(0.1);
      if (extras.length) expect(extras.some((v) => v !== 0)).toBe(true);
      for (const [name, p] of model.namedParameters()) {
        if (name.endsWith('ada.weight') || name.endsWith('ada.bias')) expect(p.data().every((v) => v === 0), name).toBe(true);
      }
    } finally {
      model.dispose();
    }
  });
});
