/**
 * A backend made in a test: the CPU's memory and kernels behind another device name. "Adding a
 * backend" is this object plus one registerBackend() call (test/backend.test.ts registers 'toy' with
 * a few kernels; test/device_model.test.ts a 'mirror' with all of them, counting its host transfers).
 */
import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';
import type { DeviceBuffer, NativeBuffer, NativeDType } from '../lib/backend/kernels/core.js';
import type { KernelName, KernelTable } from '../lib/backend/kernel_names.js';

interface ToyBuffer extends DeviceBuffer {
  readonly inner: NativeBuffer;
}

/** Host reads and writes of a toy backend's memory (element counts), when the caller wants them counted. */
export interface Transfers {
  reads: number[];
  writes: number[];
}

export function makeToyBackend(name: string, kernelNames: readonly KernelName[], transfers?: Transfers): dv.Backend {
  let live = 0, liveBytes = 0, peakBytes = 0, total = 0;
  const inner = (b: DeviceBuffer): NativeBuffer => {
    if (b.device !== name) throw new Error(`${name}: a buffer of '${b.device}' reached the '${name}' backend`);
    return (b as ToyBuffer).inner;
  };
  // Kernel arguments with every toy buffer (or list of them) replaced by the CPU buffer inside it.
  const unwrap = (args: object) => Object.fromEntries(Object.entries(args).map(([k, v]) => [k,
    Array.isArray(v) ? v.map((e) => (e?.device === name ? inner(e) : e)) : v?.device === name ? inner(v) : v]));
  const kernels: Partial<KernelTable> = {};
  for (const k of kernelNames) {
    const kernel = native[k] as ((a: object) => unknown) | undefined;
    if (kernel) (kernels as Record<string, unknown>)[k] = (args: object) => kernel(unwrap(args));
  }
  return {
    name,
    indexed: false,
    alloc(_device: string, dtype: NativeDType, numel: number): ToyBuffer {
      const buffer = new native.NativeBuffer('cpu', dtype, numel);
      live++;
      total++;
      liveBytes += 4 * numel;
      peakBytes = Math.max(peakBytes, liveBytes);
      return {
        device: name, dtype, numel, inner: buffer,
        get disposed() { return buffer.disposed; },
        dispose() {
          if (buffer.disposed) return;
          buffer.dispose();
          live--;
          liveBytes -= 4 * numel;
        },
      };
    },
    free: (b) => b.dispose(),
    read: (b, offset, count) => {
      transfers?.reads.push(count);
      return inner(b).read(offset, count);
    },
    write: (b, offset, data) => {
      transfers?.writes.push(data.length);
      inner(b).write(offset, data);
    },
    copy: (src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape) => native.copyStrided({
      src: inner(src), srcOffset, srcStrides: [...srcStrides], dst: inner(dst), dstOffset, dstStrides: [...dstStrides],
      shape: [...shape],
    }),
    synchronize: () => {},
    memoryStats: () => ({ liveBuffers: live, liveBytes, peakBytes, totalAllocations: total, cachedBytes: 0 }),
    emptyCache: () => {},
    kernels,
  };
}
