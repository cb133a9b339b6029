/** Ops as Tensor methods: `x.add(y).reshape([2, -1]).sum()`. */
import { Tensor } from '../tensor/tensor.js';
import { backward, type BackwardOptions } from './backward.js';
import { to } from './device.js';
import * as ew from './elementwise.js';
import * as red from './reduce.js';
import * as sh from './shape.js';

declare module '../tensor/tensor.js' {
  interface Tensor {
    add(b: Tensor | number): Tensor;
    sub(b: Tensor | number): Tensor;
    mul(b: Tensor | number): Tensor;
    div(b: Tensor | number): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    square(): Tensor;
    pow(p: number): Tensor;
    sum(axes?: number | readonly number[], keepDims?: boolean): Tensor;
    mean(axes?: number | readonly number[], keepDims?: boolean): Tensor;
    reshape(shape: readonly number[]): Tensor;
    permute(dims: readonly number[]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    slice(dim: number, start: number, end: number): Tensor;
    unsqueeze(dim: number): Tensor;
    squeeze(dim?: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    contiguous(): Tensor;
    clone(): Tensor;
    detach(): Tensor;
    backward(options?: BackwardOptions): void;
    /** This tensor on `device` (itself when already there). */
    to(device: string): Tensor;
  }
}

const methods: Partial<Record<keyof Tensor, (this: Tensor, ...args: never[]) => unknown>> = {
  add(this: Tensor, b: Tensor | number) { return ew.add(this, b); },
  sub(this: Tensor, b: Tensor | number) { return ew.sub(this, b); },
  mul(this: Tensor, b: Tensor | number) { return ew.mul(this, b); },
  div(this: Tensor, b: Tensor | number) { return ew.div(this, b); },
  neg(this: Tensor) { return ew.neg(this); },
  exp(this: Tensor) { return ew.exp(this); },
  log(this: Tensor) { return ew.log(this); },
  sqrt(this: Tensor) { return ew.sqrt(this); },
  square(this: Tensor) { return ew.square(this); },
  pow(this: Tensor, p: number) { return ew.pow(this, p); },
  sum(this: Tensor, axes?: number | readonly number[], keepDims?: boolean) { return red.sum(this, axes, keepDims); },
  mean(this: Tensor, axes?: number | readonly number[], keepDims?: boolean) { return red.mean(this, axes, keepDims); },
  reshape(this: Tensor, shape: readonly number[]) { return sh.reshape(this, shape); },
  permute(this: Tensor, dims: readonly number[]) { return sh.permute(this, dims); },
  transpose(this: Tensor, a: number, b: number) { return sh.transpose(this, a, b); },
  slice(this: Tensor, dim: number, start: number, end: number) { return sh.slice(this, dim, start, end); },
  unsqueeze(this: Tensor, dim: number) { return sh.unsqueeze(this, dim); },
  squeeze(this: Tensor, dim?: number) { return sh.squeeze(this, dim); },
  expand(this: Tensor, shape: readonly number[]) { return sh.expand(this, shape); },
  flatten(this: Tensor, s?: number, e?: number) { return sh.flatten(this, s, e); },
  contiguous(this: Tensor) { return sh.contiguous(this); },
  clone(this: Tensor) { return sh.clone(this); },
  detach(this: Tensor) { return sh.detach(this); },
  backward(this: Tensor, options?: BackwardOptions) { backward(this, options); },
  to(this: Tensor, device: string) { return to(this, device); },
};
Object.assign(Tensor.prototype, methods);
