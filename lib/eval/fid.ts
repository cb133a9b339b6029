/**
 * FID and KID on Inception-v3 pool3 features (lib/eval/inception.ts): streaming feature
 * statistics of any number of images, reference-statistics files, the Fréchet distance and the
 * kernel inception distance.
 *
 *   const net = loadInception('inception.safetensors');
 *   const ref = computeStats(net, datasetSource(createDataset({ kind: 'cifar10', root, split: 'train' })));
 *   saveStats('cifar10-train.safetensors', ref);
 *   const gen = computeStats(net, arraySource(images, [N, 3, 32, 32]));
 *   console.log(fid(gen, loadStats('cifar10-train.safetensors')), kid(gen, ref).mean);
 *
 * Statistics are float64 and exact to the order of summation: the mean and covariance are
 * accumulated batch by batch with Chan et al.'s pairwise update (no E[xxᵀ] − μμᵀ cancellation),
 * the covariance unbiased (n − 1) as numpy.cov in pytorch-fid.
 */
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

import type { ImageDataset } from '../data/types.js';
import { tensor } from '../ops/creation.js';
import { matmul } from '../ops/matmul.js';
import { transpose } from '../ops/shape.js';
import { noGrad } from '../tensor/autograd.js';
import { scope } from '../tensor/scope.js';
import { type FeatureStats, frechetDistance, subsetPicker } from './frechet.js';
import { INCEPTION_FEATURES, type InceptionV3 } from './inception.js';
import { type RawEntry, writeSafetensorsRaw } from '../models/safetensors.js';
import { checkSafetensorsEntry, decodeSafetensorsData, parseSafetensorsFraming } from '../models/safetensors_format.js';

/** Feature statistics plus, for KID, a uniform random subset of the feature rows. */
export interface FidStats extends FeatureStats {
  /** kidCount × dim features kept for KID (null when none were kept). */
  kidFeatures: Float32Array | null;
  kidCount: number;
}

/** Images to compute statistics of, read in consecutive batches. */
export interface ImageSource {
  /** Total number of images. */
  readonly count: number;
  /**
   * Images [start, start + n) as (n, channels, height, width) float32 in [-1, 1]; channels 1
   * (replicated to RGB, as pytorch-fid's convert('RGB')) or 3. Called with increasing start.
   */
  read(start: number, n: number): { pixels: Float32Array; channels: number; height: number; width: number };
}

/** A dataset (or the examples of it at `indices`) as an image source. */
export function datasetSource(dataset: ImageDataset, indices?: ArrayLike<number>): ImageSource {
  const count = indices ? indices.length : dataset.size;
  const size = dataset.imageSize, channels = dataset.channels, per = channels * size * size;
  return {
    count,
    read(start, n) {
      const pixels = new Float32Array(n * per);
      for (let i = 0; i < n; i++) {
        const index = indices ? indices[start + i] : start + i;
        const ex = dataset.get(index).pixels;
        if (ex.length !== per) {
          throw new Error(`diffvit.fid: ${dataset.name} example ${index} has ${ex.length} values, expected ${channels}×${size}×${size}`);
        }
        pixels.set(ex, i * per);
      }
      return { pixels, channels, height: size, width: size };
    },
  };
}

/** Images already in memory, (N, C, H, W) in [-1, 1]. */
export function arraySource(images: Float32Array | Float64Array, shape: readonly [number, number, number, number]): ImageSource {
  const [count, channels, height, width] = shape;
  const per = channels * height * width;
  if (images.length !== count * per) {
    throw new Error(`diffvit.fid: argument 'images' expected ${count}×${channels}×${height}×${width} = ${count * per} values, received ${images.length}`);
  }
  return {
    count,
    read: (start, n) => ({ pixels: Float32Array.from(images.subarray(start * per, (start + n) * per)), channels, height, width }),
  };
}

