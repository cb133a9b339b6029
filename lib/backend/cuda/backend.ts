/**
 * The CUDA backend: device memory from the addon's caching device allocator, and the same kernel
 * table as the CPU — each addon kernel runs on the device its buffers live on (native/cuda/*.cu).
 * Registered only when the addon has the CUDA backend and a device is usable; one device, 'cuda:0'.
 */
import type { Backend } from '../backend.js';
import { KERNEL_NAMES, type KernelTable } from '../kernel_names.js';
import type { NativeBuffer } from '../kernels/core.js';
import { native, type AddonCuda, type CudaDeviceInfo } from '../cpu/addon.js';

function cudaAddon(): AddonCuda {
  if (!native.cudaInfo) throw new Error('diffvit.cuda: this build of the addon has no CUDA backend');
  return native as unknown as AddonCuda;
}

const kernels: Partial<KernelTable> = {};
for (const name of KERNEL_NAMES) (kernels as Record<string, unknown>)[name] = native[name];

function checkIndex(device: string): void {
  if (device !== 'cuda:0') throw new Error(`diffvit.alloc: device '${device}' does not exist: this build uses one CUDA device, 'cuda:0'`);
}

export const cudaBackend: Backend = {
  name: 'cuda',
  indexed: true,
  alloc: (device, dtype, numel) => {
    checkIndex(device);
    return new native.NativeBuffer('cuda', dtype, numel);
  },
  free: (buffer) => buffer.dispose(),
  read: (buffer, offset, count) => (buffer as NativeBuffer).read(offset, count),
  write: (buffer, offset, data) => (buffer as NativeBuffer).write(offset, data),
  copy: (src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape) =>
    native.copyStrided({ src, srcOffset, srcStrides: [...srcStrides], dst, dstOffset, dstStrides: [...dstStrides], shape: [...shape] }),
  synchronize: () => cudaAddon().cudaSynchronize(),
  memoryStats: () => cudaAddon().cudaMemoryStats(),
  emptyCache: () => cudaAddon().cudaEmptyCache(),
  kernels,
};

/** Whether a CUDA device is usable in this process, and the addon's line on it (or why not). */
export function cudaStatus(): { available: boolean; status: string } {
  const info = native.info();
  return { available: info.cudaAvailable, status: info.cudaStatus };
}

/** The device as the addon sees it; a build without the CUDA backend gives its reason. */
export function cudaDeviceInfo(): CudaDeviceInfo {
  if (native.cudaInfo) return native.cudaInfo();
  return { usable: false, reason: native.info().cudaStatus, name: '', computeCapability: '', totalMemory: 0, multiprocessors: 0,
    runtimeVersion: 0, driverVersion: 0, emulated: false, architectures: '', gemm: '' };
}

export { cudaAddon };
