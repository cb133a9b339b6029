/**
 * safetensors files: u64 little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then raw
 * little-endian bytes. Writes are atomic (temp file + rename); reads check everything and name the
 * file and tensor in every error.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';

import { tensor } from '../ops/creation.js';
import { contiguous } from '../ops/shape.js';
import { formatShape, Tensor } from '../tensor/tensor.js';

const BYTES: Record<string, number> = { F32: 4, I32: 4, I64: 8, F16: 2, BF16: 2 };
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function fail(path: string, what: string): never {
  throw new Error(`diffvit.safetensors: ${path}: ${what}`);
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Reads every tensor (F32, I32 as is; F16/BF16 widened to float32; I64 narrowed to int32 when it fits). */
export function readSafetensors(path: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail(path, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.length < 8) fail(path, `truncated: ${bytes.length} bytes, a safetensors file has at least 8`);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  if (headerLen > MAX_HEADER || 8 + headerLen > bytes.length) {
    fail(path, `header length ${headerLen} does not fit the ${bytes.length}-byte file (truncated or not safetensors)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    fail(path, `the header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail(path, 'the header is not a JSON object');
  const data = bytes.subarray(8 + headerLen);
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, entry] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const { dtype, shape, data_offsets: off } = (entry ?? {}) as { dtype?: string; shape?: number[]; data_offsets?: number[] };
      if (!dtype || !(dtype in BYTES)) fail(path, `tensor '${name}': unsupported dtype ${JSON.stringify(dtype)} (F32, F16, BF16, I32, I64)`);
      if (!Array.isArray(shape) || !shape.every((s) => Number.isInteger(s) && s >= 0)) fail(path, `tensor '${name}': bad shape ${JSON.stringify(shape)}`);
      if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[1] < off[0]) {
        fail(path, `tensor '${name}': bad data_offsets ${JSON.stringify(off)}`);
      }
      const n = shape.reduce((a, b) => a * b, 1);
      if (off[1] - off[0] !== n * BYTES[dtype]) fail(path, `tensor '${name}': ${off[1] - off[0]} bytes for ${dtype} shape ${formatShape(shape)} (expected ${n * BYTES[dtype]})`);
      if (off[1] > data.length) fail(path, `tensor '${name}': data ends at byte ${off[1]} but the file has ${data.length} data bytes (truncated)`);
      const raw = data.subarray(off[0], off[1]);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      let t: Tensor;
      if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') {
        const values = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          if (dtype === 'F32') values[i] = view.getFloat32(4 * i, true);
          else if (dtype === 'F16') values[i] = f16ToF32(view.getUint16(2 * i, true));
          else values[i] = new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0];
        }
        t = tensor(values, shape);
      } else {
        const values = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          const v = dtype === 'I32' ? view.getInt32(4 * i, true) : Number(view.getBigInt64(8 * i, true));
          if (v > 2147483647 || v < -2147483648) fail(path, `tensor '${name}': value ${v} does not fit int32`);
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
