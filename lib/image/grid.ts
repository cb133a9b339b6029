/** Image grids: a batch of (C, H, W) images in [-1, 1] tiled into one RGB picture. */
import { encodePNG } from './png.js';

export interface GridOptions {
  columns?: number;
  padding?: number;
  /** Each image is scaled up by this integer factor (nearest neighbour), for small images. */
  scale?: number;
}

/** images: B*C*H*W values (C = 1 or 3) in [-1, 1]. Returns PNG bytes. */
export function imageGridPNG(images: ArrayLike<number>, batch: number, channels: number, height: number, width: number, options: GridOptions = {}): Buffer {
  if (channels !== 1 && channels !== 3) throw new Error(`diffvit.imageGrid: argument 'channels' expected 1 or 3, received ${channels}`);
  if (images.length !== batch * channels * height * width) {
    throw new Error(`diffvit.imageGrid: argument 'images' expected ${batch * channels * height * width} values, received ${images.length}`);
  }
  const cols = options.columns ?? Math.ceil(Math.sqrt(batch));
  const rows = Math.ceil(batch / cols), pad = options.padding ?? 2, s = options.scale ?? 1;
  const W = cols * (width * s + pad) + pad, H = rows * (height * s + pad) + pad;
  const rgb = new Uint8Array(W * H * 3).fill(255);
  for (let b = 0; b < batch; b++) {
    const ox = pad + (b % cols) * (width * s + pad), oy = pad + Math.floor(b / cols) * (height * s + pad);
    for (let y = 0; y < height * s; y++) {
      for (let x = 0; x < width * s; x++) {
        for (let c = 0; c < 3; c++) {
          const v = images[((b * channels + (channels === 1 ? 0 : c)) * height + Math.floor(y / s)) * width + Math.floor(x / s)];
          rgb[((oy + y) * W + ox + x) * 3 + c] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
        }
      }
    }
  }
  return encodePNG(rgb, W, H);
}
