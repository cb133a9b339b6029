/**
 * Reference-counted native memory shared by a tensor and its views. The memory is freed when the
 * last tensor holding it is disposed, or — as a safety net for tensors nobody disposed — when the
 * garbage collector finalises them.
 */
import { native } from '../backend/native.js';
import type { NativeBuffer, NativeDType } from '../backend/kernels/core.js';

export class Storage {
  readonly buffer: NativeBuffer;
  private refs = 0;

  constructor(dtype: NativeDType, numel: number) {
    this.buffer = new native.NativeBuffer('cpu', dtype, numel);
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0) this.buffer.dispose();
  }

  get alive(): boolean {
    return !this.buffer.disposed;
  }
}
