import { expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import { embedding } from '../lib/ops/embedding.js';
import { checkOp, type CloseOptions, describeEachBackend, expectClose, fromValues, randomValues, recordError, toF32 } from './helpers.js';

// The gather copies values (exact); its gradient adds the rows of repeated indices.
const EMBEDDING_TOL: CloseOptions = { dtype: 'float32', kind: 'embedding' };

/** float64 gather: out[k, :] = table[indices[k], :]. */
function refEmbedding(indices: readonly number[], dim: number) {
  return (table: Float64Array): Float64Array => {
    const out = new Float64Array(indices.length * dim);
    indices.forEach((r, k) => out.set(table.subarray(r * dim, (r + 1) * dim), k * dim));
    return out;
  };
}

// Every suite runs once per backend (the cpu once per kernel level); fromValues and checkOp put their
// tensors on the suite's device.
describeEachBackend('embedding', ({ device }) => {
  const on = { device };
  test('2-D indices with repeats: forward and the summed gradient', () => {
    const rows = 5, dim = 7;
    const idx = [1, 4, 1, 0, 4, 4];
    const indices = dv.tensor(Int32Array.from(idx), [2, 3], on);
    try {
      checkOp('embedding', (table) => embedding(table, indices), refEmbedding(idx, dim),
        [{ values: randomValues(rows * dim, 1), shape: [rows, dim] }], EMBEDDING_TOL);
    } finally {
      indices.dispose();
    }
  });

  test('repeated indices add their gradients; unused rows get zero', () => {
    dv.scope(() => {
      const table = fromValues(randomValues(4 * 3, 2), [4, 3], true);
      const y = embedding(table, dv.tensor(Int32Array.from([2, 2, 0, 2]), [4], on));
      expect(y.shape).toEqual([4, 3]);
      expect(y.device).toBe(device);
      y.backward({ grad: dv.ones([4, 3], on) });
      expect(Array.from(table.grad!.data())).toEqual([1, 1, 1, 0, 0, 0, 3, 3, 3, 0, 0, 0]);
    });
  });

  test('wide rows and many indices (column-parallel scatter-add) match the float64 reference', () => {
    const rows = 37, dim = 1000, n = 300;
    const idx = Array.from(randomValues(n, 3), (v) => Math.floor(Math.abs(v) * 997) % rows);
    const tableV = toF32(randomValues(rows * dim, 4));
    const dyV = toF32(randomValues(n * dim, 5));
    dv.scope(() => {
      const table = fromValues(tableV, [rows, dim], true);
      const y = embedding(table, dv.tensor(Int32Array.from(idx), [3, 100], on));
      expect(y.shape).toEqual([3, 100, dim]);
      const fwd = expectClose(y.data(), refEmbedding(idx, dim)(tableV), EMBEDDING_TOL, 'gather');
      y.backward({ grad: fromValues(dyV, y.shape) });
      const ref = new Float64Array(rows * dim);
      idx.forEach((r, k) => { for (let c = 0; c < dim; c++) ref[r * dim + c] += dyV[k * dim + c]; });
      recordError('embedding (300 x 1000)', fwd, expectClose(table.grad!.data(), ref, { ...EMBEDDING_TOL, grad: true }, 'scatter-add'));
    });
  });

  test('scalar index, strided table view and strided indices', () => {
    dv.scope(() => {
      const tableT = fromValues(randomValues(6 * 4, 6), [6, 4]); // the table is its transpose (4, 6)
      const table = dv.transpose(tableT, 0, 1);
      const t = table.data();
      const y0 = embedding(table, dv.tensor(Int32Array.from([3]), [], on));
      expect(y0.shape).toEqual([6]);
      expect(Array.from(y0.data())).toEqual(Array.from(t.subarray(18, 24)));
      const idx = dv.transpose(dv.tensor(Int32Array.from([0, 1, 2, 3, 3, 2]), [2, 3], on), 0, 1); // [[0, 3], [1, 3], [2, 2]]
      const y = embedding(table, idx);
      expect(y.shape).toEqual([3, 2, 6]);
      const expected = [0, 3, 1, 3, 2, 2].flatMap((r) => Array.from(t.subarray(r * 6, r * 6 + 6)));
      expect(Array.from(y.data())).toEqual(expected);
    });
  });

  // Each element of the gradient sums its rows' contributions in index order, on every backend: the
  // CPU's bits, whatever the device's work split (heavy repeats, odd and vector-friendly widths).
  test.each([[1, 3, 8], [7, 65, 5000], [50, 128, 3001], [1000, 12, 1500]])(
    'scatter-add into %i rows of width %i from %i indices equals the CPU bit for bit', (rows, dim, n) => {
      const idx = Array.from(randomValues(n, rows + n), (v, k) => (k % 3 === 0 ? 0 : Math.floor(Math.abs(v) * 7919) % rows));
      const tableV = randomValues(rows * dim, 10), dyV = randomValues(n * dim, 11);
      const grad = (on: string) => dv.scope(() => {
        const table = fromValues(tableV, [rows, dim], true, on);
        const y = embedding(table, dv.tensor(Int32Array.from(idx), [n], { device: on }));
        y.backward({ grad: fromValues(dyV, y.shape, false, on) });
        return Array.from(new Uint32Array(table.grad!.data().slice().buffer));
      });
      expect(grad(device)).toEqual(grad('cpu'));
    });

  // The kernel checks the index range (the device's own check), and the op disposes its output when it throws.
  test('embedding rejects out-of-range and negative indices, naming the value and its position', () => {
    dv.scope(() => {
      const table = dv.ones([5, 3], on);
      const live = dv.liveTensorCount();
      expect(() => embedding(table, dv.tensor(Int32Array.from([0, 5]), [2], on)))
        .toThrow("diffvit.embedding: argument 'indices' expected values in [0, 5) (rows of the table), received 5 at position [1]");
      expect(() => embedding(table, dv.tensor(Int32Array.from([0, 1, 2, 3, 4, -1]), [2, 3], on)))
        .toThrow(/argument 'indices' expected values in \[0, 5\).*received -1 at position \[1, 2\]/);
      expect(() => embedding(dv.ones([0, 3], on), dv.tensor(Int32Array.from([0]), [1], on))).toThrow(/received 0 at position \[0\]/);
      // Only the three index tensors and the empty table made above remain: the failed calls
      // disposed the outputs they had allocated.
      expect(dv.liveTensorCount()).toBe(live + 4);
    });
  });
});

// The op's dtype and rank checks run before any kernel, whatever the device: run once, on the cpu.
test('embedding rejects wrong dtypes and ranks', () => {
  dv.scope(() => {
    const table = dv.ones([5, 3]), idx = dv.tensor(Int32Array.from([1]), [1]);
    expect(() => embedding(table, dv.ones([2]))).toThrow("diffvit.embedding: argument 'indices' expected dtype int32, received float32");
    expect(() => embedding(dv.ones([5, 3], 'int32'), idx)).toThrow("diffvit.embedding: argument 'table' expected dtype float32, received int32");
    expect(() => embedding(dv.ones([5]), idx)).toThrow(/argument 'table' expected rank 2, received shape \[5\]/);
    expect(() => embedding(table, [1, 2] as unknown as dv.Tensor)).toThrow(/argument 'indices' expected a Tensor/);
  });
});

// The CPU addon's own argument checks (native calls): CPU only.
test('embedding bindings validate buffers and indices before writing', () => {
  const table = new native.NativeBuffer('cpu', 'float32', 12);
  const indices = new native.NativeBuffer('cpu', 'int32', 2);
  const out = new native.NativeBuffer('cpu', 'float32', 6);
  try {
    table.write(0, Float32Array.from({ length: 12 }, (_v, i) => i));
    indices.write(0, Int32Array.from([1, 9]));
    out.write(0, new Float32Array(6).fill(-1));
    expect(() => native.embedding({
      table, tableOffset: 0, rows: 4, dim: 3, indices, indicesOffset: 0, indicesShape: [2], out, outOffset: 0
    })).toThrow(/received 9 at position \[1\]/);
    expect(Array.from(out.read(0, 6))).toEqual([-1, -1, -1, -1, -1, -1]);
    expect(() => native.embeddingBackward({
      dy: out, dyOffset: 0, indices, indicesOffset: 0, indicesShape: [2], dtable: table, dtableOffset: 0, rows: 4,
      dim: 3
    }))
      .toThrow(/diffvit\.embeddingBackward: argument 'indices' expected values in \[0, 4\).*received 9/);
    expect(Array.from(table.read(0, 3))).toEqual([0, 1, 2]);
    indices.write(0, Int32Array.from([1, 2]));
    expect(() => native.embedding({
      table, tableOffset: 0, rows: 4, dim: 3, indices, indicesOffset: 0, indicesShape: [3], out, outOffset: 0
    })).toThrow(/argument 'indices' expected at least 3 int32 elements/);
    expect(() => native.embedding({
      table, tableOffset: 0, rows: 5, dim: 3, indices, indicesOffset: 0, indicesShape: [2], out, outOffset: 0
    })).toThrow(/argument 'table' expected at least 15 float32 elements/);
    expect(() => native.embedding({
      table, tableOffset: 0, rows: 4, dim: 3, indices: out, indicesOffset: 0, indicesShape: [2], out, outOffset: 0
    })).toThrow(/argument 'indices' expected dtype int32, received float32/);
    native.embedding({
      table, tableOffset: 0, rows: 4, dim: 3, indices, indicesOffset: 0, indicesShape: [2], out, outOffset: 0
    });
    expect(Array.from(out.read(0, 6))).toEqual([3, 4, 5, 6, 7, 8]);
  } finally {
    table.dispose();
    indices.dispose();
    out.dispose();
  }
});

// Thread counts are the CPU backend's: run once, on the cpu.
test('embedding gradients are bitwise identical for any thread count', () => {
  const threads = dv.runtimeInfo().threads;
  const idx = Array.from(randomValues(500, 7), (v) => Math.floor(Math.abs(v) * 1000) % 11);
  const run = (t: number) => {
    dv.setThreads(t);
    return dv.scope(() => {
      const table = fromValues(randomValues(11 * 512, 8), [11, 512], true);
      const y = embedding(table, dv.tensor(Int32Array.from(idx), [500]));
      y.backward({ grad: fromValues(randomValues(y.size, 9), y.shape) });
      return table.grad!.data();
    });
  };
  try {
    expect(run(3)).toEqual(run(1));
  } finally {
    dv.setThreads(threads);
  }
});
