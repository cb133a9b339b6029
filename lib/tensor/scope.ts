/**
 * Memory scopes: `scope(fn)` disposes every tensor created inside `fn` except those it returns
 * (found in arrays, plain objects and Maps), which move to the enclosing scope. `keep(t)` exempts a
 * tensor from disposal by every open scope.
 */
import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

/** Called by the Tensor constructor; returns whether an open scope now owns t. */
export function trackTensor(t: Tensor): boolean {
  if (!stack.length) return false;
  stack[stack.length - 1].add(t);
  return true;
}

export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  t.protectWithFinalizer();
  return t;
}

function collect(value: unknown, into: Set<Tensor>, isTensor: (v: unknown) => v is Tensor, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isTensor(value)) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, into, isTensor, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, isTensor, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, isTensor, depth + 1);
  }
}

let tensorCheck: ((v: unknown) => v is Tensor) | null = null;
/** Set once by tensor.ts (avoids an import cycle at module load). */
export function setTensorCheck(check: (v: unknown) => v is Tensor): void {
  tensorCheck = check;
}

export function scope<T>(fn: () => T): T {
  const tracked = new Set<Tensor>();
  stack.push(tracked);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    stack.pop();
    for (const t of tracked) t.dispose();
    throw err;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of tracked) t.dispose();
    throw new Error('scope(fn): fn must be synchronous (it returned a Promise); tensors made inside were disposed');
  }
  const kept = new Set<Tensor>();
  collect(result, kept, tensorCheck!);
  const parent = stack.length ? stack[stack.length - 1] : null;
  for (const t of tracked) {
    if (!kept.has(t)) t.dispose();
    else if (parent) parent.add(t);
    else t.protectWithFinalizer();
  }
  return result;
}

/** Number of open scopes (for tests and diagnostics). */
export function scopeDepth(): number {
  return stack.length;
}
