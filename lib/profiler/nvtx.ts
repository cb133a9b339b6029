/**
 * NVTX ranges through the native addon (lib/backend/cpu/runtime.ts; native/core/trace.h), so that
 * nsys shows the library's phases (train_step › forward, ...) around the addon's per-kernel
 * ranges. They are pushed only when the build has NVTX and a tool was attached when the addon
 * loaded (fixed for the process); otherwise they are no-ops that never reach the addon.
 */
import { nvtxRangePop, nvtxRangePush, nvtxStatus } from '../backend/cpu/runtime.js';

export { nvtxStatus, type NvtxStatus } from '../backend/cpu/runtime.js';

const enabled = nvtxStatus().attached;

/** Opens an NVTX range on the calling thread (a no-op unless a tool is attached). */
export const nvtxPush: (name: string) => void = enabled ? nvtxRangePush : () => {};
/** Closes the calling thread's innermost NVTX range (a no-op unless a tool is attached). */
export const nvtxPop: () => void = enabled ? nvtxRangePop : () => {};
