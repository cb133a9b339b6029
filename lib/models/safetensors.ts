/**
 * safetensors files: u64 little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then raw
 * little-endian bytes. Both directions hold one tensor at a time beside their result, so files of
 * any size (a training checkpoint is 16 bytes a parameter) read and write in bounded memory:
 * reads go through the checked header (./safetensors_header.ts, parser in ./safetensors_format.ts)
 * and positioned reads of each tensor's bytes; writes stream tensor by tensor into a temp file,
 * fsync it and rename it over the target (atomic). Errors name the file and the tensor.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';

import { tensor } from '../ops/creation.js';
import { contiguous } from '../ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { decodeSafetensorsData, SAFETENSORS_DTYPE_BYTES, safetensorsFail } from './safetensors_format.js';
import { closeSafetensors, type OpenSafetensors, openSafetensors, readSafetensorsBytes, safetensorsEntry } from './safetensors_header.js';

/** The dtypes readSafetensors reads (F64 is for readSafetensorsFloats and statistics files). */
const TENSOR_DTYPES: readonly string[] = ['F32', 'F16', 'BF16', 'I32', 'I64'];
const LITTLE_ENDIAN = endianness() === 'LE';

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/**
 * The values of tensor `name` of an open file, on the host: F32 and I32 as stored (read straight
 * into the result), F16/BF16 widened to float32, I64 narrowed to int32 where every value fits.
 */
export function readSafetensorsValues(file: OpenSafetensors, name: string): Float32Array | Int32Array {
  const { dtype, shape } = safetensorsEntry(file, name);
  if (!TENSOR_DTYPES.includes(dtype)) safetensorsFail(file.path)(`tensor '${name}': unsupported dtype ${dtype} (${TENSOR_DTYPES.join(', ')})`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (LITTLE_ENDIAN && (dtype === 'F32' || dtype === 'I32')) {
    const out = dtype === 'F32' ? new Float32Array(n) : new Int32Array(n);
    readSafetensorsBytes(file, name, new Uint8Array(out.buffer));
    return out;
  }
  const raw = readSafetensorsBytes(file, name);
  if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') return decodeSafetensorsData(dtype, raw, new Float32Array(n));
  const wide = decodeSafetensorsData(dtype, raw, new Float64Array(n)), values = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = wide[i];
    if (v > 2147483647 || v < -2147483648) safetensorsFail(file.path)(`tensor '${name}': value ${v} does not fit int32`);
    values[i] = v;
  }
  return values;
}

/** Tensor `name` of an open file, on the host (dtypes as readSafetensorsValues). */
export function readSafetensorsTensor(file: OpenSafetensors, name: string): Tensor {
  const values = readSafetensorsValues(file, name);
  return tensor(values, safetensorsEntry(file, name).shape, values instanceof Int32Array ? 'int32' : 'float32');
}

/** Reads every tensor (see readSafetensorsValues), one at a time. */
export function readSafetensors(path: string): SafetensorsFile {
  const file = openSafetensors(path, TENSOR_DTYPES);
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of file.entries.keys()) tensors.set(name, readSafetensorsTensor(file, name));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    closeSafetensors(file);
  }
  return { tensors, metadata: file.metadata };
}

/** One raw entry of a safetensors file: name, dtype ('F32', 'F64', 'I32', 'I64', ...), shape, bytes. */
export type RawEntry = [name: string, dtype: string, shape: readonly number[], bytes: Uint8Array];

/** An entry whose bytes are made when the writer reaches it (then written and dropped). */
export interface StreamedEntry {
  name: string;
  dtype: string;
  shape: readonly number[];
  bytes: () => Uint8Array;
}

// Node refuses writes over 2^31 - 1 bytes (and Linux moves at most 2 GiB - 4 KiB per write).
const MAX_WRITE = 1 << 30;

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, MAX_WRITE));
}

/**
 * Writes `entries` and string metadata to `path` atomically: the header first (sizes come from
 * dtypes and shapes), then each entry's bytes in turn into `path`.tmp-<pid>, fsync, rename.
 */
export function writeSafetensorsStreamed(path: string, entries: readonly StreamedEntry[], metadata: Record<string, string> = {}): void {
  const fail = safetensorsFail(path);
  const header: Record<string, unknown> = {};
  const sizes: number[] = [];
  const seen = new Set<string>(['__metadata__']);
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    if (seen.has(name)) fail(`cannot write: tensor name '${name}' is ${name === '__metadata__' ? 'reserved' : 'repeated'}`);
    const width = SAFETENSORS_DTYPE_BYTES[dtype];
    if (!width) fail(`cannot write tensor '${name}': unsupported dtype ${JSON.stringify(dtype)} (${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
    const size = shape.reduce((a, b) => a * b, 1) * width;
    seen.add(name);
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + size] };
    sizes.push(size);
    offset += size;
  }
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const code = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = ((): number => {
    try {
      return openSync(tmp, 'w');
    } catch (e) {
      return fail(`cannot write ${tmp} (${code(e)})`);
    }
  })();
  try {
    writeAll(fd, head);
    writeAll(fd, Buffer.from(json, 'utf8'));
    entries.forEach((entry, i) => {
      const bytes = entry.bytes();
      if (bytes.byteLength !== sizes[i]) fail(`cannot write tensor '${entry.name}': ${bytes.byteLength} bytes for ${entry.dtype} shape [${entry.shape.join(', ')}] (expected ${sizes[i]})`);
      writeAll(fd, bytes);
    });
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    if ((e as NodeJS.ErrnoException).code) fail(`cannot write ${tmp} (${code(e)})`);
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    fail(`cannot write the file (${code(e)})`);
  }
}

/** Writes raw entries and string metadata to `path` atomically (temp file + rename). */
export function writeSafetensorsRaw(path: string, entries: readonly RawEntry[], metadata: Record<string, string> = {}): void {
  writeSafetensorsStreamed(path, entries.map(([name, dtype, shape, bytes]) => ({ name, dtype, shape, bytes: () => bytes })), metadata);
}

/**
 * Writes tensors (float32 -> F32, int32 -> I32) and string metadata to `path` atomically. Each
 * tensor is read back to the host (from any device) when the writer reaches it, then dropped.
 */
export function writeSafetensors(path: string, tensors: Map<string, Tensor> | [string, Tensor][], metadata: Record<string, string> = {}): void {
  const entries = (tensors instanceof Map ? [...tensors] : tensors).map(([name, t]): StreamedEntry => ({
    name,
    dtype: t.dtype === 'int32' ? 'I32' : 'F32',
    shape: t.shape,
    bytes: () => {
      const c = contiguous(t);
      const values = c.toArray();
      if (c !== t) c.dispose();
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    },
  }));
  writeSafetensorsStreamed(path, entries, metadata);
}
