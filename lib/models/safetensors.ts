/**
 * safetensors files: u64 little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then raw
 * little-endian bytes. Writes are atomic (temp file + rename); reads check everything and name the
 * file and tensor in every error (the parser, shared with ./safetensors_header.ts and
 * lib/eval/fid.ts, is ./safetensors_format.ts).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';

import { tensor } from '../ops/creation.js';
import { contiguous } from '../ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { decodeSafetensorsData, parseSafetensorsHeader, type SafetensorsFail, safetensorsFail } from './safetensors_format.js';

/** The dtypes readSafetensors reads (F64 is for readSafetensorsFloats and statistics files). */
const TENSOR_DTYPES: readonly string[] = ['F32', 'F16', 'BF16', 'I32', 'I64'];

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Reads every tensor (F32, I32 as is; F16/BF16 widened to float32; I64 narrowed to int32 when it fits). */
export function readSafetensors(path: string): SafetensorsFile {
  const fail: SafetensorsFail = safetensorsFail(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail(`cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const { entries, metadata } = parseSafetensorsHeader(bytes.length, (length, position) => bytes.subarray(position, position + length), fail, TENSOR_DTYPES);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, { dtype, shape, begin, end }] of entries) {
      const raw = bytes.subarray(begin, end);
      const n = shape.reduce((a, b) => a * b, 1);
      let t: Tensor;
      if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') {
        t = tensor(decodeSafetensorsData(dtype, raw, new Float32Array(n)), shape);
      } else {
        const wide = decodeSafetensorsData(dtype, raw, new Float64Array(n)), values = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          const v = wide[i];
          if (v > 2147483647 || v < -2147483648) fail(`tensor '${name}': value ${v} does not fit int32`);
          values[i] = v;
        }
        t = tensor(values, shape, 'int32');
      }
      tensors.set(name, t);
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata };
}

/** One raw entry of a safetensors file: name, dtype ('F32', 'F64', 'I32', 'I64', ...), shape, bytes. */
export type RawEntry = [name: string, dtype: string, shape: readonly number[], bytes: Uint8Array];

/** Writes raw entries and string metadata to `path` atomically (temp file + rename). */
export function writeSafetensorsRaw(path: string, entries: readonly RawEntry[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, dtype, shape, bytes] of entries) {
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, head);
    writeSync(fd, Buffer.from(json, 'utf8'));
    for (const [, , , bytes] of entries) writeSync(fd, bytes);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Writes tensors (float32 -> F32, int32 -> I32) and string metadata to `path` atomically. */
export function writeSafetensors(path: string, tensors: Map<string, Tensor> | [string, Tensor][], metadata: Record<string, string> = {}): void {
  const entries: RawEntry[] = (tensors instanceof Map ? [...tensors] : tensors).map(([name, t]) => {
    const c = contiguous(t);
    const values = c.toArray();
    if (c !== t) c.dispose();
    return [name, t.dtype === 'int32' ? 'I32' : 'F32', t.shape, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)];
  });
  writeSafetensorsRaw(path, entries, metadata);
}
