/**
 * The dataset cache: any dataset preprocessed once (decoded, centre-cropped, resized, quantised to
 * 8 bits) into one file that training memory-maps, so epochs read bytes instead of re-decoding
 * JPEGs, and the loader touches only the pages of the examples it reads.
 *
 *   writeDatasetCache(new ImageFolderDataset('cifar10/test', 32), 'cifar10-test.dvcache');
 *   const d = new CachedDataset('cifar10-test.dvcache'); // or createDataset({ kind: 'cache', path })
 *
 * File layout, version 1 (all integers little-endian):
 *
 *   offset 0        8 bytes   magic "DVCACHE\0"
 *   offset 8        uint32    format version (1)
 *   offset 12       uint32    header length L in bytes
 *   offset 16       L bytes   header: UTF-8 JSON (CacheHeader), space-padded so 16 + L is a multiple of 64
 *   pixels.offset   uint8     (N, C, H, W) pixels; 64-byte aligned
 *   labels.offset   int32     (N) labels (all 0 for unlabelled data); 64-byte aligned
 *   end of file  =  labels.offset + 4·N exactly
 *
 * Quantisation (what "round trip" means): a pixel x in [-1, 1] is stored as q = round((x + 1)·127.5)
 * and read back as x̂ = q / 127.5 - 1, the expression the 8-bit loaders (CIFAR-10, MNIST, image
 * folders at their own size) use, so data that came from 8-bit images round-trips bit-exactly and
 * any other value is off by at most half a step, 1/255.
 */
import { closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename } from 'node:path';

import { mapFile } from '../backend/cpu/runtime.js';
import type { Example, ImageDataset } from './types.js';

export const CACHE_MAGIC = 'DVCACHE\0';
export const CACHE_VERSION = 1;
const PREAMBLE = 16; // magic + version + header length
const ALIGN = 64;
const QUANTISATION = 'q = round((x + 1) * 127.5), x = q / 127.5 - 1';

/** The JSON header of a cache file. */
export interface CacheHeader {
  format: 'diffvit-dataset-cache';
  version: number;
  /** The source dataset's name, e.g. 'cifar10' or 'folder:/data/cifar10/test'. */
  name: string;
  channels: number;
  imageSize: number;
  /** N, the number of examples. */
  count: number;
  /** 0 for unlabelled data. */
  numClasses: number;
  classNames: string[];
  pixels: { offset: number; bytes: number; dtype: 'uint8'; shape: [number, number, number, number] };
  labels: { offset: number; bytes: number; dtype: 'int32' };
  quantisation: string;
  /** Where the data came from (e.g. the DatasetSpec it was prepared from); informational. */
  source?: unknown;
}

// x̂ for each byte, computed in float64 and rounded once to float32 as the 8-bit loaders do.
const DEQUANTISED = Float32Array.from({ length: 256 }, (_, q) => q / 127.5 - 1);

/**
 * pixels in [-1, 1] -> bytes q = round((x + 1)·127.5). `where` names the example in errors: a value
 * outside [-1, 1] (beyond float rounding) or non-finite means the dataset is broken, not that it
 * should be clipped.
 */
export function quantise(pixels: Float32Array, out: Uint8Array = new Uint8Array(pixels.length), where = 'pixels'): Uint8Array {
  for (let i = 0; i < pixels.length; i++) {
    const x = pixels[i];
    if (!(x >= -1.0001 && x <= 1.0001)) {
      throw new Error(`diffvit.writeDatasetCache: ${where}: value ${x} at element ${i} (expected pixels in [-1, 1])`);
    }
    out[i] = Math.min(255, Math.max(0, Math.round((x + 1) * 127.5)));
  }
  return out;
}

