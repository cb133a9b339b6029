/**
 * Backends and devices. A tensor lives on a device ('cpu', 'cuda', 'cuda:1', ...); each device type
 * has one Backend that allocates, reads, writes and copies its memory and implements the kernel
 * table. Backends register themselves by name (lib/backend/index.ts); nothing above lib/ops knows
 * which one runs.
 */
import type { DeviceBuffer, NativeDType } from './kernels/core.js';
import type { KernelTable } from './kernel_names.js';

/** A device string: 'cpu', 'cuda' (= 'cuda:0'), 'cuda:N', or another registered backend's name. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}` | (string & {});

export interface MemoryStats {
  liveBuffers: number;
  liveBytes: number;
  peakBytes: number;
  totalAllocations: number;
  /** Freed blocks kept by the caching allocator for reuse. */
  cachedBytes: number;
}

export interface Backend {
  /** The device type it serves, e.g. 'cpu'. */
  readonly name: string;
  /** Whether its devices are numbered ('cuda:0', 'cuda:1'); 'cpu' is not. */
  readonly indexed: boolean;
  /** A new buffer of `numel` elements on `device` (a canonical device string of this backend). */
  alloc(device: string, dtype: NativeDType, numel: number): DeviceBuffer;
  /** Frees the buffer's memory now (disposing twice is harmless). */
  free(buffer: DeviceBuffer): void;
  /** Elements [offset, offset + count) copied to the host; waits for the device. */
  read(buffer: DeviceBuffer, offset: number, count: number): Float32Array | Int32Array;
  /** Copies host values into the buffer from `offset`. */
  write(buffer: DeviceBuffer, offset: number, data: Float32Array | Int32Array): void;
  /** Copies a strided view into another of the same shape, both on this backend's devices. */
  copy(src: DeviceBuffer, srcOffset: number, srcStrides: readonly number[], dst: DeviceBuffer, dstOffset: number,
    dstStrides: readonly number[], shape: readonly number[]): void;
  /** Waits until every kernel queued on the backend's devices has finished. */
  synchronize(): void;
  memoryStats(): MemoryStats;
  /** Returns cached free memory to the system. */
  emptyCache(): void;
  /** The kernels it implements; runKernel reports the missing ones by name. */
  readonly kernels: Partial<KernelTable>;
}

const backends = new Map<string, Backend>();
/** Why a device type has no backend in this build (e.g. the CUDA status from the addon). */
const unavailable = new Map<string, () => string>();

export function registerBackend(backend: Backend): void {
  if (backends.has(backend.name)) throw new Error(`diffvit.registerBackend: a backend named '${backend.name}' is already registered`);
  backends.set(backend.name, backend);
}

/** Removes a backend (tests register toy ones). */
export function removeBackend(name: string): void {
  if (name === 'cpu') throw new Error("diffvit.removeBackend: the 'cpu' backend cannot be removed");
  backends.delete(name);
}

/** Records why `name` devices cannot be used in this process; `device: name` then throws it. */
export function markUnavailable(name: string, reason: () => string): void {
  unavailable.set(name, reason);
}

export function registeredBackends(): string[] {
  return [...backends.keys()];
}

/**
 * The canonical form of a device string ('cuda' -> 'cuda:0') and its backend; throws, naming the
 * argument and the devices there are, for a malformed or unavailable device.
 */
export function resolveDevice(device: unknown, op = 'device', arg = 'device'): { device: string; backend: Backend } {
  const m = typeof device === 'string' ? /^([a-z][a-z0-9_]*)(?::(\d+))?$/.exec(device) : null;
  const known = () => [...backends.values()].map((b) => (b.indexed ? `'${b.name}', '${b.name}:N'` : `'${b.name}'`)).join(', ');
  if (!m) {
    throw new Error(`diffvit.${op}: argument '${arg}' expected a device string (${known()}), received ${typeof device === 'string' ? `'${device}'` : String(device)}`);
  }
  const backend = backends.get(m[1]);
  if (!backend) {
    const reason = unavailable.get(m[1]);
    if (reason) throw new Error(`diffvit.${op}: device '${device}' is not available: ${reason()}`);
    throw new Error(`diffvit.${op}: argument '${arg}' expected one of the devices of this build (${known()}), received '${device}'`);
  }
  if (!backend.indexed) {
    if (m[2] !== undefined && m[2] !== '0') throw new Error(`diffvit.${op}: argument '${arg}': there is one '${m[1]}' device, received '${device}'`);
    return { device: m[1], backend };
  }
  return { device: `${m[1]}:${m[2] ?? 0}`, backend };
}

/** The backend of a canonical device string (the fast path of the kernel dispatch). */
export function backendOf(device: string): Backend {
  const colon = device.indexOf(':');
  const backend = backends.get(colon < 0 ? device : device.slice(0, colon));
  if (!backend) return resolveDevice(device).backend;
  return backend;
}
