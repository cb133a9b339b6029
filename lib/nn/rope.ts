/**
 * The angle tables of 2-D rotary position embedding (RoPE) for a square grid of patch tokens
 * after some extra tokens (time, label, context). Native-free: plain Float32Arrays, made into
 * device tensors by RopeTables (./rope_tables.ts) and applied by ops/rope.ts rotaryEmbedding.
 */

/**
 * cos and sin of the rotation angles, each (extraTokens + gridSide², headDim/2) row-major. The
 * first extraTokens rows (the tokens before the patches) have angle 0: they are not rotated.
 * Patch p sits at row r = ⌊p / gridSide⌋, column q = p mod gridSide; with Q = headDim/4 and
 * θ_j = base^(−j/Q), pair i < Q turns by r·θ_i and pair i >= Q by q·θ_(i−Q): half of each head
 * encodes the row, half the column (axial 2-D RoPE).
 *
 *   const { cos, sin } = rope2dTables(8, 0, 32);   // 64 patches, head dim 32: two (64, 16) tables
 */
export function rope2dTables(gridSide: number, extraTokens: number, headDim: number, base = 100): { cos: Float32Array; sin: Float32Array } {
  const fail = (arg: string, expected: string, v: unknown) => {
    throw new Error(`diffvit.rope2dTables: argument '${arg}' expected ${expected}, received ${String(v)}`);
  };
  if (!Number.isInteger(gridSide) || gridSide < 1) fail('gridSide', 'a positive integer', gridSide);
  if (!Number.isInteger(extraTokens) || extraTokens < 0) fail('extraTokens', 'an integer >= 0', extraTokens);
  if (!Number.isInteger(headDim) || headDim < 4 || headDim % 4 !== 0) fail('headDim', 'a positive multiple of 4 (row and column halves of pairs)', headDim);
  if (typeof base !== 'number' || !(base > 1) || !Number.isFinite(base)) fail('base', 'a finite number > 1', base);
  const half = headDim / 2, quarter = headDim / 4, rows = extraTokens + gridSide * gridSide;
  const cos = new Float32Array(rows * half).fill(1, 0, extraTokens * half);
  const sin = new Float32Array(rows * half);
  for (let p = 0; p < gridSide * gridSide; p++) {
    const at = [Math.floor(p / gridSide), p % gridSide]; // row, column
    for (let i = 0; i < half; i++) {
      const axis = i < quarter ? 0 : 1, j = i % quarter;
      const angle = at[axis] * base ** (-j / quarter);
      cos[(extraTokens + p) * half + i] = Math.cos(angle);
      sin[(extraTokens + p) * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
