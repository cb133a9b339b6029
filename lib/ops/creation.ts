/**
 * Tensor constructors: from data, constants, seeded random draws, on any device.
 *
 *   zeros([2, 3], { device: 'cuda' })   ones([4], 'int32')   randn([8], { generator, device })
 */
import { resolveDevice, type Device } from '../backend/backend.js';
import { runKernel } from '../backend/dispatch.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape, type DType, type Shape, shapeSize, Tensor } from '../tensor/tensor.js';
import { argError, checkNumber, checkShape, describe, fillRandom } from './util.js';

type NestedArray = number | NestedArray[];

export interface CreationOptions {
  dtype?: DType;
  /** 'cpu' (default), 'cuda', 'cuda:N', ... */
  device?: Device;
}

/** The dtype and canonical device of a creation op's `dtype | { dtype, device }` argument. */
function placement(op: string, options: DType | CreationOptions | undefined, fallback: DType): { dtype: DType; device: string } {
  const o = typeof options === 'string' || options === undefined ? { dtype: options } : options;
  const dtype = o.dtype ?? fallback;
  if (dtype !== 'float32' && dtype !== 'int32') throw argError(op, 'dtype', "'float32' or 'int32'", describe(dtype));
  return { dtype, device: o.device === undefined ? 'cpu' : resolveDevice(o.device, op).device };
}

/** Writes host values into a new tensor on `device`. */
function fromHost(values: Float32Array | Int32Array, shape: Shape, dtype: DType, device: string): Tensor {
  const t = Tensor.empty(shape, dtype, device);
  t.storage.backend.write(t.buffer, 0, values);
  return t;
}

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let d: NestedArray = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    d = d[0];
  }
  return shape;
}

/**
 * A tensor from values: `tensor([[1, 2], [3, 4]])`, `tensor(float32Array, [2, 2])`,
 * `tensor([0, 3], [2], 'int32')`.
 */
export function tensor(data: NestedArray | Float32Array | Int32Array | number[], shape?: Shape,
  options?: DType | CreationOptions): Tensor {
  const { dtype: type, device } = placement('tensor', options, data instanceof Int32Array ? 'int32' : 'float32');
  let flat: number[] | Float32Array | Int32Array;
  if (data instanceof Float32Array || data instanceof Int32Array) flat = data;
  else if (typeof data === 'number') flat = [data];
  else flat = (data as unknown[]).flat(Infinity as 1) as number[];
  const finalShape = shape ? checkShape('tensor', 'shape', [...shape]) : typeof data === 'number' ? [] : data instanceof Float32Array || data instanceof Int32Array ? [data.length] : inferShape(data);
  if (shapeSize(finalShape) !== flat.length) {
    throw argError('tensor', 'data', `${shapeSize(finalShape)} values for shape ${formatShape(finalShape)}`, `${flat.length} values`);
  }
  if (type === 'float32') return fromHost(flat instanceof Float32Array ? flat : Float32Array.from(flat), finalShape, type, device);
  for (let i = 0; i < flat.length; i++) {
    if (!Number.isInteger(flat[i])) throw argError('tensor', 'data', 'integers for dtype int32', describe(flat[i]));
  }
  return fromHost(flat instanceof Int32Array ? flat : Int32Array.from(flat), finalShape, type, device);
}

export function full(shape: Shape, value: number, options?: DType | CreationOptions): Tensor {
  const { dtype, device } = placement('full', options, 'float32');
  const t = Tensor.empty(checkShape('full', 'shape', [...shape]), dtype, device);
  runKernel('fill', { out: t.buffer, offset: 0, n: t.size, value });
  return t;
}

export function zeros(shape: Shape, options?: DType | CreationOptions): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: Shape, options?: DType | CreationOptions): Tensor {
  return full(shape, 1, options);
}

/** Zeros of t's shape, dtype and device. */
export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device });
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device });
}

/** 0, 1, ..., n-1. */
export function arange(n: number, options?: DType | CreationOptions): Tensor {
  const { dtype, device } = placement('arange', options, 'float32');
  const values = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = i;
  return fromHost(values, [n], dtype, device);
}

export interface RandomOptions {
  generator?: Generator;
  device?: Device;
}

/** Normal(mean, std) draws from the Philox stream of `generator` (default: the global one). */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const { device } = placement('randn', { device: options.device }, 'float32');
  const t = Tensor.empty(checkShape('randn', 'shape', [...shape]), 'float32', device);
  const g = options.generator ?? defaultGenerator;
  const mean = checkNumber('randn', 'mean', options.mean ?? 0), std = checkNumber('randn', 'std', options.std ?? 1);
  return fillRandom(t, 'normal', mean, std, g);
}

/** Uniform(low, high] draws from the Philox stream of `generator`. */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const { device } = placement('rand', { device: options.device }, 'float32');
  const t = Tensor.empty(checkShape('rand', 'shape', [...shape]), 'float32', device);
  const g = options.generator ?? defaultGenerator;
  const low = checkNumber('rand', 'low', options.low ?? 0), high = checkNumber('rand', 'high', options.high ?? 1);
  return fillRandom(t, 'uniform', low, high, g);
}
