/** The backends of this build, one registration line each; the CPU's is always there. */
import { markUnavailable, registerBackend } from './backend.js';
import { native } from './cpu/addon.js';
import { cpuBackend } from './cpu/backend.js';
import { cudaBackend } from './cuda/backend.js';

registerBackend(cpuBackend);
if (native.info().cudaAvailable) registerBackend(cudaBackend);
else markUnavailable('cuda', () => native.info().cudaStatus);

export { registerBackend, removeBackend, registeredBackends, resolveDevice, type Backend, type Device, type MemoryStats } from './backend.js';
export { runKernel } from './dispatch.js';
export { KERNEL_NAMES, type KernelTable, type KernelName, type KernelArgs, type KernelResult } from './kernel_names.js';
