/**
 * CIFAR-10 "binary version" batches (data_batch_1.bin … data_batch_5.bin, test_batch.bin): records
 * of one label byte and 3072 pixel bytes (R, G, B planes of 32×32).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Example, ImageDataset } from './types.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const RECORD = 3073;

export class Cifar10Dataset implements ImageDataset {
  readonly name = 'cifar10';
  readonly channels = 3;
  readonly imageSize = 32;
  readonly numClasses = 10;
  readonly classNames = CIFAR10_CLASSES;
  private readonly data: Buffer;

  /** `root` holds the .bin batches; split 'train' reads data_batch_1..5, 'test' reads test_batch. */
  constructor(root: string, split: 'train' | 'test' = 'train') {
    const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
    const parts = names.map((n) => {
      const path = join(root, n);
      if (!existsSync(path)) throw new Error(`diffvit.Cifar10: ${path}: missing (expected the CIFAR-10 binary version: ${names.join(', ')})`);
      const b = readFileSync(path);
      if (b.length % RECORD !== 0) throw new Error(`diffvit.Cifar10: ${path}: ${b.length} bytes is not a whole number of ${RECORD}-byte records (corrupt or truncated)`);
      for (let r = 0; r < b.length; r += RECORD) {
        if (b[r] > 9) throw new Error(`diffvit.Cifar10: ${path}: record ${r / RECORD} has label ${b[r]} (expected 0-9)`);
      }
      return b;
    });
    this.data = Buffer.concat(parts);
  }

  get size(): number {
    return this.data.length / RECORD;
  }

  get(index: number): Example {
    const base = index * RECORD;
    const pixels = new Float32Array(3072);
    for (let i = 0; i < 3072; i++) pixels[i] = this.data[base + 1 + i] / 127.5 - 1;
    return { pixels, label: this.data[base] };
  }
}
