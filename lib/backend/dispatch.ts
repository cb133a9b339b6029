/**
 * The one dispatch point of the kernel table: finds the device of the call's buffers, checks they
 * all share it, and runs the kernel of that device's backend. Dtypes, extents and overlaps are
 * checked by the backend's binding (for the CPU, native/addon/args.h), once per kernel. It is also
 * where the built-in profiler (lib/profiler) times every kernel call while it records.
 */
import { profilerState, recordKernel } from '../profiler/recorder.js';
import { backendOf } from './backend.js';
import type { KernelArgs, KernelName, KernelResult } from './kernel_names.js';

function isBuffer(v: unknown): v is { device: string } {
  return typeof v === 'object' && v !== null && typeof (v as { device?: unknown }).device === 'string';
}

export function runKernel<K extends KernelName>(name: K, args: KernelArgs<K>): KernelResult<K> {
  let device: string | undefined, first = '';
  const values = args as unknown as Record<string, unknown>;
  for (const key in values) {
    let v = values[key];
    // A list of buffers (sumSquares' xs): every element must be on the call's device too.
    if (Array.isArray(v) && v.length && isBuffer(v[0])) {
      for (let i = 1; i < v.length; i++) {
        if (!isBuffer(v[i]) || v[i].device !== v[0].device) {
          throw new Error(`diffvit.${name}: argument '${key}[${i}]' is not on device '${v[0].device}' like '${key}[0]'`);
        }
      }
      v = v[0];
    }
    if (!isBuffer(v)) continue;
    if (device === undefined) {
      device = v.device;
      first = key;
    } else if (v.device !== device) {
      throw new Error(`diffvit.${name}: argument '${key}' is on device '${v.device}' but argument '${first}' is on ` +
        `'${device}': the tensors of one op must share a device (move one with tensor.to(device))`);
    }
  }
  const backend = backendOf(device ?? 'cpu');
  const kernel = backend.kernels[name] as ((a: KernelArgs<K>) => KernelResult<K>) | undefined;
  if (!kernel) throw new Error(`diffvit.${name}: the '${backend.name}' backend has no '${name}' kernel`);
  // The profiler's whole cost when it is off: this one check.
  if (profilerState.on) return recordKernel(name, args, kernel);
  return kernel(args);
}
