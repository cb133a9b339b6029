/**
 * Centre crop to a square and antialiased resize (separable triangle filter whose support grows
 * with the downscale factor, like PIL's bilinear with antialiasing), producing (C, S, S) in [-1, 1].
 */
import type { RGBImage } from './decode.js';

function weights(inSize: number, outSize: number, offset: number, span: number): { start: Int32Array; count: Int32Array; w: Float64Array; taps: number } {
  const scale = span / outSize;
  const support = Math.max(1, scale);
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize), count = new Int32Array(outSize), w = new Float64Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const centre = offset + (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support)), hi = Math.min(inSize, Math.ceil(centre + support));
    let total = 0;
    for (let i = lo; i < hi; i++) {
      const v = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / support));
      w[o * taps + i - lo] = v;
      total += v;
    }
    for (let i = lo; i < hi; i++) w[o * taps + i - lo] /= total || 1;
    start[o] = lo;
    count[o] = hi - lo;
  }
  return { start, count, w, taps };
}

/** The largest centred square of img, resized to size×size, as (3, size, size) floats in [-1, 1]. */
export function centreCropResize(img: RGBImage, size: number): Float32Array {
  const side = Math.min(img.width, img.height);
  const x0 = (img.width - side) / 2, y0 = (img.height - side) / 2;
  const wx = weights(img.width, size, x0, side), wy = weights(img.height, size, y0, side);
  // horizontal pass: (height, size, 3)
  const tmp = new Float64Array(img.height * size * 3);
  for (let y = 0; y < img.height; y++) {
    for (let o = 0; o < size; o++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < wx.count[o]; k++) s += wx.w[o * wx.taps + k] * img.data[(y * img.width + wx.start[o] + k) * 3 + c];
        tmp[(y * size + o) * 3 + c] = s;
      }
    }
  }
  const out = new Float32Array(3 * size * size);
  for (let o = 0; o < size; o++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < wy.count[o]; k++) s += wy.w[o * wy.taps + k] * tmp[((wy.start[o] + k) * size + x) * 3 + c];
        out[(c * size + o) * size + x] = s / 127.5 - 1;
      }
    }
  }
  return out;
}
