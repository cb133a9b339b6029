/**
 * Elementwise maps: broadcasting add/sub/mul/div, scalar forms, and unary functions
 * (exp, log, sqrt, rsqrt, silu, gelu (tanh form), ...), each with its gradient.
 *
 *   const y = add(mul(x, w), 1);   // x*w + 1, broadcasting w against x
 */
import type { BinaryOpName, UnaryOpName } from '../backend/kernels/core.js';
import { runKernel } from '../backend/dispatch.js';
import { record } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { sumToShape } from './sum_to_shape.js';
import { broadcastShapes, broadcastStrides, checkNumber, checkTensor, dense, release } from './util.js';

function binaryKernel(op: BinaryOpName, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(shape, 'float32', a.device);
  runKernel('binary', { op, a: a.buffer, aOffset: a.offset, aStrides: broadcastStrides(a, shape), b: b.buffer,
    bOffset: b.offset, bStrides: broadcastStrides(b, shape), out: out.buffer, outOffset: 0, shape });
  return out;
}

function unaryKernel(op: UnaryOpName, x: Tensor, alpha = 0, beta = 0): Tensor {
  const src = dense(x);
  const out = Tensor.empty(x.shape, 'float32', x.device);
  runKernel('unary', { op, x: src.buffer, xOffset: src.offset, out: out.buffer, outOffset: 0, n: x.size, alpha, beta });
  release(src, x);
  return out;
}

/** dx = dy * f'(x) through the native gradient kernel. */
function unaryGradKernel(op: UnaryOpName, x: Tensor, dy: Tensor, alpha = 0, beta = 0): Tensor {
  const xs = dense(x), gs = dense(dy);
  const dx = Tensor.empty(x.shape, 'float32', x.device);
  runKernel('unaryGrad', { op, x: xs.buffer, xOffset: xs.offset, dy: gs.buffer, dyOffset: gs.offset, dx: dx.buffer,
    dxOffset: 0, n: x.size, alpha, beta });
  release(xs, x);
  release(gs, dy);
  return dx;
}

function unaryOp(op: UnaryOpName, name: string, x: Tensor, alpha = 0, beta = 0): Tensor {
  checkTensor(name, 'x', x);
  const out = unaryKernel(op, x, alpha, beta);
  return record(name, out, [x], (dy) => [unaryGradKernel(op, x, dy, alpha, beta)]);
}

/** alpha * x + beta */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  return unaryOp('affine', 'affine', x, checkNumber('affine', 'alpha', alpha), checkNumber('affine', 'beta', beta));
}
export function mulScalar(x: Tensor, s: number): Tensor {
  return unaryOp('affine', 'mulScalar', x, checkNumber('mulScalar', 's', s), 0);
}
export function addScalar(x: Tensor, s: number): Tensor {
  return unaryOp('affine', 'addScalar', x, 1, checkNumber('addScalar', 's', s));
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  checkTensor('add', 'a', a);
  if (typeof b === 'number') return addScalar(a, b);
  checkTensor('add', 'b', b);
  const out = binaryKernel('add', a, b);
  return record('add', out, [a, b], (dy) => [sumToShape(dy, a.shape), sumToShape(dy, b.shape)]);
}

export function sub(a: Tensor, b: Tensor | number): Tensor {
  checkTensor('sub', 'a', a);
  if (typeof b === 'number') return addScalar(a, -b);
  checkTensor('sub', 'b', b);
  const out = binaryKernel('sub', a, b);
  return record('sub', out, [a, b], (dy) => {
    const db = sumToShape(dy, b.shape);
    const negDb = unaryKernel('neg', db);
    db.dispose();
    return [sumToShape(dy, a.shape), negDb];
  });
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  checkTensor('mul', 'a', a);
  if (typeof b === 'number') return mulScalar(a, b);
  checkTensor('mul', 'b', b);
  const out = binaryKernel('mul', a, b);
  return record('mul', out, [a, b], (dy) => {
    const grads: (Tensor | null)[] = [null, null];
    if (a.requiresGrad) {
      const full = binaryKernel('mul', dy, b);
      grads[0] = sumToShape(full, a.shape);
      full.dispose();
    }
    if (b.requiresGrad) {
      const full = binaryKernel('mul', dy, a);
      grads[1] = sumToShape(full, b.shape);
      full.dispose();
    }
    return grads;
  });
}

export function div(a: Tensor, b: Tensor | number): Tensor {
  checkTensor('div', 'a', a);
  if (typeof b === 'number') return mulScalar(a, 1 / checkNumber('div', 'b', b));
  checkTensor('div', 'b', b);
  const out = binaryKernel('div', a, b);
  return record('div', out, [a, b], (dy) => {
    const grads: (Tensor | null)[] = [null, null];
    const dyOverB = binaryKernel('div', dy, b);
    if (b.requiresGrad) {
      // d(a/b)/db = -(a/b)/b
      const t = binaryKernel('mul', dyOverB, out);
      const full = unaryKernel('neg', t);
      t.dispose();
      grads[1] = sumToShape(full, b.shape);
      full.dispose();
    }
    if (a.requiresGrad) grads[0] = sumToShape(dyOverB, a.shape);
    dyOverB.dispose();
    return grads;
  });
}

export const neg = (x: Tensor): Tensor => unaryOp('neg', 'neg', x);
export const exp = (x: Tensor): Tensor => unaryOp('exp', 'exp', x);
export const log = (x: Tensor): Tensor => unaryOp('log', 'log', x);
export const sqrt = (x: Tensor): Tensor => unaryOp('sqrt', 'sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unaryOp('rsqrt', 'rsqrt', x);
/** x * sigmoid(x) */
export const silu = (x: Tensor): Tensor => unaryOp('silu', 'silu', x);
/** GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
export const gelu = (x: Tensor): Tensor => unaryOp('gelu_tanh', 'gelu', x);
export const square = (x: Tensor): Tensor => unaryOp('square', 'square', x);
export const abs = (x: Tensor): Tensor => unaryOp('abs', 'abs', x);
export const relu = (x: Tensor): Tensor => unaryOp('relu', 'relu', x);
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', 'tanh', x);
export const sigmoid = (x: Tensor): Tensor => unaryOp('sigmoid', 'sigmoid', x);
export const reciprocal = (x: Tensor): Tensor => unaryOp('reciprocal', 'reciprocal', x);
export const sin = (x: Tensor): Tensor => unaryOp('sin', 'sin', x);
export const cos = (x: Tensor): Tensor => unaryOp('cos', 'cos', x);
/** x ** p for a scalar exponent */
export function pow(x: Tensor, p: number): Tensor {
  return unaryOp('pow', 'pow', x, checkNumber('pow', 'p', p));
}