/**
 * Rounds images in [-1, 1] to the 8-bit values a saved PNG would hold and back (in place), as
 * EDM's generate.py and any FID computed from image files see them: uint8 = clip(x·127.5 + 128).
 */
export function quantize8bit(pixels: Float32Array | Float64Array): void {
  for (let i = 0; i < pixels.length; i++) {
    const v = Math.min(255, Math.max(0, Math.floor(pixels[i] * 127.5 + 128)));
    pixels[i] = v / 127.5 - 1;
  }
}

/**
 * Streaming mean/covariance of feature rows (Chan, Golub & LeVeque's pairwise update, float64),
 * keeping a uniform random subset of up to `keep` rows for KID (reservoir sampling, seeded).
 */
export class StatsAccumulator {
  private count = 0;
  private readonly mu: Float64Array;
  private readonly m2: Float64Array; // Σ (x − μ)(x − μ)ᵀ, upper triangle filled
  private kept: Float32Array; // grows to keep × dim as rows arrive
  private keptCount = 0;
  private rngState: number;

  constructor(readonly dim: number, readonly keep = 10_000, seed = 0) {
    this.mu = new Float64Array(dim);
    this.m2 = new Float64Array(dim * dim);
    this.kept = new Float32Array(Math.min(keep, 256) * dim);
    this.rngState = seed >>> 0;
  }

  private random(): number {
    this.rngState = (Math.imul(this.rngState, 1664525) + 1013904223) >>> 0;
    return this.rngState / 4294967296;
  }

  /** Adds `rows` feature rows (rows × dim, row-major). */
  add(features: ArrayLike<number>, rows: number): void {
    const d = this.dim;
    if (features.length !== rows * d) throw new Error(`diffvit.StatsAccumulator: expected ${rows}×${d} = ${rows * d} values, received ${features.length}`);
    if (rows === 0) return;
    // the batch's own mean and centred co-moment
    const mean = new Float64Array(d);
    for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) mean[j] += features[r * d + j];
    for (let j = 0; j < d; j++) mean[j] /= rows;
    const row = new Float64Array(d);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < d; j++) row[j] = features[r * d + j] - mean[j];
      for (let a = 0; a < d; a++) {
        const ra = row[a], base = a * d;
        if (ra === 0) continue;
        for (let b = a; b < d; b++) this.m2[base + b] += ra * row[b];
      }
    }
    // merge: M2 += δδᵀ·n_a·n_b/n, μ += δ·n_b/n with δ = mean_b − μ_a
    const na = this.count, n = na + rows, w = (na * rows) / n;
    if (na > 0) {
      for (let j = 0; j < d; j++) row[j] = mean[j] - this.mu[j];
      for (let a = 0; a < d; a++) {
        const ra = row[a] * w, base = a * d;
        for (let b = a; b < d; b++) this.m2[base + b] += ra * row[b];
      }
    }
    for (let j = 0; j < d; j++) this.mu[j] += (mean[j] - this.mu[j]) * (rows / n);
    // reservoir sampling (Algorithm R): every row seen so far is kept with equal probability
    for (let r = 0; r < rows; r++) {
      const seen = na + r;
      let slot = -1;
      if (this.keptCount < this.keep) {
        slot = this.keptCount++;
        if (slot * d >= this.kept.length) {
          const grown = new Float32Array(Math.min(this.keep, 2 * slot) * d);
          grown.set(this.kept);
          this.kept = grown;
        }
      } else {
        const j = Math.floor(this.random() * (seen + 1));
        if (j < this.keep) slot = j;
      }
      if (slot >= 0) for (let j = 0; j < d; j++) this.kept[slot * d + j] = features[r * d + j];
    }
    this.count = n;
  }

  get size(): number {
    return this.count;
  }

  /** The statistics so far (at least 2 rows). */
  finish(): FidStats {
    const d = this.dim, n = this.count;
    if (n < 2) throw new Error(`diffvit.fid: statistics need at least 2 images, received ${n}`);
    const sigma = new Float64Array(d * d);
    for (let a = 0; a < d; a++) {
      for (let b = a; b < d; b++) {
        const v = this.m2[a * d + b] / (n - 1);
        sigma[a * d + b] = v;
        sigma[b * d + a] = v;
      }
    }
    return {
      dim: d, count: n, mu: Float64Array.from(this.mu), sigma,
      kidFeatures: this.keptCount ? this.kept.slice(0, this.keptCount * d) : null, kidCount: this.keptCount,
    };
  }
}

