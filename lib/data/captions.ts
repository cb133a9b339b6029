/**
 * Image + caption-embedding pairs (text-to-image data): a JSONL index, one example per line,
 *
 *   {"image": "images/000001.png", "embedding": "emb/000001.safetensors", "caption": "a red circle", "label": 3}
 *   {"image": "images/000002.png", "embedding": "all.safetensors", "key": "context", "index": 1}
 *
 * - image: a PNG/JPEG, centre-cropped and resized to `imageSize` (as the image folders are);
 * - embedding: a safetensors file holding the example's context — an (L, C) float tensor named by
 *   `key` (default: the tensor 'context', or the file's only tensor); with `index` the tensor is
 *   (N, L, C) and the example is row `index`, so a whole dataset can share one file;
 * - caption (optional): the text, kept for tools (sample grids, evaluation);
 * - label (optional, all lines or none): an integer class.
 * Relative paths are relative to the index file's folder. F32, F16, BF16 and F64 embeddings are
 * read (as float32). Every example must have the same (L, C).
 *
 * The constructor checks the whole index (JSON, fields, that files exist, every embedding's key
 * and shape) and each error names the index file and line. Images and embeddings are read per
 * example, so datasets larger than memory work.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';

import { decodeImage } from '../image/decode.js';
import { centreCropResize } from '../image/resize.js';
import { readSafetensorsFloats, readSafetensorsHeader, type SafetensorsHeader } from '../models/safetensors_header.js';
import type { Example, ImageDataset } from './types.js';
import { jsonErrorMessage } from '../json_message.js';

/** One line of the index, as written. */
export interface CaptionRecord {
  image: string;
  embedding: string;
  key?: string;
  index?: number;
  caption?: string;
  label?: number;
}

interface Resolved {
  line: number;
  image: string; // absolute
  header: SafetensorsHeader;
  key: string;
  row: number | null;
  caption: string | null;
  label: number;
}

export class CaptionDataset implements ImageDataset {
  readonly name: string;
  readonly channels = 3;
  readonly numClasses: number;
  readonly classNames: string[];
  readonly contextLen: number;
  readonly contextDim: number;
  private readonly examples: Resolved[];

