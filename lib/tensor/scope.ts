/**
 * Memory scopes: `scope(fn)` disposes every tensor created inside `fn` except those it returns
 * (found in arrays, plain objects and Maps), which move to the enclosing scope. `keep(t)` exempts a
 * tensor from disposal by every open scope.
 */

/**
 * What a scope needs of a tensor (structural, so this module imports nothing: tensor.ts imports
 * it, never the other way round).
 */
export interface ScopedTensor {
  dispose(): void;
  protectWithFinalizer(): void;
}

const stack: Set<ScopedTensor>[] = [];

/** Called by the Tensor constructor; returns whether an open scope now owns t. */
export function trackTensor(t: ScopedTensor): boolean {
  if (!stack.length) return false;
  stack[stack.length - 1].add(t);
  return true;
}

export function keep<T extends ScopedTensor>(t: T): T {
  for (const s of stack) s.delete(t);
  t.protectWithFinalizer();
  return t;
}

/**
 * Adds to `into` the tensors of `tracked` found in `value` (itself, or in its arrays, Maps and
 * plain objects, 8 levels deep). Only tracked tensors matter to the caller, so membership in
 * `tracked` is the tensor test: any other tensor is a class instance, neither array, Map nor plain
 * object, and is skipped as before.
 */
function collect(value: unknown, tracked: ReadonlySet<ScopedTensor>, into: Set<ScopedTensor>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (tracked.has(value as ScopedTensor)) {
    into.add(value as ScopedTensor);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, tracked, into, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, tracked, into, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, tracked, into, depth + 1);
  }
}

export function scope<T>(fn: () => T): T {
  const tracked = new Set<ScopedTensor>();
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
  const kept = new Set<ScopedTensor>();
  collect(result, tracked, kept);
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