export interface StatsOptions {
  /** Images per Inception forward pass (default 16). */
  batchSize?: number;
  /** Feature rows kept for KID (default 10 000; 0 keeps none). */
  kidFeatures?: number;
  /** Seed of the KID row subset (default 0). */
  seed?: number;
  /** Round images to 8 bits first, as when they are saved as PNG (default false). */
  quantize?: boolean;
  /** Called after each batch with the number of images done. */
  onProgress?: (done: number, total: number) => void;
}

/** Inception pool3 statistics of every image of `source`. */
export function computeStats(model: InceptionV3, source: ImageSource, options: StatsOptions = {}): FidStats {
  const batch = options.batchSize ?? 16;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`diffvit.computeStats: argument 'batchSize' expected an integer >= 1, received ${batch}`);
  const acc = new StatsAccumulator(INCEPTION_FEATURES, options.kidFeatures ?? 10_000, options.seed ?? 0);
  for (let start = 0; start < source.count; start += batch) {
    const n = Math.min(batch, source.count - start);
    const { pixels, channels, height, width } = source.read(start, n);
    if (channels !== 1 && channels !== 3) throw new Error(`diffvit.computeStats: images need 1 or 3 channels, received ${channels}`);
    if (options.quantize) quantize8bit(pixels);
    const rgb = channels === 3 ? pixels : grayToRgb(pixels, n, height * width);
    const features = scope(() => noGrad(() => model.forward(tensor(rgb, [n, 3, height, width])).data()));
    acc.add(features, n);
    options.onProgress?.(start + n, source.count);
  }
  return acc.finish();
}

function grayToRgb(pixels: Float32Array, n: number, plane: number): Float32Array {
  const out = new Float32Array(n * 3 * plane);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out.set(pixels.subarray(i * plane, (i + 1) * plane), (i * 3 + c) * plane);
  return out;
}

/** The Fréchet Inception Distance between two sets of statistics. */
export function fid(a: FeatureStats, b: FeatureStats): number {
  return frechetDistance(a, b);
}

export interface KidOptions {
  /** Number of random subsets averaged (default 100, as torch-fidelity). */
  subsets?: number;
  /** Rows per subset (default 1000, capped by the rows available). */
  subsetSize?: number;
  seed?: number;
}

/**
 * Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD² with the cubic kernel
 * k(x, y) = (x·y/d + 1)³, averaged over random subsets — the same estimator and subset draws as
 * frechet.ts's kernelDistance, with the Gram matrices on the native GEMM (float32 products,
 * float64 sums) instead of a JS triple loop. Needs the kept feature rows of both sets.
 */
