/**
 * NVTX ranges through the native addon (lib/backend/cpu/runtime.ts: nvtxRangePush, nvtxRangePop,
 * nvtxStatus; native/core/trace.h), so that nsys shows the library's phases (train_step ›
 * forward, ...) around the addon's per-kernel ranges. The ranges are pushed only when the build
 * has NVTX and a tool was attached when the addon loaded (fixed for the process); otherwise, and
 * with an addon built before the bindings existed (an old build through DIFFVIT_ADDON), they are
 * no-ops that never reach the addon.
 */
import { native } from '../backend/cpu/addon.js';
import { nvtxRangePop, nvtxRangePush, nvtxStatus as addonNvtxStatus } from '../backend/cpu/runtime.js';

export interface NvtxStatus {
  /** The loaded addon has the range bindings (builds from before them do not). */
  bindings: boolean;
  /** NVTX is compiled into the addon. */
  nvtx: boolean;
  /** A tool (Nsight Systems, or diffvit's NVTX recorder) takes the ranges: they are pushed. */
  attached: boolean;
  /** diffvit's NVTX recorder tool next to the addon (see lib/backend/cpu/runtime.ts), or null. */
  recorder: string | null;
}

// The addon file may predate the bindings even where addon.ts declares them.
const bindings = typeof (native as Partial<typeof native>).profilerRangePush === 'function' &&
  typeof (native as Partial<typeof native>).profilerInfo === 'function';

export function nvtxStatus(): NvtxStatus {
  if (!bindings) return { bindings: false, nvtx: false, attached: false, recorder: null };
  const s = addonNvtxStatus();
  return { bindings: true, nvtx: Boolean(s.nvtx), attached: Boolean(s.attached), recorder: s.recorder };
}

const enabled = nvtxStatus().attached;

/** Opens an NVTX range on the calling thread (a no-op unless a tool is attached). */
export const nvtxPush: (name: string) => void = enabled ? nvtxRangePush : () => {};
/** Closes the calling thread's innermost NVTX range (a no-op unless a tool is attached). */
export const nvtxPop: () => void = enabled ? nvtxRangePop : () => {};
