/**
 * 16-bit float widening, the one copy every reader uses (safetensors F16/BF16 data). Native-free:
 * data-loader worker threads import it.
 */

/** IEEE 754 binary16 bits `h` (0..0xffff) as a number (exact: every float16 is a float32). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const BF16_SCRATCH = new Uint32Array(1);
const BF16_VIEW = new Float32Array(BF16_SCRATCH.buffer);

/** bfloat16 bits `h` (0..0xffff) as a number: the high half of a float32. */
export function bf16ToF32(h: number): number {
  BF16_SCRATCH[0] = h << 16;
  return BF16_VIEW[0];
}
