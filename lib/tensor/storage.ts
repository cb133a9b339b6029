/**
 * Reference-counted device memory shared by a tensor and its views, allocated by the device's
 * backend. The memory is freed when the last tensor holding it is disposed, or — as a safety net
 * for tensors nobody disposed — when the garbage collector finalises them.
 */
import '../backend/index.js';
import { type Backend, backendOf } from '../backend/backend.js';
import type { DeviceBuffer, NativeDType } from '../backend/kernels/core.js';

export class Storage {
  readonly buffer: DeviceBuffer;
  readonly backend: Backend;
  private refs = 0;

  /** `device` is canonical (resolveDevice). */
  constructor(readonly device: string, dtype: NativeDType, numel: number) {
    this.backend = backendOf(device);
    this.buffer = this.backend.alloc(device, dtype, numel);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0) this.backend.free(this.buffer);
  }

  get alive(): boolean {
    return !this.buffer.disposed;
  }
}
