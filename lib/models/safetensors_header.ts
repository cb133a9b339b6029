/**
 * The native-free half of safetensors reading: the header (names, dtypes, shapes, byte ranges)
 * read and checked without loading the data, then positioned reads of one tensor's bytes (or a
 * slice of its leading axis) straight from the file, at any offset (past 4 GiB too). Data loaders
 * use it on worker threads (no addon there); checkpoints and embedding files of any size are read
 * through it one tensor at a time (./safetensors.ts).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import { decodeSafetensorsData, parseSafetensorsHeader, SAFETENSORS_DTYPE_BYTES, type SafetensorsEntry, safetensorsFail } from './safetensors_format.js';

export { SAFETENSORS_DTYPE_BYTES, type SafetensorsEntry } from './safetensors_format.js';
export { bf16ToF32, f16ToF32 } from './float16.js';

export interface SafetensorsHeader {
  path: string;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

function fail(path: string, what: string): never {
  return safetensorsFail(path)(what);
}

/** An open safetensors file: its checked header and the descriptor every read of its data goes through. */
export interface OpenSafetensors extends SafetensorsHeader {
  /** One descriptor for all reads: a file renamed over `path` meanwhile (a checkpoint saved again) is not mixed in. */
  fd: number;
}

// Node refuses reads over 2^31 - 1 bytes (and Linux moves at most 2 GiB - 4 KiB per read): a
// tensor over 2 GiB takes several.
const MAX_READ = 1 << 30;

/** Fills `into` (default: a new buffer of `length` bytes) with the file's bytes [position, position + length). */
function readExactly(fd: number, path: string, length: number, position: number, into: Buffer = Buffer.allocUnsafe(length)): Buffer {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, into, got, Math.min(length - got, MAX_READ), position + got);
    if (n === 0) fail(path, `truncated: wanted ${length} bytes at offset ${position}, the file ends after ${position + got}`);
    got += n;
  }
  return into;
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
  const { fd, ...header } = openSafetensors(path);
  closeSync(fd);
  return header;
}

/**
 * Opens `path` and reads its checked header, keeping the descriptor for the data reads
 * (readSafetensorsBytes, readSafetensorsFloats); `dtypes` limits the dtypes accepted. Close it
 * with closeSafetensors.
 */
export function openSafetensors(path: string, dtypes?: readonly string[]): OpenSafetensors {
  const fd = open(path);
  try {
    const size = fstatSync(fd).size;
    const { entries, metadata } = parseSafetensorsHeader(size, (length, position) => readExactly(fd, path, length, position), safetensorsFail(path), dtypes);
    return { path, entries, metadata, fd };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

export function closeSafetensors(file: OpenSafetensors): void {
  closeSync(file.fd);
}

/** The header entry `name`, or an error listing the file's tensors. */
export function safetensorsEntry(header: SafetensorsHeader, name: string): SafetensorsEntry {
  return header.entries.get(name) ?? fail(header.path, `no tensor '${name}' (tensors: ${[...header.entries.keys()].join(', ') || 'none'})`);
}

/**
 * The raw little-endian bytes of tensor `name`, read into `into` (its first entry.end - entry.begin
 * bytes; default a new buffer) with positioned reads.
 */
export function readSafetensorsBytes(file: OpenSafetensors, name: string, into?: Uint8Array): Buffer {
  const { begin, end } = safetensorsEntry(file, name);
  if (into && into.byteLength < end - begin) throw new Error(`diffvit.readSafetensorsBytes: argument 'into' expected at least ${end - begin} bytes (tensor '${name}'), received ${into.byteLength}`);
  const target = into ? Buffer.from(into.buffer, into.byteOffset, end - begin) : undefined;
  return readExactly(file.fd, file.path, end - begin, begin, target);
}

/**
 * Float values of `entry` (F32 as is; F16, BF16, F64 converted), optionally only rows
 * [row, row + rows) of its leading axis. Reads just those bytes (through the descriptor of an
 * open file, else opening `header.path` for the read).
 */
export function readSafetensorsFloats(header: SafetensorsHeader | OpenSafetensors, name: string, row = 0, rows?: number): Float32Array {
  const path = header.path;
  const entry = safetensorsEntry(header, name);
  const { dtype, shape } = entry;
  if (dtype.startsWith('I')) fail(path, `tensor '${name}': expected a float dtype (F32, F16, BF16, F64), received ${dtype}`);
  const leading = shape.length ? shape[0] : 1;
  const count = rows ?? leading - row;
  if (!(Number.isInteger(row) && Number.isInteger(count) && row >= 0 && count >= 0 && row + count <= leading)) {
    fail(path, `tensor '${name}' of shape [${shape.join(', ')}]: rows [${row}, ${row + count}) are out of range`);
  }
  const perRow = shape.slice(1).reduce((a, b) => a * b, 1), bytes = SAFETENSORS_DTYPE_BYTES[dtype];
  const n = count * perRow;
  const position = entry.begin + row * perRow * bytes;
  const own = !('fd' in header), fd = own ? open(path) : header.fd;
  try {
    return decodeSafetensorsData(dtype, readExactly(fd, path, n * bytes, position), new Float32Array(n));
  } finally {
    if (own) closeSync(fd);
  }
}
