/**
 * The one safetensors parser: a u64 little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then raw
 * little-endian bytes. Native-free (worker threads read through it). Its users:
 * - readSafetensors (./safetensors.ts): the whole file as tensors;
 * - readSafetensorsHeader / readSafetensorsFloats (./safetensors_header.ts): the header, then
 *   float reads of one tensor or rows of it straight from the file;
 * - loadStats (lib/eval/fid.ts): FID statistics files.
 * Each passes its own `fail` (the error prefix) and reads bytes its own way (`read`).
 */
import { endianness } from 'node:os';

import { bf16ToF32, f16ToF32 } from './float16.js';
import { jsonErrorMessage } from '../json_message.js';

/** Bytes per element of the dtypes diffvit reads. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 };
/** Every dtype diffvit reads, in the order error messages list them. */
export const SAFETENSORS_DTYPES: readonly string[] = Object.keys(SAFETENSORS_DTYPE_BYTES);
const MAX_HEADER = 100 * 1024 * 1024;
const LITTLE_ENDIAN = endianness() === 'LE';

/** Throws an Error saying `what` (with the caller's prefix). */
export type SafetensorsFail = (what: string) => never;

/** The errors of the safetensors readers: `diffvit.safetensors: <path>: <what>`. */
export function safetensorsFail(path: string): SafetensorsFail {
  return (what) => {
    throw new Error(`diffvit.safetensors: ${path}: ${what}`);
  };
}

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** Absolute byte range of the tensor's data in the file. */
  begin: number;
  end: number;
}

/** A file's header JSON (unchecked entries) and where its data lies. */
export interface SafetensorsFraming {
  /** The header object: entries by name, plus `__metadata__` when present. */
  header: Record<string, unknown>;
  metadata: Record<string, string>;
  /** Absolute offset of the data (8 + header length) and the number of data bytes after it. */
  dataStart: number;
  dataBytes: number;
}

/**
 * Reads and checks the header length and the JSON object of a `size`-byte file, through
 * `read(length, position)` (the file's bytes [position, position + length)).
 */
export function parseSafetensorsFraming(size: number, read: (length: number, position: number) => Buffer, fail: SafetensorsFail): SafetensorsFraming {
  if (size < 8) fail(`truncated: ${size} bytes, a safetensors file has at least 8`);
  const headerLen = Number(read(8, 0).readBigUInt64LE(0));
  if (headerLen > MAX_HEADER || 8 + headerLen > size) fail(`header length ${headerLen} does not fit the ${size}-byte file (truncated or not safetensors)`);
  let header: unknown;
  try {
    header = JSON.parse(read(headerLen, 8).toString('utf8'));
  } catch (e) {
    fail(`the header is not valid JSON (${jsonErrorMessage(e)})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object');
  const object = header as Record<string, unknown>;
  const metadata = (object.__metadata__ ?? {}) as Record<string, string>;
  return { header: object, metadata, dataStart: 8 + headerLen, dataBytes: size - 8 - headerLen };
}

/**
 * Checks header entry `name` (`raw`, as parsed): a dtype among `dtypes`, a shape of non-negative
 * integers, data_offsets holding exactly its bytes inside the file's data.
 */
export function checkSafetensorsEntry(
  name: string,
  raw: unknown,
  framing: Pick<SafetensorsFraming, 'dataStart' | 'dataBytes'>,
  fail: SafetensorsFail,
  dtypes: readonly string[] = SAFETENSORS_DTYPES,
): SafetensorsEntry {
  const { dtype, shape, data_offsets: off } = (raw ?? {}) as { dtype?: string; shape?: number[]; data_offsets?: number[] };
  if (!dtype || !dtypes.includes(dtype)) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(dtype)} (${dtypes.join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && s >= 0)) fail(`tensor '${name}': bad shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[1] < off[0]) {
    fail(`tensor '${name}': bad data_offsets ${JSON.stringify(off)}`);
  }
  const n = shape.reduce((a, b) => a * b, 1), expected = n * SAFETENSORS_DTYPE_BYTES[dtype];
  if (off[1] - off[0] !== expected) fail(`tensor '${name}': ${off[1] - off[0]} bytes for ${dtype} shape [${shape.join(', ')}] (expected ${expected})`);
  if (off[1] > framing.dataBytes) fail(`tensor '${name}': data ends at byte ${off[1]} but the file has ${framing.dataBytes} data bytes (truncated)`);
  return { dtype, shape, begin: framing.dataStart + off[0], end: framing.dataStart + off[1] };
}

/** The framing with every entry checked (checkSafetensorsEntry), in header order. */
export function parseSafetensorsHeader(
  size: number,
  read: (length: number, position: number) => Buffer,
  fail: SafetensorsFail,
  dtypes: readonly string[] = SAFETENSORS_DTYPES,
): { entries: Map<string, SafetensorsEntry>; metadata: Record<string, string> } {
  const framing = parseSafetensorsFraming(size, read, fail);
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, raw] of Object.entries(framing.header)) {
    if (name !== '__metadata__') entries.set(name, checkSafetensorsEntry(name, raw, framing, fail, dtypes));
  }
  return { entries, metadata: framing.metadata };
}

/**
 * Decodes `out.length` little-endian `dtype` values from `raw` into `out`: floats widened or
 * rounded to its element type (F16/BF16 exactly), I32/I64 as numbers (I64 rounded past 2^53).
 */
export function decodeSafetensorsData<T extends Float32Array | Float64Array>(dtype: string, raw: Uint8Array, out: T): T {
  const n = out.length, width = SAFETENSORS_DTYPE_BYTES[dtype];
  if (!SAFETENSORS_DTYPES.includes(dtype) || raw.byteLength < n * width) {
    throw new Error(`diffvit.safetensors: cannot decode ${n} ${dtype} values from ${raw.byteLength} bytes`);
  }
  if (LITTLE_ENDIAN && ((dtype === 'F32' && out instanceof Float32Array) || (dtype === 'F64' && out instanceof Float64Array))) {
    new Uint8Array(out.buffer, out.byteOffset, n * width).set(raw.subarray(0, n * width)); // little-endian data: a plain copy
    return out;
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bf16ToF32(view.getUint16(2 * i, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
  }
  return out;
}