/** bytes -> pixels x̂ = q / 127.5 - 1 in [-1, 1]. */
export function dequantise(bytes: Uint8Array, out: Float32Array = new Float32Array(bytes.length)): Float32Array {
  for (let i = 0; i < bytes.length; i++) out[i] = DEQUANTISED[bytes[i]];
  return out;
}

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export interface WriteCacheOptions {
  /** Write an unlabelled cache (numClasses 0) even when the dataset has classes. */
  unlabelled?: boolean;
  /** Provenance stored in the header, e.g. the DatasetSpec the dataset was built from. */
  source?: unknown;
  /** Called after each chunk of examples with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** The header (with its byte offsets) of a cache holding `dataset`. */
function makeHeader(dataset: ImageDataset, options: WriteCacheOptions): { header: CacheHeader; json: Buffer } {
  const N = dataset.size, C = dataset.channels, S = dataset.imageSize;
  const labelled = !options.unlabelled && dataset.numClasses > 0;
  const header: CacheHeader = {
    format: 'diffvit-dataset-cache',
    version: CACHE_VERSION,
    name: dataset.name,
    channels: C,
    imageSize: S,
    count: N,
    numClasses: labelled ? dataset.numClasses : 0,
    classNames: labelled ? [...dataset.classNames] : [],
    pixels: { offset: 0, bytes: N * C * S * S, dtype: 'uint8', shape: [N, C, S, S] },
    labels: { offset: 0, bytes: 4 * N, dtype: 'int32' },
    quantisation: QUANTISATION,
    ...(options.source !== undefined ? { source: options.source } : {}),
  };
  // The offsets are inside the JSON whose length they depend on: iterate to the fixed point (the
  // length only grows with the offsets' digits, so this settles in a few rounds).
  for (;;) {
    const length = Buffer.byteLength(JSON.stringify(header));
    const pixels = align(PREAMBLE + length);
    const labels = align(pixels + header.pixels.bytes);
    if (pixels === header.pixels.offset && labels === header.labels.offset) {
      // Pad in bytes, not characters: class names may be any UTF-8.
      const json = Buffer.alloc(pixels - PREAMBLE, ' ');
      json.write(JSON.stringify(header), 0, 'utf8');
      return { header, json };
    }
    header.pixels.offset = pixels;
    header.labels.offset = labels;
  }
}

/**
 * Preprocesses `dataset` into a cache file at `path`: every example is read once, quantised to
 * uint8 and streamed to disk in chunks. The file is written to a temporary name beside `path` and
 * renamed into place only when complete, so a crash or an error never leaves a partial cache.
 */
export function writeDatasetCache(dataset: ImageDataset, path: string, options: WriteCacheOptions = {}): CacheHeader {
  const N = dataset.size, C = dataset.channels, S = dataset.imageSize;
  for (const [key, v] of [['size', N], ['channels', C], ['imageSize', S]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`diffvit.writeDatasetCache: dataset ${dataset.name}: ${key} expected a positive integer, received ${v}`);
  }
  if (dataset.contextDim) {
    throw new Error(`diffvit.writeDatasetCache: dataset ${dataset.name} carries text embeddings (context ${dataset.contextLen}×${dataset.contextDim}), which a cache file does not store; train from the captions index directly`);
  }
  const { header, json } = makeHeader(dataset, options);
  const labelled = header.numClasses > 0;
  const per = C * S * S;
  const preamble = Buffer.alloc(PREAMBLE);
  preamble.write(CACHE_MAGIC, 0, 'latin1');
  preamble.writeUInt32LE(CACHE_VERSION, 8);
  preamble.writeUInt32LE(json.length, 12);

  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const fd = openSync(tmp, 'w');
  // write(2) may write less than asked (a full disk): loop until done, so the error surfaces here.
  const writeAll = (data: Uint8Array) => {
    for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done);
  };
  let complete = false;
  try {
    writeAll(preamble);
    writeAll(json);
    // ~4 MiB of pixels per write; labels are kept (4·N bytes) and written after the pixels.
    const chunk = Math.max(1, Math.floor((4 << 20) / per));
    const bytes = new Uint8Array(chunk * per);
    const labels = new Int32Array(N);
    for (let start = 0; start < N; start += chunk) {
      const end = Math.min(N, start + chunk);
      for (let i = start; i < end; i++) {
        const ex = dataset.get(i);
        if (ex.pixels.length !== per) {
          throw new Error(`diffvit.writeDatasetCache: ${dataset.name}: example ${i} has ${ex.pixels.length} pixel values (expected C·H·W = ${C}·${S}·${S} = ${per})`);
        }
        quantise(ex.pixels, bytes.subarray((i - start) * per, (i - start + 1) * per), `${dataset.name}: example ${i}`);
        if (labelled) {
          if (!Number.isInteger(ex.label) || ex.label < 0 || ex.label >= header.numClasses) {
            throw new Error(`diffvit.writeDatasetCache: ${dataset.name}: example ${i} has label ${ex.label} (expected a class in [0, ${header.numClasses}))`);
          }
          labels[i] = ex.label;
        }
      }
      writeAll(bytes.subarray(0, (end - start) * per));
      options.onProgress?.(end, N);
    }
    writeAll(new Uint8Array(header.labels.offset - (header.pixels.offset + header.pixels.bytes))); // alignment gap
    writeAll(new Uint8Array(labels.buffer));
    fsyncSync(fd);
    complete = true;
  } finally {
    closeSync(fd);
    if (!complete) unlinkSync(tmp);
  }
  renameSync(tmp, path);
  return header;
}