  constructor(readonly indexPath: string, readonly imageSize: number) {
    if (!Number.isInteger(imageSize) || imageSize < 1) throw new Error(`diffvit.CaptionDataset: argument 'imageSize' expected an integer >= 1, received ${imageSize}`);
    let text: string;
    try {
      text = readFileSync(indexPath, 'utf8');
    } catch (e) {
      throw new Error(`diffvit.CaptionDataset: ${indexPath}: cannot read the index (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    this.name = `captions:${indexPath}`;
    const root = dirname(resolve(indexPath));
    const headers = new Map<string, SafetensorsHeader>();
    const examples: Resolved[] = [];
    let shape: { L: number; C: number; line: number } | null = null;
    let labelled: boolean | null = null;
    text.split('\n').forEach((raw, i) => {
      const line = i + 1;
      if (!raw.trim()) return;
      const fail = (what: string): never => {
        throw new Error(`diffvit.CaptionDataset: ${indexPath}:${line}: ${what}`);
      };
      let r: CaptionRecord;
      try {
        r = JSON.parse(raw);
      } catch (e) {
        return fail(`not valid JSON (${jsonErrorMessage(e)})`);
      }
      if (!r || typeof r !== 'object' || Array.isArray(r)) fail(`expected a JSON object, received ${raw.trim().slice(0, 60)}`);
      if (typeof r.image !== 'string' || !r.image) fail(`'image' expected a path string, received ${JSON.stringify(r.image)}`);
      if (typeof r.embedding !== 'string' || !r.embedding) fail(`'embedding' expected a path string, received ${JSON.stringify(r.embedding)}`);
      if (r.key !== undefined && typeof r.key !== 'string') fail(`'key' expected a tensor name, received ${JSON.stringify(r.key)}`);
      if (r.index !== undefined && !(Number.isInteger(r.index) && r.index >= 0)) fail(`'index' expected an integer >= 0, received ${JSON.stringify(r.index)}`);
      if (r.caption !== undefined && typeof r.caption !== 'string') fail(`'caption' expected a string, received ${JSON.stringify(r.caption)}`);
      if (r.label !== undefined && !(Number.isInteger(r.label) && r.label >= 0)) fail(`'label' expected an integer >= 0, received ${JSON.stringify(r.label)}`);
      if (labelled === null) labelled = r.label !== undefined;
      else if (labelled !== (r.label !== undefined)) fail(`${labelled ? 'no' : "a"} 'label', but ${labelled ? 'earlier lines have one' : 'earlier lines have none'} (label every line or none)`);

      const image = isAbsolute(r.image) ? r.image : resolve(root, r.image);
      let isFile = false;
      try {
        isFile = statSync(image).isFile();
      } catch {
        fail(`image '${r.image}' not found (${image})`);
      }
      if (!isFile) fail(`image '${r.image}' is not a file (${image})`);

      const embPath = isAbsolute(r.embedding) ? r.embedding : resolve(root, r.embedding);
      let header = headers.get(embPath);
      if (!header) {
        try {
          statSync(embPath);
        } catch {
          fail(`embedding '${r.embedding}' not found (${embPath})`);
        }
        try {
          header = readSafetensorsHeader(embPath);
        } catch (e) {
          fail(`embedding '${r.embedding}': ${(e as Error).message}`);
        }
        headers.set(embPath, header!);
      }
      const names = [...header!.entries.keys()];
      const key = r.key ?? (header!.entries.has('context') ? 'context' : names.length === 1 ? names[0] : null);
      if (key === null) fail(`embedding '${r.embedding}' has tensors ${names.join(', ') || '(none)'}: name one with 'key' (or call the tensor 'context')`);
      const entry = header!.entries.get(key!) ?? fail(`embedding '${r.embedding}' has no tensor '${key}' (tensors: ${names.join(', ') || 'none'})`);
      if (entry.dtype.startsWith('I')) fail(`embedding '${r.embedding}' tensor '${key}' expected a float dtype (F32, F16, BF16, F64), received ${entry.dtype}`);
      const dims = entry.shape;
      let L: number, C: number;
      if (r.index === undefined) {
        if (dims.length !== 2) fail(`embedding '${r.embedding}' tensor '${key}' expected shape (L, C)${dims.length === 3 ? " (an (N, L, C) tensor needs 'index')" : ''}, received [${dims.join(', ')}]`);
        [L, C] = dims;
      } else {
        if (dims.length !== 3) fail(`embedding '${r.embedding}' tensor '${key}' expected shape (N, L, C) with 'index', received [${dims.join(', ')}]`);
        if (r.index >= dims[0]) fail(`'index' ${r.index} is out of range for embedding '${r.embedding}' tensor '${key}' of shape [${dims.join(', ')}]`);
        [, L, C] = dims;
      }
      if (L < 1 || C < 1) fail(`embedding '${r.embedding}' tensor '${key}' has an empty context shape [${dims.join(', ')}]`);
      if (!shape) shape = { L, C, line };
      else if (L !== shape.L || C !== shape.C) fail(`embedding '${r.embedding}' tensor '${key}' is (L, C) = (${L}, ${C}) but line ${shape.line} has (${shape.L}, ${shape.C}); every example needs the same context shape`);
      examples.push({ line, image, header: header!, key: key!, row: r.index ?? null, caption: r.caption ?? null, label: r.label ?? 0 });
    });
    if (!examples.length || !shape) throw new Error(`diffvit.CaptionDataset: ${indexPath}: the index has no examples`);
    this.examples = examples;
    this.contextLen = (shape as { L: number }).L;
    this.contextDim = (shape as { C: number }).C;
    this.numClasses = labelled ? examples.reduce((most, e) => Math.max(most, e.label), 0) + 1 : 0; // no spread: indexes of 10⁵ lines
    this.classNames = Array.from({ length: this.numClasses }, (_, k) => String(k));
  }

  get size(): number {
    return this.examples.length;
  }

  /** The caption of example i (null when the index has none). */
  caption(index: number): string | null {
    return this.examples[index].caption;
  }

  get(index: number): Example {
    const ex = this.examples[index];
    const where = `diffvit.CaptionDataset: ${this.indexPath}:${ex.line}`;
    let bytes: Buffer;
    try {
      bytes = readFileSync(ex.image);
    } catch (e) {
      throw new Error(`${where}: cannot read image ${ex.image} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    let pixels: Float32Array, context: Float32Array;
    try {
      pixels = centreCropResize(decodeImage(bytes, relative(process.cwd(), ex.image) || ex.image), this.imageSize);
      context = ex.row === null ? readSafetensorsFloats(ex.header, ex.key) : readSafetensorsFloats(ex.header, ex.key, ex.row, 1);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
    return { pixels, label: ex.label, context };
  }
}
