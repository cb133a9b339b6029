/**
 * Native entry points of the rope kernel family (native/addon/bind_rope.cpp, native/cpu/simd/rope.cpp,
 * native/cuda/rope.cu): rotary position embedding of dense float32 tensors. Offsets are in elements.
 */
import type { DeviceBuffer } from './core.js';

export interface RopeKernels {
  /**
   * y = x rotated by the token's angles, x and y dense (batch, tokens, groups, dim), y apart from x;
   * cos and sin dense (tokens, dim/2), dim even. For groups g < rotatedGroups and pairs i < dim/2
   * ("rotate half": i pairs with i + dim/2), with a = x[i], b = x[i + dim/2], c = cos[t][i],
   * s = sin[t][i] (negated when `inverse`): y[i] = a·c − b·s, y[i + dim/2] = b·c + a·s. Groups
   * g >= rotatedGroups are copied unchanged. The inverse rotation is also the transpose, so it is
   * the backward too.
   */
  rope(args: {
    x: DeviceBuffer; xOffset: number; y: DeviceBuffer; yOffset: number; cos: DeviceBuffer; cosOffset: number;
    sin: DeviceBuffer; sinOffset: number; batch: number; tokens: number; groups: number; rotatedGroups: number;
    dim: number; inverse: boolean;
  }): void;
}