/** Reads and checks the preamble, the header and the file length of a mapped cache. */
function parseHeader(file: Uint8Array, path: string): CacheHeader {
  const bad = (what: string): never => {
    throw new Error(`diffvit.CachedDataset: ${path}: ${what}`);
  };
  const magic = Buffer.from(file.buffer, file.byteOffset, Math.min(8, file.length));
  if (magic.toString('latin1') !== CACHE_MAGIC.slice(0, magic.length)) {
    bad(`not a diffvit dataset cache (expected magic "DVCACHE\\0" at byte 0, found bytes ${magic.toString('hex')}); make one with 'diffvit prepare'`);
  }
  if (file.length < PREAMBLE) bad(`truncated: ${file.length} bytes (expected at least the ${PREAMBLE}-byte preamble of a diffvit dataset cache)`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const version = view.getUint32(8, true);
  if (version !== CACHE_VERSION) bad(`format version ${version} (this diffvit reads version ${CACHE_VERSION}; prepare the cache again)`);
  const length = view.getUint32(12, true);
  if (PREAMBLE + length > file.length) bad(`truncated: ${file.length} bytes, but the header alone needs ${PREAMBLE + length}`);
  let h: CacheHeader;
  try {
    h = JSON.parse(Buffer.from(file.buffer, file.byteOffset + PREAMBLE, length).toString('utf8')) as CacheHeader;
  } catch (e) {
    return bad(`corrupt header (expected JSON: ${(e as Error).message})`);
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) bad(`corrupt header (expected a JSON object, received ${JSON.stringify(h)})`);
  const field = (name: string, v: unknown, ok: boolean, expected: string) => {
    if (!ok) bad(`corrupt header: '${name}' expected ${expected}, received ${JSON.stringify(v)}`);
  };
  const int = (v: unknown, min: number) => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
  field('format', h.format, h.format === 'diffvit-dataset-cache', "'diffvit-dataset-cache'");
  for (const k of ['channels', 'imageSize', 'count'] as const) field(k, h[k], int(h[k], 1), 'a positive integer');
  field('numClasses', h.numClasses, int(h.numClasses, 0), 'an integer >= 0');
  field('classNames', h.classNames, Array.isArray(h.classNames) && h.classNames.length === h.numClasses && h.classNames.every((c) => typeof c === 'string'),
    `${h.numClasses} class name strings`);
  const N = h.count, pixelBytes = N * h.channels * h.imageSize * h.imageSize;
  field('pixels', h.pixels, typeof h.pixels === 'object' && h.pixels !== null && int(h.pixels.offset, PREAMBLE + length) && h.pixels.offset % ALIGN === 0 &&
    h.pixels.bytes === pixelBytes && h.pixels.dtype === 'uint8',
    `{ offset: a multiple of ${ALIGN} >= ${PREAMBLE + length}, bytes: N·C·H·W = ${pixelBytes}, dtype: 'uint8' }`);
  const labelsMin = h.pixels.offset + pixelBytes;
  field('labels', h.labels, typeof h.labels === 'object' && h.labels !== null && int(h.labels.offset, labelsMin) && h.labels.offset % ALIGN === 0 &&
    h.labels.bytes === 4 * N && h.labels.dtype === 'int32',
    `{ offset: a multiple of ${ALIGN} >= ${labelsMin}, bytes: 4·N = ${4 * N}, dtype: 'int32' }`);
  const expected = h.labels.offset + h.labels.bytes;
  const what = `${N} images of ${h.channels}×${h.imageSize}×${h.imageSize}`;
  if (file.length < expected) bad(`truncated: ${file.length} bytes, expected ${expected} (the header describes ${what})`);
  if (file.length > expected) bad(`${file.length} bytes, expected ${expected} (the header describes ${what}; trailing data means a corrupt or foreign file)`);
  return h;
}

/**
 * A dataset read from a cache file (see writeDatasetCache). The file is memory-mapped: construction
 * reads the header and the labels, and each get(i) reads (and pages in) only example i's bytes.
 * The mapping is released when the dataset is garbage-collected.
 */
export class CachedDataset implements ImageDataset {
  readonly header: CacheHeader;
  readonly name: string;
  readonly size: number;
  readonly channels: number;
  readonly imageSize: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  private readonly pixels: Uint8Array; // (N, C, H, W)
  private readonly labels: Int32Array; // (N)
  private readonly per: number;

  constructor(readonly path: string) {
    if (endianness() !== 'LE') throw new Error(`diffvit.CachedDataset: ${path}: cache files are little-endian; this host is big-endian`);
    let isFile = false;
    try {
      isFile = statSync(path).isFile();
    } catch {
      throw new Error(`diffvit.CachedDataset: ${path}: no such file (make one with 'diffvit prepare --data SPEC --out ${basename(path)}')`);
    }
    if (!isFile) throw new Error(`diffvit.CachedDataset: ${path}: not a regular file (expected a .dvcache file from 'diffvit prepare')`);
    const mapped = mapFile(path);
    const file = new Uint8Array(mapped);
    const h = parseHeader(file, path);
    this.header = h;
    this.name = `cache:${h.name}`;
    this.size = h.count;
    this.channels = h.channels;
    this.imageSize = h.imageSize;
    this.numClasses = h.numClasses;
    this.classNames = h.classNames;
    this.per = h.channels * h.imageSize * h.imageSize;
    this.pixels = new Uint8Array(mapped, h.pixels.offset, h.pixels.bytes);
    this.labels = new Int32Array(mapped, h.labels.offset, h.count);
    // The labels are 4·N bytes: check them all now rather than fail mid-run.
    const top = Math.max(1, h.numClasses);
    for (let i = 0; i < h.count; i++) {
      const l = this.labels[i];
      if (l < 0 || l >= top) {
        throw new Error(`diffvit.CachedDataset: ${path}: corrupt labels: example ${i} has label ${l} (expected ${h.numClasses ? `a class in [0, ${h.numClasses})` : '0 for unlabelled data'})`);
      }
    }
  }

  /** Example i's stored bytes, (C, H, W) uint8: a view into the mapping, not a copy. */
  bytes(index: number): Uint8Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new Error(`diffvit.CachedDataset: ${this.path}: index expected an integer in [0, ${this.size}), received ${index}`);
    }
    return this.pixels.subarray(index * this.per, (index + 1) * this.per);
  }

  get(index: number): Example {
    return { pixels: dequantise(this.bytes(index)), label: this.labels[index] };
  }
}
