/**
 * Embedding lookup — PyTorch's F.embedding: rows of a table gathered at int32 indices; the
 * gradient scatter-adds back into the table (repeated indices add up).
 *
 *   const emb = embedding(labelTable, labels);   // table (classes + 1, D), labels (N) int32 -> (N, D)
 */
import { runKernel } from '../backend/dispatch.js';
import { record } from '../tensor/autograd.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { argError, checkRank, checkTensor, dense, release } from './util.js';

/** The native kernels take at most this many index dims (as the strided copies do). */
const MAX_INDEX_RANK = 8;

/**
 * table (rows, dim) float32 gathered at indices (any shape, int32): (...indices.shape, dim).
 * An index outside [0, rows) throws before anything is written, naming its value and position.
 * Gradients flow to the table only.
 */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  checkTensor('embedding', 'table', table);
  checkRank('embedding', 'table', table, 2);
  checkTensor('embedding', 'indices', indices, 'int32');
  if (indices.rank > MAX_INDEX_RANK) {
    throw argError('embedding', 'indices', `rank <= ${MAX_INDEX_RANK}`, `shape ${formatShape(indices.shape)}`);
  }
  const [rows, dim] = table.shape;
  const T = dense(table), I = dense(indices);
  const out = Tensor.empty([...indices.shape, dim], 'float32', table.device);
  try {
    runKernel('embedding', {
      table: T.buffer, tableOffset: T.offset, rows, dim, indices: I.buffer, indicesOffset: I.offset,
      indicesShape: [...indices.shape], out: out.buffer, outOffset: 0
    });
  } catch (err) {
    out.dispose();
    throw err;
  } finally {
    release(T, table);
    release(I, indices);
  }
  return record('embedding', out, [table], (dy) => {
    const G = dense(dy), Ib = dense(indices);
    const dtable = Tensor.empty([rows, dim], 'float32', table.device);
    runKernel('embeddingBackward', {
      dy: G.buffer, dyOffset: G.offset, indices: Ib.buffer, indicesOffset: Ib.offset,
      indicesShape: [...indices.shape], dtable: dtable.buffer, dtableOffset: 0, rows, dim
    });
    release(G, dy);
    release(Ib, indices);
    return [dtable];
  });
}
