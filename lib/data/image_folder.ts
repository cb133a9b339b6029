/**
 * Images in a folder, one sub-folder per class (`root/<class>/**.{png,jpg,jpeg}`: the CIFAR-10 JPEG
 * tar's `test/`, CUB-200-2011's `images/`, an ImageNet-style tree); or a folder with images at its
 * top level (unlabelled, sub-folders read too: CelebA's `img_align_celeba/`, an LSUN export). A
 * folder whose only entry is one sub-folder is a wrapper and is looked through (so the directory
 * an archive was extracted into works: `celeba/img_align_celeba/`, `cifar10/test/<class>/`).
 * Hidden entries (names starting with '.', such as macOS `._x.jpg` resource forks) are skipped;
 * symbolic links are followed. Each image is centre-cropped to its largest square and resized to
 * `imageSize`. Classes are the sorted sub-folder names.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';

import { decodeImage } from '../image/decode.js';
import { centreCropResize } from '../image/resize.js';
import type { Example, ImageDataset } from './types.js';

const IMAGE = /\.(png|jpe?g)$/i;

interface Entries {
  dirs: string[];
  images: string[];
  /** Counts of other file extensions, for the error when no image is found. */
  others: Map<string, number>;
}

/** The visible entries of dir, sorted by name; symbolic links count as what they point to. */
function entries(dir: string): Entries {
  const out: Entries = { dirs: [], images: [], others: new Map() };
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith('.')) continue;
    let isDir = entry.isDirectory(), isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      try {
        const st = statSync(join(dir, entry.name));
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch {
        continue; // a dangling link
      }
    }
    if (isDir) out.dirs.push(entry.name);
    else if (isFile && IMAGE.test(entry.name)) out.images.push(entry.name);
    else if (isFile) out.others.set(extname(entry.name).toLowerCase(), (out.others.get(extname(entry.name).toLowerCase()) ?? 0) + 1);
  }
  return out;
}

/**
 * Every image under dir (depth first, sorted); tallies other extensions into `others`. `seen` holds
 * the real paths of the folders visited, so a link back up the tree is not followed forever.
 */
function listImages(dir: string, others: Map<string, number>, seen = new Set<string>()): string[] {
  const real = realpathSync(dir);
  if (seen.has(real)) return [];
  seen.add(real);
  const e = entries(dir);
  for (const [ext, n] of e.others) others.set(ext, (others.get(ext) ?? 0) + n);
  const out = e.images.map((n) => join(dir, n));
  for (const d of e.dirs) for (const f of listImages(join(dir, d), others, seen)) out.push(f); // no spread: folders of 10⁵ images
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
    let top = root, e = entries(root);
    const wrappers = new Set([realpathSync(root)]);
    while (e.dirs.length === 1 && !e.images.length && !wrappers.has(realpathSync(join(top, e.dirs[0])))) {
      top = join(top, e.dirs[0]);
      wrappers.add(realpathSync(top));
      e = entries(top);
    }
    const others = new Map<string, number>();
    const seen = new Set<string>();
    if (e.dirs.length && !e.images.length) {
      seen.add(realpathSync(top)); // a link inside a class back to the root must not re-list the classes
      this.classNames = e.dirs;
      const files: string[] = [], labels: number[] = [];
      e.dirs.forEach((c, k) => {
        for (const f of listImages(join(top, c), others, seen)) {
          files.push(f);
          labels.push(k);
        }
      });
      this.files = files;
      this.labels = Int32Array.from(labels);
    } else {
      this.classNames = [];
      this.files = listImages(top, others, seen);
      this.labels = new Int32Array(this.files.length);
    }
    this.numClasses = this.classNames.length;
    if (!this.files.length) {
      const found = [...others].sort((a, b) => b[1] - a[1]).map(([ext, n]) => `${n} ${ext || '(no extension)'}`).join(', ');
      const webp = others.has('.webp') ? '; WebP (as the LSUN export script writes) is not decoded: convert to PNG or JPEG first, e.g. mogrify -format png *.webp' : '';
      throw new Error(`diffvit.ImageFolder: ${root}: no .png/.jpg/.jpeg images found${found ? ` (found ${found} files)` : ''}${webp}`);
    }
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
