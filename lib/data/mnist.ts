/**
 * MNIST in its idx format (train-images-idx3-ubyte, train-labels-idx1-ubyte, and t10k-*),
 * optionally gzipped. 28×28 greyscale, zero-padded to `imageSize` (default 32 so patch sizes 2/4/8 divide it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import type { Example, ImageDataset } from './types.js';

function readIdx(path: string, magic: number): { dims: number[]; data: Uint8Array } {
  const file = existsSync(path) ? path : existsSync(path + '.gz') ? path + '.gz' : null;
  if (!file) throw new Error(`diffvit.Mnist: ${path}: missing (also looked for ${path}.gz)`);
  let b: Buffer = readFileSync(file);
  if (file.endsWith('.gz')) {
    try {
      b = gunzipSync(b);
    } catch (e) {
      throw new Error(`diffvit.Mnist: ${file}: corrupt gzip (${(e as Error).message})`);
    }
  }
  if (b.length < 8 || b.readUInt32BE(0) !== magic) throw new Error(`diffvit.Mnist: ${file}: bad idx header (expected magic 0x${magic.toString(16)})`);
  const rank = magic & 0xff;
  const dims = Array.from({ length: rank }, (_, i) => b.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, d) => a * d, 1);
  const data = b.subarray(4 + 4 * rank);
  if (data.length !== n) throw new Error(`diffvit.Mnist: ${file}: ${data.length} data bytes, header says ${n} (truncated?)`);
  return { dims, data };
}

export class MnistDataset implements ImageDataset {
  readonly name = 'mnist';
  readonly channels = 1;
  readonly numClasses = 10;
  readonly classNames = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
  private readonly images: Uint8Array;
  private readonly labels: Uint8Array;

  constructor(root: string, split: 'train' | 'test' = 'train', readonly imageSize = 32) {
    const prefix = split === 'train' ? 'train' : 't10k';
    const img = readIdx(join(root, `${prefix}-images-idx3-ubyte`), 0x00000803);
    const lab = readIdx(join(root, `${prefix}-labels-idx1-ubyte`), 0x00000801);
    if (img.dims[0] !== lab.dims[0]) throw new Error(`diffvit.Mnist: ${root}: ${img.dims[0]} images but ${lab.dims[0]} labels`);
    if (img.dims[1] !== 28 || img.dims[2] !== 28) throw new Error(`diffvit.Mnist: ${root}: images are ${img.dims[1]}x${img.dims[2]}, expected 28x28`);
    if (imageSize < 28) throw new Error(`diffvit.Mnist: imageSize expected >= 28, received ${imageSize}`);
    this.images = img.data;
    this.labels = lab.data;
  }

  get size(): number {
    return this.labels.length;
  }

  get(index: number): Example {
    const S = this.imageSize, pad = Math.floor((S - 28) / 2);
    const pixels = new Float32Array(S * S).fill(-1);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) pixels[(y + pad) * S + x + pad] = this.images[index * 784 + y * 28 + x] / 127.5 - 1;
    }
    return { pixels, label: this.labels[index] };
  }
}
