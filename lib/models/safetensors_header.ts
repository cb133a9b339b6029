/**
 * The native-free half of safetensors reading: the header (names, dtypes, shapes, byte ranges)
 * read and checked without loading the data, and float reads of one tensor or a slice of its
 * leading axis straight from the file. Data loaders use it on worker threads (no addon there) and
 * for files too large to read whole (one (N, L, C) embedding tensor for a whole dataset).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

/** Bytes per element of the dtypes diffvit reads. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
const MAX_HEADER = 100 * 1024 * 1024;
const LITTLE_ENDIAN = endianness() === 'LE';

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Absolute byte range of the tensor's data in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

function fail(path: string, what: string): never {
  throw new Error(`diffvit.safetensors: ${path}: ${what}`);
}

function readExactly(fd: number, path: string, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) fail(path, `truncated: wanted ${length} bytes at offset ${position}, the file ends after ${position + got}`);
    got += n;
  }
  return buf;
}

function open(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    return fail(path, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Reads and checks the header of `path` (every entry's dtype, shape and byte range against the file size). */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = open(path);
  try {
    const size = fstatSync(fd).size;
    if (size < 8) fail(path, `truncated: ${size} bytes, a safetensors file has at least 8`);
    const headerLen = Number(readExactly(fd, path, 8, 0).readBigUInt64LE(0));
    if (headerLen > MAX_HEADER || 8 + headerLen > size) fail(path, `header length ${headerLen} does not fit the ${size}-byte file (truncated or not safetensors)`);
    let header: unknown;
    try {
      header = JSON.parse(readExactly(fd, path, headerLen, 8).toString('utf8'));
    } catch (e) {
      fail(path, `the header is not valid JSON (${(e as Error).message})`);
    }
    if (!header || typeof header !== 'object' || Array.isArray(header)) fail(path, 'the header is not a JSON object');
    const dataStart = 8 + headerLen, dataBytes = size - dataStart;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const { dtype, shape, data_offsets: off } = (raw ?? {}) as { dtype?: string; shape?: number[]; data_offsets?: number[] };
      if (!dtype || !(dtype in SAFETENSORS_DTYPE_BYTES)) fail(path, `tensor '${name}': unsupported dtype ${JSON.stringify(dtype)} (${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
      if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && s >= 0)) fail(path, `tensor '${name}': bad shape ${JSON.stringify(shape)}`);
      if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[1] < off[0]) {
        fail(path, `tensor '${name}': bad data_offsets ${JSON.stringify(off)}`);
      }
      const n = shape.reduce((a, b) => a * b, 1), expected = n * SAFETENSORS_DTYPE_BYTES[dtype];
      if (off[1] - off[0] !== expected) fail(path, `tensor '${name}': ${off[1] - off[0]} bytes for ${dtype} shape [${shape.join(', ')}] (expected ${expected})`);
      if (off[1] > dataBytes) fail(path, `tensor '${name}': data ends at byte ${off[1]} but the file has ${dataBytes} data bytes (truncated)`);
      entries.set(name, { dtype, shape, begin: dataStart + off[0], end: dataStart + off[1] });
    }
    return { path, entries, metadata };
  } finally {
    closeSync(fd);
  }
}

/**
 * Float values of `entry` (F32 as is; F16, BF16, F64 converted), optionally only rows
 * [row, row + rows) of its leading axis. Reads just those bytes.
 */
export function readSafetensorsFloats(header: SafetensorsHeader, name: string, row = 0, rows?: number): Float32Array {
  const path = header.path;
  const entry = header.entries.get(name) ?? fail(path, `no tensor '${name}' (tensors: ${[...header.entries.keys()].join(', ') || 'none'})`);
  const { dtype, shape } = entry;
  if (dtype.startsWith('I')) fail(path, `tensor '${name}': expected a float dtype (F32, F16, BF16, F64), received ${dtype}`);
  const leading = shape.length ? shape[0] : 1;
  const count = rows ?? leading - row;
  if (!(Number.isInteger(row) && Number.isInteger(count) && row >= 0 && count >= 0 && row + count <= leading)) {
    fail(path, `tensor '${name}' of shape [${shape.join(', ')}]: rows [${row}, ${row + count}) are out of range`);
  }
  const perRow = shape.slice(1).reduce((a, b) => a * b, 1), bytes = SAFETENSORS_DTYPE_BYTES[dtype];
  const n = count * perRow;
  const fd = open(path);
  let raw: Buffer;
  try {
    raw = readExactly(fd, path, n * bytes, entry.begin + row * perRow * bytes);
  } finally {
    closeSync(fd);
  }
  const out = new Float32Array(n);
  if (dtype === 'F32' && LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(raw); // safetensors data is little-endian: a plain copy
    return out;
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = view.getFloat32(4 * i, true);
    else if (dtype === 'F64') out[i] = view.getFloat64(8 * i, true);
    else if (dtype === 'F16') out[i] = f16ToF32(view.getUint16(2 * i, true));
    else out[i] = bf16ToF32(view.getUint16(2 * i, true));
  }
  return out;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const BF16_SCRATCH = new Uint32Array(1);
const BF16_VIEW = new Float32Array(BF16_SCRATCH.buffer);
export function bf16ToF32(h: number): number {
  BF16_SCRATCH[0] = h << 16;
  return BF16_VIEW[0];
}
