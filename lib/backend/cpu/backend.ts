/** The CPU backend: host memory from the addon's caching allocator, the addon's kernels. */
import type { Backend } from '../backend.js';
import { KERNEL_NAMES, type KernelTable } from '../kernel_names.js';
import type { NativeBuffer } from '../kernels/core.js';
import { native } from './addon.js';

const kernels: Partial<KernelTable> = {};
for (const name of KERNEL_NAMES) (kernels as Record<string, unknown>)[name] = native[name];

export const cpuBackend: Backend = {
  name: 'cpu',
  indexed: false,
  alloc: (_device, dtype, numel) => new native.NativeBuffer('cpu', dtype, numel),
  free: (buffer) => buffer.dispose(),
  read: (buffer, offset, count) => (buffer as NativeBuffer).read(offset, count),
  write: (buffer, offset, data) => (buffer as NativeBuffer).write(offset, data),
  copy: (src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape) =>
    native.copyStrided({ src, srcOffset, srcStrides: [...srcStrides], dst, dstOffset, dstStrides: [...dstStrides], shape: [...shape] }),
  // CPU kernels run to completion on the calling thread's pool before they return.
  synchronize: () => {},
  memoryStats: () => native.memoryStats(),
  emptyCache: () => native.emptyCache(),
  kernels,
};
