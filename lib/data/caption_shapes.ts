/**
 * A synthetic text-to-image dataset: the `shapes` drawings (lib/data/shapes.ts) in colours named by
 * a small palette, each with a template caption — "a red circle on a blue background" — embedded by
 * the deterministic HashTextEmbedder. Written in the layout CaptionDataset reads: PNGs, one
 * (N, L, C) embedding tensor, a JSONL index. Example i is a pure function of (seed, i).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { encodePNG } from '../image/png.js';
import { writeSafetensorsRaw } from '../models/safetensors.js';
import { HASH_EMBEDDER_ID, HashTextEmbedder } from '../text/embedder.js';
import { DataRng } from './rng.js';
import { drawShape, SHAPE_CLASSES, shapeGeometry } from './shapes.js';

/** Colour names of the captions and their RGB in [0, 1] (each image jitters them slightly). */
export const CAPTION_COLOURS: readonly { name: string; rgb: readonly [number, number, number] }[] = [
  { name: 'red', rgb: [0.86, 0.1, 0.1] },
  { name: 'green', rgb: [0.1, 0.66, 0.16] },
  { name: 'blue', rgb: [0.12, 0.22, 0.88] },
  { name: 'yellow', rgb: [0.96, 0.86, 0.1] },
  { name: 'white', rgb: [0.96, 0.96, 0.96] },
  { name: 'black', rgb: [0.06, 0.06, 0.06] },
];

/** The caption template. */
export function shapeCaption(shape: string, fg: string, bg: string): string {
  return `a ${fg} ${shape} on a ${bg} background`;
}

export interface ShapeCaptionExample {
  pixels: Float32Array; // (3, size, size) in [-1, 1]
  label: number; // the shape class (SHAPE_CLASSES)
  fg: number; // CAPTION_COLOURS index of the shape
  bg: number; // CAPTION_COLOURS index of the background (never fg)
  caption: string;
}

/** Example i of the dataset with this seed (shape, colours, size, position and rotation from (seed, i)). */
export function shapeCaptionExample(seed: number, index: number, size: number): ShapeCaptionExample {
  const rng = new DataRng(seed ^ 0xca9, index);
  const label = rng.int(SHAPE_CLASSES.length);
  const fg = rng.int(CAPTION_COLOURS.length);
  const bg = (fg + 1 + rng.int(CAPTION_COLOURS.length - 1)) % CAPTION_COLOURS.length;
  const jitter = (rgb: readonly number[]) => rgb.map((v) => Math.min(1, Math.max(0, v + rng.uniform(-0.06, 0.06))));
  const fgRGB = jitter(CAPTION_COLOURS[fg].rgb), bgRGB = jitter(CAPTION_COLOURS[bg].rgb);
  const pixels = drawShape({ label, fg: fgRGB, bg: bgRGB, ...shapeGeometry(rng, label, size) }, size);
  return { pixels, label, fg, bg, caption: shapeCaption(SHAPE_CLASSES[label], CAPTION_COLOURS[fg].name, CAPTION_COLOURS[bg].name) };
}

export interface ShapeCaptionOptions {
  count: number;
  /** Image side in pixels. */
  size: number;
  seed?: number;
  /** Context tokens L and features C of the embeddings. */
  contextLen?: number;
  contextDim?: number;
  /** Called after each image (progress). */
  onImage?: (done: number) => void;
}

/** Captions for sample grids: each colour as a shape colour once, over every shape class. */
export function sampleShapeCaptions(): string[] {
  return CAPTION_COLOURS.flatMap((fg, i) => SHAPE_CLASSES.map((shape, s) => shapeCaption(shape, fg.name, CAPTION_COLOURS[(i + 1 + s) % CAPTION_COLOURS.length].name)));
}

/**
 * Writes the dataset into `dir`: images/NNNNNN.png, embeddings.safetensors (tensor 'context' of
 * shape (count, L, C), float32), index.jsonl (one line per image with its caption, shape label and
 * embedding row) and sample-captions.txt (captions for `diffvit sample --captions`).
 * Returns the index path.
 */
export function writeShapeCaptions(dir: string, options: ShapeCaptionOptions): string {
  const { count, size } = options;
  const seed = options.seed ?? 0, L = options.contextLen ?? 8, C = options.contextDim ?? 32;
  if (!Number.isInteger(count) || count < 1) throw new Error(`diffvit.writeShapeCaptions: argument 'count' expected an integer >= 1, received ${count}`);
  if (!Number.isInteger(size) || size < 8) throw new Error(`diffvit.writeShapeCaptions: argument 'size' expected an integer >= 8, received ${size}`);
  const embedder = new HashTextEmbedder(L, C);
  mkdirSync(join(dir, 'images'), { recursive: true });
  const context = new Float32Array(count * L * C);
  const lines: string[] = [];
  const rgb = new Uint8Array(size * size * 3);
  for (let i = 0; i < count; i++) {
    const ex = shapeCaptionExample(seed, i, size);
    for (let p = 0; p < size * size; p++) {
      for (let c = 0; c < 3; c++) rgb[p * 3 + c] = Math.round((ex.pixels[c * size * size + p] + 1) * 127.5);
    }
    const image = `images/${String(i).padStart(6, '0')}.png`;
    writeFileSync(join(dir, image), encodePNG(rgb, size, size));
    context.set(embedder.embed(ex.caption), i * L * C);
    lines.push(JSON.stringify({ image, embedding: 'embeddings.safetensors', index: i, caption: ex.caption, label: ex.label }));
    options.onImage?.(i + 1);
  }
  writeSafetensorsRaw(join(dir, 'embeddings.safetensors'), [['context', 'F32', [count, L, C], new Uint8Array(context.buffer)]], {
    embedder: HASH_EMBEDDER_ID, context_len: String(L), context_dim: String(C), embedder_seed: '0',
  });
  const index = join(dir, 'index.jsonl');
  writeFileSync(index, lines.join('\n') + '\n');
  writeFileSync(join(dir, 'sample-captions.txt'), sampleShapeCaptions().join('\n') + '\n');
  return index;
}
