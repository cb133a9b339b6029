/** Tensor constructors: from data, constants, seeded random draws. */
import { native } from '../backend/native.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { formatShape, type DType, type Shape, shapeSize, Tensor } from '../tensor/tensor.js';
import { argError, checkNumber, checkShape, describe } from './util.js';

type NestedArray = number | NestedArray[];

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
export function tensor(data: NestedArray | Float32Array | Int32Array | number[], shape?: Shape, dtype?: DType): Tensor {
  const type: DType = dtype ?? (data instanceof Int32Array ? 'int32' : 'float32');
  let flat: number[] | Float32Array | Int32Array;
  if (data instanceof Float32Array || data instanceof Int32Array) flat = data;
  else if (typeof data === 'number') flat = [data];
  else flat = (data as unknown[]).flat(Infinity as 1) as number[];
  const finalShape = shape ? checkShape('tensor', 'shape', [...shape]) : typeof data === 'number' ? [] : data instanceof Float32Array || data instanceof Int32Array ? [data.length] : inferShape(data);
  if (shapeSize(finalShape) !== flat.length) {
    throw argError('tensor', 'data', `${shapeSize(finalShape)} values for shape ${formatShape(finalShape)}`, `${flat.length} values`);
  }
  const t = Tensor.empty(finalShape, type);
  if (type === 'float32') {
    t.buffer.write(0, flat instanceof Float32Array ? flat : Float32Array.from(flat));
  } else {
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isInteger(flat[i])) throw argError('tensor', 'data', 'integers for dtype int32', describe(flat[i]));
    }
    t.buffer.write(0, flat instanceof Int32Array ? flat : Int32Array.from(flat));
  }
  return t;
}

export function full(shape: Shape, value: number, dtype: DType = 'float32'): Tensor {
  const t = Tensor.empty(checkShape('full', 'shape', [...shape]), dtype);
  native.fill(t.buffer, 0, t.size, value);
  return t;
}

export function zeros(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 0, dtype);
}

export function ones(shape: Shape, dtype: DType = 'float32'): Tensor {
  return full(shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, t.dtype);
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, t.dtype);
}

/** 0, 1, ..., n-1. */
export function arange(n: number, dtype: DType = 'float32'): Tensor {
  const values = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = i;
  return tensor(values, [n], dtype);
}

export interface RandomOptions {
  generator?: Generator;
}

/** Normal(mean, std) draws from the Philox stream of `generator` (default: the global one). */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const t = Tensor.empty(checkShape('randn', 'shape', [...shape]));
  const g = options.generator ?? defaultGenerator;
  const mean = checkNumber('randn', 'mean', options.mean ?? 0), std = checkNumber('randn', 'std', options.std ?? 1);
  native.randomFill(t.buffer, 0, t.size, 'normal', g.seed, g.take(t.size), mean, std);
  return t;
}

/** Uniform(low, high] draws from the Philox stream of `generator`. */
export function rand(shape: Shape, options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const t = Tensor.empty(checkShape('rand', 'shape', [...shape]));
  const g = options.generator ?? defaultGenerator;
  const low = checkNumber('rand', 'low', options.low ?? 0), high = checkNumber('rand', 'high', options.high ?? 1);
  native.randomFill(t.buffer, 0, t.size, 'uniform', g.seed, g.take(t.size), low, high);
  return t;
}