export function kid(a: FidStats, b: FidStats, options: KidOptions = {}): { mean: number; std: number; subsetSize: number } {
  if (!a.kidFeatures || !b.kidFeatures) throw new Error('diffvit.kid: both statistics need kept feature rows (kidFeatures); statistics saved without them cannot give KID');
  if (a.dim !== b.dim) throw new Error(`diffvit.kid: statistics of ${a.dim} and ${b.dim} features cannot be compared`);
  const d = a.dim, subsets = options.subsets ?? 100;
  const m = Math.min(options.subsetSize ?? 1000, a.kidCount, b.kidCount);
  if (m < 2) throw new Error(`diffvit.kid: subsets need at least 2 rows, received ${m}`);
  const pick = subsetPicker(options.seed ?? 0, m); // the same subset draws as kernelDistance
  const gather = (f: Float32Array, rows: number[]) => {
    const out = new Float32Array(m * d);
    rows.forEach((r, i) => out.set(f.subarray(r * d, (r + 1) * d), i * d));
    return out;
  };
  // Σ_ij k over the Gram matrix x yᵀ (m × m), optionally without its diagonal
  const kernelSum = (x: Float32Array, y: Float32Array, offDiagonal: boolean) => scope(() => noGrad(() => {
    const X = tensor(x, [m, d]), Y = tensor(y, [m, d]);
    const g = matmul(X, transpose(Y, 0, 1)).data();
    let s = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) if (!offDiagonal || i !== j) s += (g[i * m + j] / d + 1) ** 3;
    }
    return s;
  }));
  const results: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const x = gather(a.kidFeatures, pick(a.kidCount)), y = gather(b.kidFeatures, pick(b.kidCount));
    const kxx = kernelSum(x, x, true), kyy = kernelSum(y, y, true), kxy = kernelSum(x, y, false);
    results.push(kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - (2 * kxy) / (m * m));
  }
  const mean = results.reduce((p, v) => p + v, 0) / results.length;
  const std = Math.sqrt(results.reduce((p, v) => p + (v - mean) ** 2, 0) / results.length);
  return { mean, std, subsetSize: m };
}

// ---------------------------------------------------------------------------------------------
// Statistics files: safetensors with mu (F64 [d]), sigma (F64 [d, d]), count (I64 []) and
// optionally kid_features (F32 [k, d]); __metadata__ says what they are.

const STATS_FORMAT = 'diffvit-fid-stats';

/** Writes statistics atomically (temp file + rename). */
export function saveStats(path: string, stats: FidStats, metadata: Record<string, string> = {}): void {
  const d = stats.dim;
  const entries: RawEntry[] = [
    ['mu', 'F64', [d], new Uint8Array(stats.mu.buffer, stats.mu.byteOffset, stats.mu.byteLength)],
    ['sigma', 'F64', [d, d], new Uint8Array(stats.sigma.buffer, stats.sigma.byteOffset, stats.sigma.byteLength)],
    ['count', 'I64', [], new Uint8Array(new BigInt64Array([BigInt(stats.count)]).buffer)],
  ];
  if (stats.kidFeatures) {
    const f = stats.kidFeatures;
    entries.push(['kid_features', 'F32', [stats.kidCount, d], new Uint8Array(f.buffer, f.byteOffset, stats.kidCount * d * 4)]);
  }
  writeSafetensorsRaw(path, entries, { format: STATS_FORMAT, features: `inception-v3-pool3 (${d})`, count: String(stats.count), ...metadata });
}

/**
 * Reads statistics written by saveStats (mu/sigma may also be F32; count I64 or I32), or a NumPy
 * .npz with arrays mu and sigma — the reference statistics pytorch-fid and EDM publish (e.g. EDM's
 * fid-refs/cifar10-32x32.npz), so FIDs compare with published numbers. Those hold no image count
 * (count 0: unknown) and no feature rows (no KID).
 */
