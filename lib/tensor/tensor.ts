/**
 * Tensor: a typed view (shape, strides, offset) over reference-counted native memory, with the
 * autograd fields of the tape. Math lives in lib/ops; ops are also attached as methods
 * (`x.add(y)`, `x.reshape([2, 3])`) by lib/ops/chain.ts.
 */
import type { Device } from '../backend/backend.js';
import type { NativeDType } from '../backend/kernels/core.js';
import { trackTensor } from './scope.js';
import { Storage } from './storage.js';

export type DType = NativeDType;
export type { Device } from '../backend/backend.js';
export type Shape = readonly number[];

/** Saved by an op for its backward: how to turn d(loss)/d(output) into d(loss)/d(inputs). */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Returns one gradient per input (null where the input needs none). */
  backward(dy: Tensor): (Tensor | null)[];
}

let liveTensors = 0;
let nextId = 1;

// Safety net: a tensor collected by the GC without dispose() releases its hold on the memory.
const finalizer = new FinalizationRegistry<Storage>((storage) => {
  liveTensors--;
  storage.release();
});

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function formatShape(shape: Shape): string {
  return '[' + shape.join(', ') + ']';
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
  readonly storage: Storage;
  /** Whether gradients flow to this tensor (leaves: set by the user; others: by the ops). */
  requiresGrad = false;
  /** d(loss)/d(this) after backward(), for leaves that require grad. */
  grad: Tensor | null = null;
  /** The op that made this tensor, while the graph is alive. */
  gradFn: GradNode | null = null;
  private disposedFlag = false;
  private finalizerRegistered = false;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    storage.retain();
    liveTensors++;
    // A tensor an open scope owns is disposed by that scope: it joins the GC safety net only if it
    // outlives every scope (returned to top level or kept). Registering every temporary would cost
    // a FinalizationRegistry cell per op output, which V8 reclaims slowly (RSS grows for thousands
    // of training steps).
    if (!trackTensor(this)) this.protectWithFinalizer();
  }

  /** Puts the tensor under the FinalizationRegistry safety net (once; no-op when disposed). */
  protectWithFinalizer(): void {
    if (this.finalizerRegistered || this.disposedFlag) return;
    this.finalizerRegistered = true;
    finalizer.register(this, this.storage, this);
  }

  /** A new tensor with fresh, uninitialised memory on `device` (canonical: resolveDevice). */
  static empty(shape: Shape, dtype: DType = 'float32', device: Device = 'cpu'): Tensor {
    for (const s of shape) {
      if (!Number.isInteger(s) || s < 0) {
        throw new Error(`diffvit.empty: argument 'shape' expected non-negative integers, received ${formatShape(shape)}`);
      }
    }
    return new Tensor(new Storage(device, dtype, shapeSize(shape)), shape);
  }

  get dtype(): DType {
    return this.storage.buffer.dtype;
  }
  /** The canonical device string: 'cpu', 'cuda:0', ... */
  get device(): Device {
    return this.storage.device;
  }
  get rank(): number {
    return this.shape.length;
  }
  get size(): number {
    return shapeSize(this.shape);
  }
  get isDisposed(): boolean {
    return this.disposedFlag;
  }
  /** The native buffer, checked alive: ops pass this to kernels. */
  get buffer() {
    this.assertAlive('tensor');
    return this.storage.buffer;
  }

  assertAlive(op: string): void {
    if (this.disposedFlag || !this.storage.alive) {
      throw new Error(`diffvit.${op}: tensor #${this.id} ${formatShape(this.shape)} has been disposed`);
    }
  }

  isContiguous(): boolean {
    let expected = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.strides[d] !== expected) return false;
      expected *= this.shape[d];
    }
    return true;
  }

  /** Another tensor object over the same memory (no autograd link). */
  view(shape: Shape, strides: readonly number[], offset: number): Tensor {
    this.assertAlive('view');
    return new Tensor(this.storage, shape, strides, offset);
  }

  /**
   * Internal (Module.to): swaps this tensor's memory for a contiguous copy of its values on
   * `device` (canonical: resolveDevice), in place — the same Tensor object, now contiguous from
   * offset 0 over new Storage; the old Storage loses this tensor's hold (freed if it was the last).
   * No autograd record: meant for leaves (parameters, gradients, optimiser state). The GC safety
   * net follows the tensor to its new memory. Returns whether anything moved.
   * @internal
   */
  relocate(device: string): boolean {
    this.assertAlive('to');
    if (this.storage.device === device) return false;
    if (this.gradFn) throw new Error(`diffvit.to: tensor #${this.id} ${formatShape(this.shape)} is the output of '${this.gradFn.name}'; only leaves move in place (use tensor.to(device) for a copy)`);
    const values = this.toArray();
    const storage = new Storage(device, this.dtype, this.size);
    try {
      storage.backend.write(storage.buffer, 0, values);
    } catch (e) {
      storage.backend.free(storage.buffer);
      throw e;
    }
    const old = this.storage;
    storage.retain();
    // The fields are readonly to users; this is the one place that rewrites them.
    const self = this as { storage: Storage; strides: readonly number[]; offset: number };
    self.storage = storage;
    self.strides = Object.freeze(contiguousStrides(this.shape));
    self.offset = 0;
    if (this.finalizerRegistered) {
      // The registry holds the Storage to release when the tensor is collected: now the new one.
      finalizer.unregister(this);
      finalizer.register(this, storage, this);
    }
    old.release();
    return true;
  }

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.gradFn = null;
    if (this.finalizerRegistered) finalizer.unregister(this);
    liveTensors--;
    this.storage.release();
  }

  /** The values in row-major order, copied to the host (waits for the device). */
  toArray(): Float32Array | Int32Array {
    this.assertAlive('toArray');
    const { backend } = this.storage;
    if (this.isContiguous()) return backend.read(this.storage.buffer, this.offset, this.size);
    const out = Tensor.empty(this.shape, this.dtype, this.device);
    try {
      copyInto(this, out);
      return backend.read(out.storage.buffer, 0, this.size);
    } finally {
      out.dispose();
    }
  }

  /** Float32 values (throws for int32 tensors). */
  data(): Float32Array {
    if (this.dtype !== 'float32') throw new Error(`diffvit.data: expected a float32 tensor, received ${this.dtype}`);
    return this.toArray() as Float32Array;
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) {
      throw new Error(`diffvit.item: expected a tensor with one element, received shape ${formatShape(this.shape)}`);
    }
    return this.toArray()[0];
  }

  toString(): string {
    const state = this.disposedFlag ? ', disposed' : '';
    const device = this.storage.device === 'cpu' ? '' : `, ${this.storage.device}`;
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}${device}${this.requiresGrad ? ', requiresGrad' : ''}${state})`;
  }
}

/** Copies `src` into `dst` (same shape and device, any strides) through their backend's copy. */
export function copyInto(src: Tensor, dst: Tensor): void {
  src.assertAlive('copy');
  dst.assertAlive('copy');
  if (src.device !== dst.device) {
    throw new Error(`diffvit.copy: argument 'dst' is on device '${dst.device}' but 'src' is on '${src.device}' (use tensor.to(device))`);
  }
  src.storage.backend.copy(src.buffer, src.offset, src.strides, dst.buffer, dst.offset, dst.strides, src.shape);
}

export function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

/** Live tensor objects (created and neither disposed nor collected). */
export function liveTensorCount(): number {
  return liveTensors;
}
