/**
 * Images in a folder, one sub-folder per class (`root/<class>/*.{png,jpg,jpeg}`, as the CIFAR-10 JPEG
 * tar, CUB Birds or an ImageNet-style tree); or a flat folder of images (unlabelled: CelebA, LSUN
 * exports). Each image is centre-cropped and resized to `imageSize`. Classes are the sorted
 * sub-folder names.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { decodeImage } from '../image/decode.js';
import { centreCropResize } from '../image/resize.js';
import type { Example, ImageDataset } from './dataset.js';

const IMAGE = /\.(png|jpe?g)$/i;

function listImages(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listImages(path));
    else if (IMAGE.test(entry.name)) out.push(path);
  }
  return out;
}

export class ImageFolderDataset implements ImageDataset {
  readonly name: string;
  readonly channels = 3;
  readonly classNames: string[];
  readonly numClasses: number;
  private readonly files: string[];
  private readonly labels: Int32Array;

  constructor(readonly root: string, readonly imageSize: number) {
    let st;
    try {
      st = statSync(root);
    } catch {
      throw new Error(`diffvit.ImageFolder: ${root}: no such directory`);
    }
    if (!st.isDirectory()) throw new Error(`diffvit.ImageFolder: ${root}: not a directory`);
    this.name = `folder:${root}`;
    const subdirs = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    const flat = readdirSync(root).filter((n) => IMAGE.test(n));
    if (subdirs.length && !flat.length) {
      this.classNames = subdirs;
      const files: string[] = [], labels: number[] = [];
      subdirs.forEach((c, k) => {
        for (const f of listImages(join(root, c))) {
          files.push(f);
          labels.push(k);
        }
      });
      this.files = files;
      this.labels = Int32Array.from(labels);
    } else {
      this.classNames = [];
      this.files = listImages(root);
      this.labels = new Int32Array(this.files.length);
    }
    this.numClasses = this.classNames.length;
    if (!this.files.length) throw new Error(`diffvit.ImageFolder: ${root}: no .png/.jpg/.jpeg images found`);
  }

  get size(): number {
    return this.files.length;
  }

  /** The file behind example i (for error messages and tools). */
  file(index: number): string {
    return this.files[index];
  }

  get(index: number): Example {
    const path = this.files[index];
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new Error(`diffvit.ImageFolder: ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const img = decodeImage(bytes, relative(process.cwd(), path) || path);
    return { pixels: centreCropResize(img, this.imageSize), label: this.labels[index] };
  }
}
