/**
 * The native-free half of safetensors reading: the header (names, dtypes, shapes, byte ranges)
 * read and checked without loading the data, and float reads of one tensor or a slice of its
 * leading axis straight from the file. Data loaders use it on worker threads (no addon there) and
 * for files too large to read whole (one (N, L, C) embedding tensor for a whole dataset).
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
    const { entries, metadata } = parseSafetensorsHeader(size, (length, position) => readExactly(fd, path, length, position), safetensorsFail(path));
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
  return decodeSafetensorsData(dtype, raw, new Float32Array(n));
}