export function loadStats(path: string): FidStats & { metadata: Record<string, string> } {
  const fail = (what: string): never => {
    throw new Error(`diffvit.loadStats: ${path}: ${what}`);
  };
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    return fail(`cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.length >= 4 && bytes.readUInt32LE(0) === 0x04034b50) return loadNpzStats(bytes, fail);
  const framing = parseSafetensorsFraming(bytes.length, (length, position) => bytes.subarray(position, position + length), fail);
  const { header, metadata } = framing;
  const read = (name: string, dtypes: string[], shape: (number | null)[]): { values: Float64Array; shape: number[] } | null => {
    const e = header[name] as { dtype?: string; shape?: number[] } | undefined;
    if (!e) return null;
    if (!e.dtype || !dtypes.includes(e.dtype)) fail(`tensor '${name}' expected dtype ${dtypes.join(' or ')}, received ${e.dtype}`);
    if (!Array.isArray(e.shape) || e.shape.length !== shape.length || e.shape.some((s, i) => !Number.isInteger(s) || s < 0 || (shape[i] !== null && s !== shape[i]))) {
      fail(`tensor '${name}' expected shape [${shape.map((s) => s ?? 'n').join(', ')}], received ${JSON.stringify(e.shape)}`);
    }
    const entry = checkSafetensorsEntry(name, e, framing, fail, dtypes);
    const n = entry.shape.reduce((p, s) => p * s, 1);
    return { values: decodeSafetensorsData(entry.dtype, bytes.subarray(entry.begin, entry.end), new Float64Array(n)), shape: entry.shape };
  };
  const mu = read('mu', ['F64', 'F32'], [null]) ?? fail("no tensor 'mu' (not a statistics file)");
  const d = mu.shape[0];
  const sigma = read('sigma', ['F64', 'F32'], [d, d]) ?? fail("no tensor 'sigma' (not a statistics file)");
  const countTensor = read('count', ['I64', 'I32'], []);
  const count = countTensor ? countTensor.values[0] : Number(metadata.count);
  if (!Number.isInteger(count) || count < 2) fail(`count ${count} (expected an integer >= 2)`);
  for (let i = 0; i < d; i++) if (!Number.isFinite(mu.values[i])) fail(`mu[${i}] is ${mu.values[i]}`);
  for (let i = 0; i < d * d; i++) if (!Number.isFinite(sigma.values[i])) fail(`sigma[${Math.floor(i / d)}, ${i % d}] is ${sigma.values[i]}`);
  const kid = read('kid_features', ['F32'], [null, d]);
  return {
    dim: d, count, mu: mu.values, sigma: sigma.values,
    kidFeatures: kid ? Float32Array.from(kid.values) : null, kidCount: kid ? kid.shape[0] : 0, metadata,
  };
}

// ---------------------------------------------------------------------------------------------
// NumPy .npz (a zip of .npy arrays, stored or deflated, zip64 sizes as numpy writes them)

function loadNpzStats(bytes: Buffer, fail: (what: string) => never): FidStats & { metadata: Record<string, string> } {
  let members: Map<string, Buffer>;
  try {
    members = readZip(bytes, fail);
  } catch (e) {
    if (e instanceof RangeError) fail('truncated or corrupt zip archive');
    throw e;
  }
  const array = (name: string) => {
    const b = members.get(`${name}.npy`);
    return b ? readNpy(b, name, fail) : fail(`no array '${name}' in the archive (holds ${[...members.keys()].join(', ') || 'nothing'})`);
  };
  const mu = array('mu');
  if (mu.shape.length !== 1) fail(`array 'mu' expected shape (d,), received (${mu.shape.join(', ')})`);
  const d = mu.shape[0];
  const sigma = array('sigma');
  if (sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) fail(`array 'sigma' expected shape (${d}, ${d}), received (${sigma.shape.join(', ')})`);
  for (let i = 0; i < d; i++) if (!Number.isFinite(mu.values[i])) fail(`mu[${i}] is ${mu.values[i]}`);
  for (let i = 0; i < d * d; i++) if (!Number.isFinite(sigma.values[i])) fail(`sigma[${Math.floor(i / d)}, ${i % d}] is ${sigma.values[i]}`);
  return { dim: d, count: 0, mu: mu.values, sigma: sigma.values, kidFeatures: null, kidCount: 0, metadata: { format: 'npz' } };
}

/** Members of a zip archive by name, read through its central directory. */
function readZip(b: Buffer, fail: (what: string) => never): Map<string, Buffer> {
  let eocd = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
    if (b.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('not a zip archive (no end of central directory)');
  let entries = b.readUInt16LE(eocd + 10), directory = b.readUInt32LE(eocd + 16);
  if ((entries === 0xffff || directory === 0xffffffff) && eocd >= 20 && b.readUInt32LE(eocd - 20) === 0x07064b50) {
    const zip64 = Number(b.readBigUInt64LE(eocd - 20 + 8));
    if (b.readUInt32LE(zip64) !== 0x06064b50) fail('corrupt zip64 end of central directory');
    entries = Number(b.readBigUInt64LE(zip64 + 32));
    directory = Number(b.readBigUInt64LE(zip64 + 48));
  }
  const out = new Map<string, Buffer>();
  let p = directory;
  for (let e = 0; e < entries; e++) {
    if (b.readUInt32LE(p) !== 0x02014b50) fail('corrupt zip central directory');
    const method = b.readUInt16LE(p + 10);
    let packed = b.readUInt32LE(p + 20), size = b.readUInt32LE(p + 24), local = b.readUInt32LE(p + 42);
    const nameLen = b.readUInt16LE(p + 28), extraLen = b.readUInt16LE(p + 30), commentLen = b.readUInt16LE(p + 32);
    const name = b.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extended information (extra id 1) holds the fields that read 0xffffffff, in this order
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen; x += 4 + b.readUInt16LE(x + 2)) {
      if (b.readUInt16LE(x) !== 1) continue;
      let q = x + 4;
      if (size === 0xffffffff) (size = Number(b.readBigUInt64LE(q))), (q += 8);
      if (packed === 0xffffffff) (packed = Number(b.readBigUInt64LE(q))), (q += 8);
      if (local === 0xffffffff) local = Number(b.readBigUInt64LE(q));
    }
    if (b.readUInt32LE(local) !== 0x04034b50) fail(`corrupt zip entry '${name}'`);
    const start = local + 30 + b.readUInt16LE(local + 26) + b.readUInt16LE(local + 28);
    if (start + packed > b.length) fail(`zip entry '${name}' is truncated`);
    const raw = b.subarray(start, start + packed);
    let data: Buffer;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        data = inflateRawSync(raw);
      } catch (err) {
        return fail(`zip entry '${name}' does not inflate (${(err as Error).message})`);
      }
    } else return fail(`zip entry '${name}' uses compression method ${method} (stored and deflate are read)`);
    if (data.length !== size) fail(`zip entry '${name}' has ${data.length} bytes, its header says ${size}`);
    out.set(name, data);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** A float64/float32 .npy array (little-endian, C or Fortran order) as float64 in C order. */
function readNpy(b: Buffer, name: string, fail: (what: string) => never): { values: Float64Array; shape: number[] } {
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`'${name}.npy' is not a NumPy array file`);
  const start = b[6] === 1 ? 10 : 12;
  const headerLen = b[6] === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const header = b.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== '<f8' && descr !== '<f4') fail(`array '${name}' has dtype ${descr} (float64 '<f8' or float32 '<f4' are read)`);
  if (shapeText === undefined) fail(`array '${name}' has no shape in its header`);
  const shape = shapeText!.split(',').map((t) => t.trim()).filter((t) => t !== '').map(Number);
  if (!shape.every((v) => Number.isInteger(v) && v >= 0)) fail(`array '${name}' has shape (${shapeText})`);
  const n = shape.reduce((a, v) => a * v, 1), width = descr === '<f8' ? 8 : 4, offset = start + headerLen;
  if (b.length - offset !== n * width) fail(`array '${name}' holds ${b.length - offset} data bytes, shape (${shape.join(', ')}) needs ${n * width}`);
  const raw = new Float64Array(n);
  for (let i = 0; i < n; i++) raw[i] = width === 8 ? b.readDoubleLE(offset + 8 * i) : b.readFloatLE(offset + 4 * i);
  if (!fortran || shape.length < 2) return { values: raw, shape };
  if (shape.length !== 2) fail(`array '${name}' is Fortran-ordered with ${shape.length} dimensions (2 at most are read)`);
  const [rows, cols] = shape, values = new Float64Array(n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) values[i * cols + j] = raw[j * rows + i];
  return { values, shape };
}
