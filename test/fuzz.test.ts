/**
 * "Nothing segfaults": thousands of malformed calls to every function the native addon exports.
 * Every call must either succeed or throw an Error whose message starts with "diffvit." — and
 * the process must live (this file finishing is the proof).
 *
 * Bindings are enumerated at run time, so kernels added later are fuzzed without editing this
 * file. A kernel (native/addon/kernels.def) takes one object of named arguments, whose names come
 * from native.kernelTable(); the other functions take positional arguments, whose names come from
 * the addon's arity error ("expected 1 arguments (threads)"). For each binding the fuzzer learns
 * each argument's kind from the addon's own errors ("argument 'op' expected one of 'neg', ...")
 * until it has a call that succeeds, then throws random and mutated arguments at it — and, for
 * kernels, malformed call shapes: positional arguments, no object, a missing or an unknown key,
 * getters, proxies. The core kernels also have hand-written valid templates whose keys are mutated
 * one at a time ("near-valid" calls); when such a call succeeds, every element outside the region
 * it may write is checked untouched and every input checked unchanged, at every CPU kernel level.
 */
import { afterAll, describe, expect, test } from 'vitest';

import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import { native } from '../lib/backend/cpu/addon.js';
import * as dv from '../lib/index.js';
import { cpuLevels } from './helpers.js';

type AnyFn = (...args: unknown[]) => unknown;
const addon = native as unknown as Record<string, unknown>;
const NB = native.NativeBuffer as unknown as new (...args: unknown[]) => NativeBuffer;
/** Every kernel with its argument names, in kernels.def order. */
const KERNELS: Record<string, string[]> = native.kernelTable();
const isKernel = (name: string) => Object.prototype.hasOwnProperty.call(KERNELS, name);
type ArgObject = Record<string, unknown>;
/** A kernel's argument object from its values in kernels.def order. */
function named(name: string, values: readonly unknown[]): ArgObject {
  const o: ArgObject = {};
  KERNELS[name].forEach((key, i) => (o[key] = values[i]));
  return o;
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: one stream per binding, so adding a binding changes no other's calls.

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

class Rng {
  constructor(private s: number) {}
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ---------------------------------------------------------------------------------------------
// Outcomes

/**
 * Errors V8 raises itself before any addon code runs: its brand check on methods of a native class
 * (`NativeBuffer.prototype.read.call({})`) and `NativeBuffer()` without `new`. They are the same
 * TypeErrors any built-in class gives (`Map.prototype.get.call({})`), so they are allowed.
 */
const ENGINE_TYPE_ERRORS = ['Illegal invocation', "Class constructors cannot be invoked without 'new'"];
/** What the fuzzer's own getters and proxy traps throw (passed through by the addon, unchanged). */
const USER_THROWN = new Set<unknown>();

/** A real NativeBuffer (by prototype chain: immune to a user-defined Symbol.hasInstance). */
function isBuffer(v: unknown): v is NativeBuffer {
  return typeof v === 'object' && v !== null && Object.prototype.isPrototypeOf.call(NB.prototype, v);
}

function show(v: unknown, depth = 0): string {
  if (isBuffer(v)) {
    try {
      return v.disposed ? 'NativeBuffer(disposed)' : `NativeBuffer(${v.dtype}, ${v.numel})`;
    } catch {
      return 'an object with the NativeBuffer prototype';
    }
  }
  if (typeof v === 'string') return v.length > 24 ? `'${v.slice(0, 12)}…'(${v.length})` : `'${v}'`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol' || typeof v === 'function') return typeof v;
  if (Array.isArray(v)) return v.length > 10 ? `Array(${v.length})` : depth > 2 ? '[…]' : `[${v.map((x) => show(x, depth + 1)).join(', ')}]`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length ?? v.byteLength})`;
  if (v && typeof v === 'object') {
    if (depth > 1) return '{…}';
    try {
      return `{${Object.keys(v).slice(0, depth === 0 ? 40 : 4).map((k) => {
        const d = Object.getOwnPropertyDescriptor(v, k);
        return `${k}: ${d && !('value' in d) ? 'a getter' : show((v as Record<string, unknown>)[k], depth + 1)}`;
      }).join(', ')}}`;
    } catch {
      return 'an object whose properties throw (a proxy)';
    }
  }
  return Object.is(v, -0) ? '-0' : String(v);
}

class Campaign {
  calls = 0;
  rejected = 0;
  succeeded = 0;
  readonly perBinding = new Map<string, number>();
  readonly violations: string[] = [];

  /**
   * Runs one call; returns whether it succeeded. A throw that breaks the contract is recorded.
   * `mustThrow`: a success is a violation too. A value thrown by the caller's own code (a getter
   * of the argument object) may come back as itself.
   */
  call(label: string, fn: () => unknown, args: readonly unknown[], allowEngineTypeErrors = false, mustThrow = false): boolean {
    this.calls++;
    const binding = label.split(' (')[0]; // 'gemm (a missing key)' counts for gemm
    this.perBinding.set(binding, (this.perBinding.get(binding) ?? 0) + 1);
    try {
      fn();
      this.succeeded++;
      if (mustThrow) this.violations.push(`${label}(${args.map((a) => show(a)).join(', ')}) was accepted, expected a rejection`);
      return true;
    } catch (e) {
      this.rejected++;
      const ok = USER_THROWN.has(e) || (e instanceof Error && (e.message.startsWith('diffvit.') ||
        (allowEngineTypeErrors && e instanceof TypeError && ENGINE_TYPE_ERRORS.includes(e.message))));
      if (!ok) {
        const what = e instanceof Error ? `${e.constructor.name}: ${e.message}` : `a thrown ${typeof e}: ${show(e)}`;
        this.violations.push(`${label}(${args.map((a) => show(a)).join(', ')}) threw ${what}`);
      }
      return false;
    }
  }

  expectClean(): void {
    expect(this.violations.slice(0, 25), `${this.violations.length} calls broke the error contract`).toEqual([]);
  }
}

const totals = { calls: 0, succeeded: 0, bindings: new Set<string>() };
function tally(c: Campaign): void {
  totals.calls += c.calls;
  totals.succeeded += c.succeeded;
  for (const k of c.perBinding.keys()) totals.bindings.add(k);
}
afterAll(() => {
  console.log(`fuzz: ${totals.calls} calls to ${totals.bindings.size} entry points ` +
    `(${totals.succeeded} succeeded, ${totals.calls - totals.succeeded} rejected)`);
});

// ---------------------------------------------------------------------------------------------
// Value pools. Valid buffers stay small (<= 1024 elements) so that no accepted call can run long
// or allocate much: every kernel's work is bounded by the extents of the buffers it is given.

const f32 = (n: number) => new NB('cpu', 'float32', n);
const i32 = (n: number) => new NB('cpu', 'int32', n);
const disposedBuffer = (() => {
  const b = f32(64);
  b.dispose();
  return b;
})();
const VALID_F32 = [0, 1, 3, 17, 64, 1024].map(f32);
const VALID_I32 = [i32(17), i32(1024)];
const FAKE_BUFFERS: unknown[] = [
  { numel: 10 },
  { numel: 1024, dtype: 'float32', device: 'cpu', disposed: false, read: () => new Float32Array(1024), dispose() {} },
  new Float32Array(1024),
  new Int32Array(16),
  new ArrayBuffer(4096),
  Buffer.alloc(64),
  new DataView(new ArrayBuffer(16)),
];
const INTS: unknown[] = [
  0, 1, 2, 3, 7, 17, 63, 64, 65, 1023, 1024, 1025, -1, -0, -17, 0.5, 1.5, NaN, Infinity, -Infinity,
  2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 40 + 1, 2 ** 50, 2 ** 53 - 1, 2 ** 53, 2 ** 60, -(2 ** 60), Number.MAX_VALUE,
  Number.MIN_VALUE, '3', '', true, null, undefined, 3n, [3], { valueOf: () => 3 },
];
const NUMBERS: unknown[] = [
  0, -0, 1, -1, 0.5, 2.5, 1e-45, 3.4e38, 3.5e38, 1e308, -1e308, NaN, Infinity, -Infinity, '1', null, undefined, {}, 1n,
];
const BOOLS: unknown[] = [true, false, 0, 1, 'true', null, undefined, {}];
const STRINGS: unknown[] = ['', 'bogus', 'float32', 'int32', 'cpu', 'cuda', 'normal', 'constructor', '__proto__', 'x'.repeat(5000), 'add\0', 7, null];
const ARRAYS: unknown[] = [
  [], [0], [1], [3], [17], [2, 3], [4, 4, 4], [1, 1, 1, 1, 1, 1, 1, 1], new Array(9).fill(1), [-1], [1.5], [NaN],
  [Infinity], [2 ** 40], [2 ** 40 + 1], [2 ** 60], [2 ** 40, 2 ** 40], ['1'], [null], [undefined], [[1]],
  new Array(2).fill(1, 1), // a hole at index 0
  new Array(1_000_000), Int32Array.from([1, 2]), { length: 2, 0: 1, 1: 2 }, '12',
];
const OTHER: unknown[] = [undefined, null, {}, Object.create(null), () => 0, Symbol('s'), 5n, new Date(0), new Map(), /re/, new Error('x')];
const ANY: unknown[] = [...VALID_F32, ...VALID_I32, disposedBuffer, ...FAKE_BUFFERS, ...INTS, ...NUMBERS, ...BOOLS, ...STRINGS, ...ARRAYS, ...OTHER];

function junk(rng: Rng): unknown {
  return rng.pick(ANY);
}

// ---------------------------------------------------------------------------------------------
// Learning each binding's arguments from the addon's own messages

type Kind = 'f32' | 'i32' | 'buffer' | 'buffers' | 'int' | 'number' | 'bool' | 'choice' | 'ints' | 'unknown';
interface ArgSpec {
  name: string;
  kind: Kind;
  choices: string[];
}
interface Protocol {
  name: string;
  /** Argument list (kernels: from kernelTable(); others: from the arity error); null when the binding did not say. */
  args: ArgSpec[] | null;
  /** A call that succeeded, when one was found. */
  template: unknown[] | null;
}

/** Bindings that change process-wide state: fuzzed too, with the state restored after each call. */
function restoreRuntimeState(): () => void {
  const info = native.info();
  return () => {
    native.setThreads(info.threads);
    native.setCpuLevel(info.cpuLevel);
  };
}
const STATEFUL = new Set(['setThreads', 'setCpuLevel']);

/** Calls a binding with `args`: a kernel with them as its named-argument object, another function positionally. */
function invoke(name: string, args: readonly unknown[]): unknown {
  return isKernel(name) ? invokeRaw(name, [named(name, args)]) : invokeRaw(name, args);
}

/** Calls a binding with exactly these JS arguments. */
function invokeRaw(name: string, args: readonly unknown[]): unknown {
  const fn = addon[name] as AnyFn;
  if (!STATEFUL.has(name)) return fn(...args);
  // A valid request for hundreds of threads starts and joins them (twice, with the restore): the
  // check is the same as for 16, so such calls are not made; the limits are in CASES below.
  const [count] = args;
  if (name === 'setThreads' && args.length === 1 && Number.isInteger(count) && (count as number) > 16 && (count as number) <= 1024) return undefined;
  const restore = restoreRuntimeState();
  try {
    return fn(...args);
  } finally {
    restore();
  }
}

function errorOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

function learn(name: string): Protocol {
  let names: string[];
  if (isKernel(name)) {
    names = KERNELS[name];
  } else {
    const first = errorOf(() => invoke(name, []));
    if (first === null) return { name, args: [], template: [] };
    const arity = /argument '\(arguments\)' expected (\d+) arguments \(([^)]*)\)/.exec(first);
    if (!arity) return { name, args: null, template: null };
    names = arity[2] ? arity[2].split(', ') : [];
  }
  const args: ArgSpec[] = names.map((n) => ({ name: n, kind: 'unknown', choices: [] }));
  const values: unknown[] = names.map(() => undefined);
  const attempts = names.map(() => 0);
  for (let step = 0; step < 8 * names.length + 8; step++) {
    const message = errorOf(() => invoke(name, values));
    if (message === null) return { name, args, template: values };
    const m = /^diffvit\.[\w.]+: argument '([^']+)' expected (.*), received/s.exec(message);
    const i = m ? names.indexOf(m[1].replace(/\[\d+\]$/, '')) : -1;
    if (i < 0 || ++attempts[i] > 4) break;
    const expected = m![2], spec = args[i];
    const choices = /one of ((?:'[^']*'(?:, )?)+)/.exec(expected);
    const bound = />= (\d+)/.exec(expected);
    if (choices) {
      spec.kind = 'choice';
      spec.choices = [...choices[1].matchAll(/'([^']*)'/g)].map((c) => c[1]);
      values[i] = spec.choices[0];
    } else if (/^an array of (float32|int32) NativeBuffers/.test(expected)) {
      spec.kind = 'buffers';
      values[i] = [/int32/.test(expected) ? VALID_I32[1] : VALID_F32[5]];
    } else if (/NativeBuffer|dtype float32|dtype int32|elements/.test(expected)) {
      const wantsI32 = /int32/.test(expected) && !/float32/.test(expected);
      spec.kind = spec.kind === 'unknown' ? (wantsI32 ? 'i32' : /^a NativeBuffer/.test(expected) ? 'buffer' : 'f32') : spec.kind;
      values[i] = spec.kind === 'buffers' ? [wantsI32 ? VALID_I32[1] : VALID_F32[5]] : wantsI32 ? VALID_I32[1] : VALID_F32[5];
    } else if (/^an integer in \[(-?\d+), (-?\d+)\]/.test(expected)) {
      const [, lo, hi] = /^an integer in \[(-?\d+), (-?\d+)\]/.exec(expected)!;
      spec.kind = 'int';
      values[i] = Math.min(Math.max(Number(lo), 1), Number(hi));
    } else if (/integer/.test(expected) && !/array|integers/.test(expected)) {
      spec.kind = 'int';
      values[i] = bound ? Number(bound[1]) : typeof values[i] === 'number' ? (values[i] as number) + 1 : 0;
    } else if (/number/.test(expected)) {
      spec.kind = 'number';
      values[i] = 1;
    } else if (/boolean/.test(expected)) {
      spec.kind = 'bool';
      values[i] = false;
    } else if (/^(\d+) (offsets|counts)/.test(expected)) {
      // One entry per buffer of a list argument (sumSquares' offsets and counts).
      spec.kind = 'ints';
      values[i] = new Array(Number(/^(\d+)/.exec(expected)![1])).fill(0);
    } else if (/array|integers|strides/.test(expected)) {
      spec.kind = 'ints';
      const len = /^(\d+) strides/.exec(expected);
      values[i] = len ? new Array(Number(len[1])).fill(1) : [];
    } else if (bound) {
      values[i] = Number(bound[1]);
    } else if (/non-zero/.test(expected)) {
      values[i] = 1;
    } else {
      break;
    }
  }
  return { name, args, template: null };
}

/** A value of the same kind as the argument (often valid, often a boundary or a wrong variant). */
function sameKind(spec: ArgSpec, rng: Rng): unknown {
  switch (spec.kind) {
    case 'f32':
    case 'buffer':
      return rng.pick([...VALID_F32, ...VALID_F32, VALID_I32[0], disposedBuffer, ...FAKE_BUFFERS]);
    case 'i32':
      return rng.pick([...VALID_I32, ...VALID_I32, VALID_F32[3], disposedBuffer, ...FAKE_BUFFERS]);
    case 'buffers':
      return rng.chance(0.2) ? rng.pick(ARRAYS) : Array.from({ length: rng.int(4) },
        () => rng.pick([...VALID_F32, ...VALID_F32, VALID_I32[0], disposedBuffer, ...FAKE_BUFFERS]));
    case 'int':
      return rng.pick(INTS);
    case 'number':
      return rng.pick(NUMBERS);
    case 'bool':
      return rng.pick(BOOLS);
    case 'choice':
      return rng.chance(0.6) && spec.choices.length ? rng.pick(spec.choices) : rng.pick(STRINGS);
    case 'ints':
      return rng.pick(ARRAYS);
    default:
      return junk(rng);
  }
}

/** A JS value as the addon's error messages describe it (native/addon/args.cpp, describe()). */
function describeValue(v: unknown): string {
  if (isBuffer(v)) return v.disposed ? 'a disposed NativeBuffer' : `a ${v.dtype} NativeBuffer of ${v.numel} elements on ${v.device}`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (v === null || v === undefined || typeof v === 'boolean') return String(v);
  return typeof v === 'object' ? (ArrayBuffer.isView(v) ? 'a typed array' : 'an object') : `a ${typeof v}`;
}

/** Keys no kernel takes, including ones JS treats specially. */
const UNKNOWN_KEYS = ['foo', 'constructor', 'toString', 'valueOf', '__proto__', 'prototype', '', '0', 'x'.repeat(5000), 'precision ', 'OFFSET'];

/** Adds `key` as an own enumerable data property (also '__proto__', which plain assignment would not). */
function withKey(o: ArgObject, key: string, value: unknown): ArgObject {
  Object.defineProperty(o, key, { value, enumerable: true, configurable: true, writable: true });
  return o;
}

/** A key of the kernel spelled differently (case, whitespace): not one of its keys. */
function misspelled(key: string, rng: Rng): string {
  const variants = [key.toUpperCase(), key.toLowerCase() === key ? key[0].toUpperCase() + key.slice(1) : key.toLowerCase(), key + ' ', ' ' + key, key + '_'];
  return rng.pick(variants.filter((v) => v !== key));
}

interface Shape {
  /** The JS arguments of the call. */
  raw: unknown[];
  /** Whether the call shape alone makes the call invalid. */
  mustThrow: boolean;
  what: string;
}

/**
 * A malformed call of kernel `name` built from its values: positional arguments, no or several
 * arguments, a non-object, a missing, unknown or misspelled key (all rejected), or an object the
 * binding reads through getters, a proxy or its prototype (accepted or rejected cleanly).
 */
function malformedShape(name: string, values: readonly unknown[], rng: Rng): Shape {
  const keys = KERNELS[name];
  const obj = named(name, values);
  switch (rng.int(10)) {
    case 0:
      return { raw: [...values], mustThrow: true, what: 'positional arguments' };
    case 1:
      return { raw: [], mustThrow: true, what: 'no arguments' };
    case 2:
      return { raw: [obj, rng.chance(0.5) ? { ...obj } : junk(rng)], mustThrow: true, what: 'two arguments' };
    case 3: {
      const v = rng.pick([...values, [obj], [...values], 0, 'x', null, undefined, true, 1n, Symbol('s'), ...VALID_F32]);
      // An array, a NativeBuffer or a primitive is never the argument object.
      const notObject = v === null || typeof v !== 'object' || Array.isArray(v) || isBuffer(v);
      return { raw: [v], mustThrow: notObject, what: 'a non-object argument' };
    }
    case 4: {
      delete obj[rng.pick(keys)];
      return { raw: [obj], mustThrow: true, what: 'a missing key' };
    }
    case 5:
      return { raw: [withKey(obj, rng.pick(UNKNOWN_KEYS), junk(rng))], mustThrow: true, what: 'an unknown key' };
    case 6: {
      const key = rng.pick(keys), value = obj[key];
      delete obj[key];
      return { raw: [withKey(obj, misspelled(key, rng), value)], mustThrow: true, what: 'a misspelled key' };
    }
    case 7: {
      // Getters: some return other values on each read, some throw, some dispose a buffer.
      const key = rng.pick(keys), value = obj[key];
      const thrown = new Error(`a getter of '${key}' throws`);
      USER_THROWN.add(thrown);
      const getter = rng.pick([
        () => value,
        () => junk(rng),
        () => {
          throw thrown;
        },
        () => {
          const b = f32(8);
          b.dispose();
          return b;
        },
      ]);
      Object.defineProperty(obj, key, { get: getter, enumerable: rng.chance(0.8), configurable: true });
      return { raw: [obj], mustThrow: false, what: 'a getter' };
    }
    case 8: {
      const thrown = new Error('a proxy trap throws');
      USER_THROWN.add(thrown);
      const trap = rng.pick(['get', 'has', 'ownKeys', 'getOwnPropertyDescriptor', 'none']);
      const handler: ProxyHandler<ArgObject> = trap === 'none' ? {} : { [trap]: () => { throw thrown; } };
      return { raw: [new Proxy(obj, handler)], mustThrow: false, what: `a proxy (${trap} trap)` };
    }
    default: {
      // The keys on the prototype (enumerable there), on a null-prototype object, or on a function.
      const host = rng.pick(['inherited', 'null', 'function']);
      const o = host === 'inherited' ? Object.create(obj) : Object.assign(host === 'null' ? Object.create(null) : () => 0, obj);
      return { raw: [o], mustThrow: false, what: `keys on ${host}` };
    }
  }
}

const BINDINGS = Object.keys(addon).filter((k) => k !== 'NativeBuffer' && typeof addon[k] === 'function').sort();
const PROTOCOLS = new Map(BINDINGS.map((name) => [name, learn(name)]));

describe('random malformed calls to every binding', () => {
  test('the binding list is enumerated from the addon and the protocols were learned', () => {
    for (const core of ['fill', 'copyStrided', 'randomFill', 'unary', 'unaryGrad', 'binary', 'axpby', 'reduceSum', 'sumSquares', 'gemm', 'info', 'memoryStats', 'kernelTable']) {
      expect(BINDINGS).toContain(core);
    }
    // The kernel table: every kernel is a function of the addon, with distinct argument names.
    expect(Object.keys(KERNELS).length).toBeGreaterThan(30);
    for (const [name, keys] of Object.entries(KERNELS)) {
      expect(BINDINGS, `kernelTable() lists '${name}'`).toContain(name);
      expect(keys.length, `${name} has arguments`).toBeGreaterThan(0);
      expect(new Set(keys).size, `${name}'s argument names are distinct`).toBe(keys.length);
      for (const key of keys) expect(key).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
    }
    const unlearned = BINDINGS.filter((name) => !PROTOCOLS.get(name)!.template);
    console.log(`fuzz: a valid call learned for ${BINDINGS.length - unlearned.length} of ${BINDINGS.length} bindings (not for ${unlearned.join(', ') || 'none'})`);
    // Every binding the core defines reaches a successful call.
    for (const name of ['fill', 'copyStrided', 'unary', 'binary', 'reduceSum', 'sumSquares', 'gemm', 'axpby', 'randomFill']) {
      expect(PROTOCOLS.get(name)!.template, `no valid call learned for ${name}`).not.toBeNull();
    }
  });

  // Every kernel, whether or not a valid call was learned: the call shape is checked before any
  // argument, and every key of kernels.def is required by name.
  test.each(Object.keys(KERNELS).sort())('%s: call shapes (one object, every key, no other key)', (name) => {
    const keys = KERNELS[name], p = PROTOCOLS.get(name)!;
    const values = p.template ?? keys.map(() => 0);
    const c = new Campaign();
    const op = `diffvit.${name}: argument `;
    const rejected = (raw: unknown[], message: string) => {
      c.call(name, () => invokeRaw(name, raw), raw, false, true);
      expect(errorOf(() => invokeRaw(name, raw)), show(raw)).toBe(message);
    };
    const oneObject = `${op}'(arguments)' expected one object { ${keys.join(', ')} }, received`;
    // (The learned call may no longer be valid: a kernel may check the contents of buffers that
    // other calls have since written. The shape is checked before any value either way.)
    rejected([...values], `${oneObject} ${keys.length} arguments, the first ${describeValue(values[0])}`);
    rejected([], `${oneObject} 0 arguments`);
    rejected([named(name, values), {}], `${oneObject} 2 arguments, the first an object`);
    for (const [v, what] of [[undefined, 'undefined'], [null, 'null'], [7, '7'], ['x', 'a string'], [true, 'true'],
      [[named(name, values)], 'an array of length 1'], [VALID_F32[2], 'a float32 NativeBuffer of 3 elements on cpu']] as const) {
      rejected([v], `${oneObject} 1 arguments, the first ${what}`);
    }
    keys.forEach((key) => {
      const o = named(name, values);
      delete o[key];
      rejected([o], `${op}'${key}' expected a value (the argument is missing), received no such key`);
      // Spelled otherwise, it is both missing and unknown: missing is reported first.
      const alt = key.toUpperCase() === key ? key.toLowerCase() : key.toUpperCase();
      expect(keys).not.toContain(alt);
      const renamed = withKey(named(name, values), alt, values[keys.indexOf(key)]);
      delete renamed[key];
      rejected([renamed], `${op}'${key}' expected a value (the argument is missing), received no such key`);
    });
    for (const extra of UNKNOWN_KEYS) {
      rejected([withKey(named(name, values), extra, 1)],
        `${op}'${extra}' expected no such argument (this kernel takes only the keys of kernels.def), received a value`);
    }
    // A key present with the value undefined is not missing: its own check rejects the value.
    const undef = named(name, values);
    undef[keys[0]] = undefined;
    const m = errorOf(() => invokeRaw(name, [undef]));
    expect(m, `${name} with ${keys[0]}: undefined`).toMatch(new RegExp(`^diffvit\\.${name}: argument '${keys[0]}(\\[\\d+\\])?' expected `));
    expect(m).not.toMatch(/the argument is missing/);
    tally(c);
    c.expectClean();
  });

  test.each(BINDINGS)('%s', (name) => {
    const c = new Campaign();
    const rng = new Rng(hashString(name));
    const p = PROTOCOLS.get(name)!;
    const arity = p.args?.length ?? 3;
    const kernel = isKernel(name);
    for (let i = 0; i < 400; i++) {
      let args: unknown[];
      const mode = rng.next();
      if (mode < 0.1 && !kernel) {
        // Wrong arity, anything in it.
        let n = rng.int(arity + 4);
        if (n === arity) n = arity + 1;
        args = Array.from({ length: n }, () => junk(rng));
      } else if (mode < 0.55 && p.template) {
        // A valid call with one to three arguments replaced.
        args = [...p.template];
        const k = 1 + rng.int(3);
        for (let j = 0; j < k && arity > 0; j++) {
          const at = rng.int(arity);
          args[at] = rng.chance(0.6) && p.args ? sameKind(p.args[at], rng) : junk(rng);
        }
      } else {
        // Every argument of its own kind where known.
        args = Array.from({ length: arity }, (_, at) => (p.args && rng.chance(0.8) ? sameKind(p.args[at], rng) : junk(rng)));
      }
      if (kernel && mode < 0.2) {
        // A malformed call shape around these values (half of them the valid call's).
        const shape = malformedShape(name, rng.chance(0.5) && p.template ? p.template : args, rng);
        c.call(`${name} (${shape.what})`, () => invokeRaw(name, shape.raw), shape.raw, false, shape.mustThrow);
      } else {
        c.call(name, () => invoke(name, args), kernel ? [named(name, args)] : args);
      }
    }
    tally(c);
    c.expectClean();
  });
});

// ---------------------------------------------------------------------------------------------
// NativeBuffer: constructor, methods, accessors, receivers

describe('NativeBuffer abuse', () => {
  test('constructor: wrong arity, devices, dtypes and sizes; without new; odd new.target', () => {
    const c = new Campaign();
    const rng = new Rng(hashString('NativeBuffer'));
    // Each field is valid most of the time, so that every check is reached and some calls succeed.
    const devices = ['cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cuda', 'CPU', '', 0, null, {}];
    const dtypes = ['float32', 'float32', 'float32', 'int32', 'int32', 'int32', 'float64', 'bfloat16', 'Float32', '', 1, null];
    // Valid sizes stay tiny; 2^40 + 1 and beyond must be refused before any allocation.
    const sizes = [0, 1, 17, 64, 0, 1, 17, 64, -1, -0, 1.5, NaN, Infinity, 2 ** 40 + 1, 2 ** 53, 2 ** 60, '10', null, 10n, [10], {}];
    for (let i = 0; i < 600; i++) {
      const n = rng.chance(0.8) ? 3 : rng.int(6);
      const args = Array.from({ length: n }, (_, k) => (k === 0 ? rng.pick(devices) : k === 1 ? rng.pick(dtypes) : k === 2 ? rng.pick(sizes) : junk(rng)));
      const how = rng.int(4);
      c.call('new NativeBuffer', () => {
        let b: unknown;
        if (how === 0) b = Reflect.apply(NB as unknown as AnyFn, undefined, args);
        else if (how === 1) b = Reflect.construct(NB, args, Object);
        else b = new NB(...args);
        if (isBuffer(b)) b.dispose();
      }, args, true);
    }
    class Sub extends NB {}
    c.call('new Sub', () => new Sub('cpu', 'float32', 4).dispose(), ['cpu', 'float32', 4]);
    tally(c);
    c.expectClean();
    // Some of the calls were valid constructions (of tiny buffers), the rest were refused.
    expect(c.succeeded).toBeGreaterThan(20);
  });

  test('read / write / dispose with bad arguments, wrong typed arrays, disposed buffers', () => {
    const c = new Campaign();
    const rng = new Rng(hashString('NativeBuffer.methods'));
    // A typed array whose memory was transferred away (length 0, data pointer gone).
    const detached = new Float32Array(16);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    const views: unknown[] = [
      new Float32Array(8), new Float32Array(64), new Float32Array(65), new Float32Array(0), new Int32Array(8),
      new Float64Array(8), new Uint8Array(8), new Float32Array(new ArrayBuffer(64), 4, 3), new Float32Array(new SharedArrayBuffer(32)),
      detached, new DataView(new ArrayBuffer(8)), [1, 2, 3], null, undefined, 'abc', {},
    ];
    for (let i = 0; i < 600; i++) {
      const b = rng.chance(0.8) ? rng.pick([f32(64), i32(64), f32(0)]) : (() => { const d = f32(8); d.dispose(); return d; })();
      const op = rng.int(3);
      const args = op === 0 ? [rng.pick(INTS), rng.pick(INTS)] : op === 1 ? [rng.pick(INTS), rng.pick(views)] : [junk(rng)];
      if (rng.chance(0.1)) args.push(junk(rng));
      const method = ['read', 'write', 'dispose'][op] as 'read' | 'write' | 'dispose';
      c.call(`NativeBuffer.${method}`, () => (b[method] as AnyFn).apply(b, args), args);
      b.dispose();
      b.dispose();
      expect(b.disposed).toBe(true);
    }
    tally(c);
    c.expectClean();
  });

  test('methods called on foreign receivers give TypeErrors from the engine, never a crash', () => {
    const c = new Campaign();
    const receivers: unknown[] = [{}, Object.create(NB.prototype), native.fill, [], 1, 'x', null, undefined, new Float32Array(4)];
    for (const method of ['read', 'write', 'dispose'] as const) {
      const fn = (NB.prototype as unknown as Record<string, AnyFn>)[method];
      for (const r of receivers) c.call(`NativeBuffer.prototype.${method}.call`, () => fn.call(r, 0, 1), [r], true);
    }
    tally(c);
    c.expectClean();
  });

  test('accessors read on foreign receivers throw diffvit errors', () => {
    const c = new Campaign();
    const receivers: unknown[] = [{}, Object.create(NB.prototype), NB.prototype, native.fill, []];
    for (const key of ['numel', 'dtype', 'device', 'disposed']) {
      const getter = Object.getOwnPropertyDescriptor(NB.prototype, key)?.get;
      expect(getter, `NativeBuffer.prototype.${key} is an accessor`).toBeTypeOf('function');
      for (const r of receivers) c.call(`NativeBuffer.prototype.${key}`, () => getter!.call(r), [r], true);
    }
    tally(c);
    c.expectClean();
  });

  test('look-alike buffers passed to every buffer argument of every binding are rejected with diffvit errors', () => {
    const c = new Campaign();
    const real = f32(64);
    const lookAlikes: unknown[] = [
      Object.create(NB.prototype),
      new Proxy(real, {}),
      Object.setPrototypeOf({ numel: 64, dtype: 'float32', device: 'cpu', disposed: false }, NB.prototype),
      { numel: 64, dtype: 'float32', device: 'cpu', disposed: false },
    ];
    const accepted: string[] = [];
    const run = () => {
      for (const [name, p] of PROTOCOLS) {
        if (!p.template || !p.args) continue;
        p.args.forEach((spec, i) => {
          if (!['f32', 'i32', 'buffer', 'buffers'].includes(spec.kind)) return;
          lookAlikes.forEach((fake, k) => {
            const args = [...p.template!];
            // A list of buffers gets the look-alike as its only, or as its second, element.
            args[i] = spec.kind !== 'buffers' ? fake : k % 2 ? [fake] : [real, fake];
            if (c.call(name, () => invoke(name, args), args)) accepted.push(`${name}: look-alike #${k} as '${spec.name}'`);
          });
        });
      }
    };
    run();
    // A class-level Symbol.hasInstance makes every object pass `instanceof NativeBuffer`: the
    // addon must recognise its buffers by something user code cannot forge.
    Object.defineProperty(NB, Symbol.hasInstance, { value: () => true, configurable: true });
    try {
      run();
    } finally {
      delete (NB as unknown as Record<symbol, unknown>)[Symbol.hasInstance];
    }
    real.dispose();
    tally(c);
    c.expectClean();
    expect(accepted).toEqual([]);
    expect(c.calls).toBeGreaterThan(50);
  });

  test('a genuine NativeBuffer constructed with another new.target is either accepted or refused cleanly', () => {
    const c = new Campaign();
    const odd = Reflect.construct(NB, ['cpu', 'float32', 8], Object) as NativeBuffer;
    c.call('fill', () => native.fill({ out: odd, offset: 0, n: 8, value: 1 }), [odd]);
    tally(c);
    c.expectClean();
  });
});

// ---------------------------------------------------------------------------------------------
// Known-dangerous patterns, spelled out

describe('known-dangerous patterns', () => {
  const buf = (n: number) => VALID_F32.find((x) => x.numel === n)!;
  const gemm = (over: ArgObject): ArgObject => ({
    a: buf(64), aOffset: 0, b: buf(64), bOffset: 0, c: buf(64), cOffset: 0, batch: 1, m: 4, n: 4, k: 4, transA: false, transB: false,
    alpha: 1, beta: 0, strideA: 0, strideB: 0, strideC: 0, lda: 4, ldb: 4, ldc: 4, precision: 'float32', ...over,
  });
  const copy = (src: NativeBuffer, srcStrides: unknown, dst: NativeBuffer, dstStrides: unknown, shape: unknown): ArgObject =>
    ({ src, srcOffset: 0, srcStrides, dst, dstOffset: 0, dstStrides, shape });
  const reduce = (outer: number, r: number, inner: number): ArgObject => ({ x: buf(64), xOffset: 0, out: buf(64), outOffset: 0, outer, r, inner });
  const unary = (x: NativeBuffer, out: NativeBuffer, n: number): ArgObject => ({ op: 'exp', x, xOffset: 0, out, outOffset: 0, n, alpha: 0, beta: 0 });
  const random = (counter: number, b: number): ArgObject =>
    ({ out: buf(64), offset: 0, n: 64, distribution: 'normal', seed: 1, counter, a: 0, b });

  // [label, binding, args (a kernel's object, another function's list), must it throw?]
  const CASES: [string, string, ArgObject | unknown[], boolean][] = [
    // Offsets and counts at and past the end of a buffer.
    ['fill: n = 0 at offset = numel', 'fill', { out: buf(17), offset: 17, n: 0, value: 1 }, false],
    ['fill: one past the end', 'fill', { out: buf(17), offset: 17, n: 1, value: 1 }, true],
    ['fill: offset 2^53', 'fill', { out: buf(17), offset: 2 ** 53, n: 1, value: 1 }, true],
    ['fill: offset + n overflows int64', 'fill', { out: buf(17), offset: 2 ** 50, n: 2 ** 40, value: 1 }, true],
    ['fill: zero-size buffer, n = 0', 'fill', { out: buf(0), offset: 0, n: 0, value: 1 }, false],
    ['fill: zero-size buffer, n = 1', 'fill', { out: buf(0), offset: 0, n: 1, value: 1 }, true],
    ['fill: int32 buffer with a fractional value', 'fill', { out: VALID_I32[0], offset: 0, n: 1, value: 0.5 }, true],
    ['unary: n = 2^40 on a small buffer', 'unary', unary(buf(64), buf(64), 2 ** 40), true],
    ['unary: in-place (x and out the same buffer)', 'unary', unary(buf(64), buf(64), 64), false],
    ['unary: int32 buffers', 'unary', unary(VALID_I32[0], VALID_I32[0], 1), true],
    // Strided extents whose arithmetic overflows int64.
    ['copyStrided: extent overflow', 'copyStrided', copy(buf(64), [2 ** 40, 2 ** 40], buf(64), [2 ** 40, 2 ** 40], [2 ** 40, 2 ** 40]), true],
    ['copyStrided: 9 dims', 'copyStrided', copy(buf(64), new Array(9).fill(0), buf(64), new Array(9).fill(0), new Array(9).fill(1)), true],
    ['copyStrided: strides shorter than shape', 'copyStrided', copy(buf(64), [1], buf(64), [4, 1], [4, 4]), true],
    ['copyStrided: negative stride', 'copyStrided', copy(buf(64), [-1], buf(64), [1], [4]), true],
    ['copyStrided: float32 to int32', 'copyStrided', copy(buf(64), [1], VALID_I32[0], [1], [4]), true],
    // Zero strides read one element many times; on the destination they would make the kernel
    // loop over an element count the buffers never bound (2^80 here wraps int64 to 0).
    ['copyStrided: broadcast source (stride 0)', 'copyStrided', copy(buf(1), [0, 0], buf(64), [8, 1], [8, 8]), false],
    ['copyStrided: 2^80 elements through zero strides', 'copyStrided', copy(buf(1), [0, 0], buf(1), [0, 0], [2 ** 40, 2 ** 40]), true],
    ['copyStrided: 2^70 elements through zero strides', 'copyStrided', copy(buf(1), [0, 0], buf(1), [0, 0], [2 ** 40, 2 ** 30]), true],
    ['copyStrided: destination with a zero stride (overlapping writes)', 'copyStrided', copy(buf(64), [4, 1], buf(64), [0, 1], [4, 4]), true],
    ['copyStrided: empty shape, zero strides (nothing to write)', 'copyStrided', copy(buf(1), [0, 0, 0], buf(1), [0, 3, 1], [2, 0, 3]), false],
    ['copyStrided: overlapping destination rows', 'copyStrided', copy(buf(64), [4, 1], buf(64), [1, 1], [4, 4]), true],
    ['binary: 2^80 broadcast elements', 'binary',
      { op: 'add', a: buf(1), aOffset: 0, aStrides: [0, 0], b: buf(1), bOffset: 0, bStrides: [0, 0], out: buf(64), outOffset: 0, shape: [2 ** 40, 2 ** 40] }, true],
    ['binary: out too short for the shape', 'binary',
      { op: 'add', a: buf(64), aOffset: 0, aStrides: [8, 1], b: buf(64), bOffset: 0, bStrides: [8, 1], out: buf(17), outOffset: 0, shape: [8, 8] }, true],
    // GEMM leading dimensions, batch strides and empty products.
    ['gemm: lda < k', 'gemm', gemm({ lda: 3 }), true],
    ['gemm: batch 2^40 with broadcast A/B and C stride 0', 'gemm', gemm({ batch: 2 ** 40, m: 1, n: 1, k: 1, lda: 1, ldb: 1, ldc: 1 }), true],
    ['gemm: batch 2^40, C stride 1', 'gemm', gemm({ batch: 2 ** 40, m: 1, n: 1, k: 1, strideC: 1, lda: 1, ldb: 1, ldc: 1 }), true],
    ['gemm: k = 2^40 with m = 0 still needs B to hold k x n', 'gemm', gemm({ m: 0, k: 2 ** 40, lda: 2 ** 40 }), true],
    ['gemm: k = 2^40 with m = n = 0 (nothing to read or write)', 'gemm', gemm({ m: 0, n: 0, k: 2 ** 40, lda: 2 ** 40, ldb: 0, ldc: 0 }), false],
    ['gemm: k = 0 (C = beta C)', 'gemm', gemm({ k: 0, beta: 0.5, lda: 0 }), false],
    ['gemm: k = 0 at bf16', 'gemm', gemm({ k: 0, beta: 0.5, lda: 0, precision: 'bf16' }), false],
    ['gemm: transposed A too short', 'gemm', gemm({ a: buf(17), k: 8, transA: true }), true],
    ['gemm: unknown precision', 'gemm', gemm({ precision: 'fp8' }), true],
    // Reductions with empty and huge axes.
    ['reduceSum: outer 2^40, r 0, inner 0', 'reduceSum', reduce(2 ** 40, 0, 0), false],
    ['reduceSum: r 2^40 over an empty inner axis', 'reduceSum', reduce(1, 2 ** 40, 0), false],
    ['reduceSum: outer*r*inner overflows int64', 'reduceSum', reduce(2 ** 40, 2 ** 40, 2 ** 40), true],
    ['reduceSum: r = 0 (sums of nothing)', 'reduceSum', reduce(4, 0, 4), false],
    // sumSquares: a list of buffers with an offset and a count each.
    ['sumSquares: n = 0 on a zero-size buffer', 'sumSquares', { xs: [buf(0)], offsets: [0], counts: [0], out: buf(1), outOffset: 0 }, false],
    ['sumSquares: no buffers at all', 'sumSquares', { xs: [], offsets: [], counts: [], out: buf(1), outOffset: 0 }, false],
    ['sumSquares: the same buffer twice, and out among the inputs', 'sumSquares',
      { xs: [buf(64), buf(64), buf(17)], offsets: [0, 10, 0], counts: [64, 54, 17], out: buf(17), outOffset: 16 }, false],
    ['sumSquares: a count past the end of its buffer', 'sumSquares', { xs: [buf(17), buf(64)], offsets: [0, 1], counts: [17, 64], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: offset + count overflows int64', 'sumSquares', { xs: [buf(17)], offsets: [2 ** 50], counts: [2 ** 40], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: fewer offsets than buffers', 'sumSquares', { xs: [buf(17), buf(17)], offsets: [0], counts: [1, 1], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: more counts than buffers', 'sumSquares', { xs: [buf(17)], offsets: [0], counts: [1, 1], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: a disposed buffer in the list', 'sumSquares', { xs: [buf(17), disposedBuffer], offsets: [0, 0], counts: [1, 1], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: an int32 buffer in the list', 'sumSquares', { xs: [VALID_I32[0]], offsets: [0], counts: [1], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: a hole in the list', 'sumSquares', { xs: new Array(2).fill(buf(17), 1), offsets: [0, 0], counts: [1, 1], out: buf(1), outOffset: 0 }, true],
    ['sumSquares: out past the end', 'sumSquares', { xs: [buf(17)], offsets: [0], counts: [1], out: buf(1), outOffset: 1 }, true],
    ['randomFill: counter 2^53', 'randomFill', random(2 ** 53, 1), false],
    ['randomFill: counter past 2^53', 'randomFill', random(2 ** 60, 1), true],
    ['randomFill: std NaN', 'randomFill', random(0, NaN), true],
    ['setThreads: 0 threads', 'setThreads', [0], true],
    ['setThreads: 2^31 threads', 'setThreads', [2 ** 31], true],
    ['setCpuLevel: unknown level', 'setCpuLevel', ['avx1024'], true],
  ];

  test.each(CASES)('%s', (_label, name, args, mustThrow) => {
    const c = new Campaign();
    if (isKernel(name)) {
      // Exactly the kernel's keys: a misspelled one would make a case fail for the wrong reason.
      expect(Object.keys(args).sort(), `${name} case keys`).toEqual([...KERNELS[name]].sort());
    }
    const raw = Array.isArray(args) ? args : [args];
    const ok = c.call(name, () => invokeRaw(name, raw), raw);
    tally(c);
    c.expectClean();
    expect(ok, mustThrow ? 'must be rejected' : 'must be accepted').toBe(!mustThrow);
  });
});

// ---------------------------------------------------------------------------------------------
// Near-valid calls: valid templates of the core kernels, one key mutated at a time

interface Template {
  name: string;
  args: ArgObject;
  /** The key of the argument written to (none for pure queries). */
  out?: string;
  /** Elements of the output buffer that a successful call with `args` may write. */
  writes?: (args: ArgObject) => Iterable<number>;
}

function* range(start: number, n: number): Iterable<number> {
  for (let i = 0; i < n; i++) yield start + i;
}

function* strided(offset: number, strides: number[], shape: number[]): Iterable<number> {
  const total = shape.reduce((a, s) => a * s, 1);
  for (let i = 0; i < total; i++) {
    let rem = i, at = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      at += (rem % shape[d]) * strides[d];
      rem = Math.floor(rem / shape[d]);
    }
    yield at;
  }
}

const n = (v: unknown) => v as number;
const arr = (v: unknown) => v as number[];

function templates(): Template[] {
  // Odd sizes and non-zero offsets: SIMD bodies, tails and misaligned starts all run.
  const X = f32(300), Y = f32(300), OUT = f32(300), I = i32(64);
  return [
    { name: 'fill', args: { out: OUT, offset: 5, n: 37, value: 2.5 }, out: 'out', writes: (a) => range(n(a.offset), n(a.n)) },
    { name: 'fill', args: { out: I, offset: 3, n: 21, value: -7 }, out: 'out', writes: (a) => range(n(a.offset), n(a.n)) },
    { name: 'copyStrided', args: { src: X, srcOffset: 7, srcStrides: [40, 1, 5], dst: OUT, dstOffset: 3, dstStrides: [1, 60, 12], shape: [3, 5, 4] },
      out: 'dst', writes: (a) => strided(n(a.dstOffset), arr(a.dstStrides), arr(a.shape)) },
    // The bias broadcast of linear(): a zero source stride.
    { name: 'copyStrided', args: { src: X, srcOffset: 2, srcStrides: [0, 1], dst: OUT, dstOffset: 1, dstStrides: [19, 1], shape: [6, 19] },
      out: 'dst', writes: (a) => strided(n(a.dstOffset), arr(a.dstStrides), arr(a.shape)) },
    { name: 'randomFill', args: { out: OUT, offset: 9, n: 33, distribution: 'normal', seed: 5, counter: 7, a: 0.5, b: 2 },
      out: 'out', writes: (a) => range(n(a.offset), n(a.n)) },
    { name: 'unary', args: { op: 'gelu_tanh', x: X, xOffset: 3, out: OUT, outOffset: 11, n: 77, alpha: 0.5, beta: 0.25 },
      out: 'out', writes: (a) => range(n(a.outOffset), n(a.n)) },
    { name: 'unaryGrad', args: { op: 'silu', x: X, xOffset: 1, dy: Y, dyOffset: 2, dx: OUT, dxOffset: 3, n: 45, alpha: 1, beta: 0 },
      out: 'dx', writes: (a) => range(n(a.dxOffset), n(a.n)) },
    { name: 'binary', args: { op: 'mul', a: X, aOffset: 4, aStrides: [17, 0, 1], b: Y, bOffset: 1, bStrides: [0, 17, 1], out: OUT, outOffset: 6, shape: [3, 5, 17] },
      out: 'out', writes: (a) => range(n(a.outOffset), arr(a.shape).reduce((p, s) => p * s, 1)) },
    { name: 'axpby', args: { dst: OUT, dstOffset: 2, src: X, srcOffset: 5, n: 67, alpha: 0.5, beta: -1.5 },
      out: 'dst', writes: (a) => range(n(a.dstOffset), n(a.n)) },
    { name: 'reduceSum', args: { x: X, xOffset: 3, out: OUT, outOffset: 2, outer: 3, r: 7, inner: 11 },
      out: 'out', writes: (a) => range(n(a.outOffset), n(a.outer) * n(a.inner)) },
    { name: 'reduceSum', args: { x: X, xOffset: 1, out: OUT, outOffset: 4, outer: 5, r: 33, inner: 1 },
      out: 'out', writes: (a) => range(n(a.outOffset), n(a.outer) * n(a.inner)) },
    // Two tensors (one of them twice), each at an offset with a count.
    { name: 'sumSquares', args: { xs: [X, Y, X], offsets: [3, 0, 250], counts: [101, 7, 50], out: OUT, outOffset: 13 },
      out: 'out', writes: (a) => range(n(a.outOffset), 1) },
    // C (2 batches of 5 x 7, ldc 9, batch stride 50) = A (5 x 6, lda 8) · Bᵀ (B stored 7 x 6, ldb 6).
    { name: 'gemm', args: { a: X, aOffset: 1, b: Y, bOffset: 2, c: OUT, cOffset: 3, batch: 2, m: 5, n: 7, k: 6, transA: false, transB: true,
      alpha: 1, beta: 0.5, strideA: 40, strideB: 0, strideC: 50, lda: 8, ldb: 6, ldc: 9, precision: 'float32' }, out: 'c',
      writes: (a) => (function* () {
        for (let bt = 0; bt < n(a.batch); bt++) for (let i = 0; i < n(a.m); i++) yield* range(n(a.cOffset) + bt * n(a.strideC) + i * n(a.ldc), n(a.n));
      })() },
  ];
}

/** Replacement values for one argument of a template (each makes one near-valid call). */
function mutations(value: unknown, spec: ArgSpec | undefined, otherBuffers: NativeBuffer[]): unknown[] {
  if (isBuffer(value)) {
    const b = value;
    const short = b.dtype === 'float32' ? f32(Math.max(0, Math.floor(b.numel / 2))) : i32(Math.max(0, Math.floor(b.numel / 2)));
    const wrongDtype = b.dtype === 'float32' ? i32(b.numel) : f32(b.numel);
    return [disposedBuffer, short, wrongDtype, VALID_F32[0], ...otherBuffers, ...FAKE_BUFFERS, null, undefined, 0];
  }
  if (typeof value === 'number') {
    const v = value;
    return [v - 1, v + 1, 0, -1, -0, 2 * v + 1, 299, 300, 301, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 40 + 1, 2 ** 53, 2 ** 60, -(2 ** 60),
      v + 0.5, NaN, Infinity, -Infinity, 1e39, String(v), null, undefined, true, BigInt(Math.trunc(v)), [v], { valueOf: () => v }];
  }
  if (typeof value === 'boolean') return [!value, 0, 1, 'true', null, undefined];
  if (typeof value === 'string') {
    return [...(spec?.choices ?? []), '', 'bogus', value.toUpperCase(), value + ' ', value + '\0', 'x'.repeat(5000), 3, null, undefined];
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [value.slice(0, -1), [...value, value[0]], [], new Array(9).fill(1), new Array(1_000_000), Int32Array.from(value.map(Number)),
      value.map((x) => [x])];
    value.forEach((element, i) => {
      // A list of buffers: each element replaced by every buffer mutation; a list of integers: by bad integers.
      const bads = isBuffer(element) ? mutations(element, undefined, otherBuffers) : [0, 1, -1, 1.5, NaN, 2 ** 40, 2 ** 40 + 1, 2 ** 60, '1', null];
      for (const bad of bads) {
        const m = [...value];
        m[i] = bad;
        out.push(m);
      }
    });
    return out;
  }
  return [undefined];
}

const SENTINEL = -777.25;

function isLive(v: unknown): v is NativeBuffer {
  return isBuffer(v) && !v.disposed;
}

function bits(values: Float32Array | Int32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** The live buffers among a call's arguments, also inside lists (sumSquares' xs). */
function liveBuffers(args: ArgObject): NativeBuffer[] {
  return [...new Set(Object.values(args).flatMap((v) => (Array.isArray(v) ? v : [v])).filter(isLive))];
}

/**
 * One call with a bounds check: the output buffer is filled with a sentinel first; on success
 * every element outside the call's declared write region must still hold it, and every other
 * buffer passed must be bit-for-bit unchanged. `raw`: the JS arguments, when not [args].
 */
function checkedCall(c: Campaign, t: Template, args: ArgObject, outOfBounds: string[], raw?: unknown[], mustThrow = false): void {
  const outBuf = t.out !== undefined && isLive(args[t.out]) ? (args[t.out] as NativeBuffer) : null;
  if (outBuf && outBuf.numel > 0) native.fill({ out: outBuf, offset: 0, n: outBuf.numel, value: outBuf.dtype === 'float32' ? SENTINEL : -777 });
  const inputs = liveBuffers(args).filter((b) => b !== outBuf);
  const before = inputs.map((b) => bits(b.read(0, b.numel)).slice());
  const outBefore = outBuf ? bits(outBuf.read(0, outBuf.numel)).slice() : null;
  const call = raw ?? [args];
  if (!c.call(t.name, () => invokeRaw(t.name, call), call, false, mustThrow)) return;
  inputs.forEach((b, k) => {
    const now = bits(b.read(0, b.numel));
    if (now.some((v, i) => v !== before[k][i])) outOfBounds.push(`${t.name}(${show(args)}) changed an input`);
  });
  if (outBuf && t.writes) {
    const allowed = new Set<number>();
    let visited = 0;
    for (const i of t.writes(args)) {
      allowed.add(i);
      if (++visited > 1_000_000) return;
    }
    const now = bits(outBuf.read(0, outBuf.numel));
    for (let i = 0; i < now.length; i++) {
      if (!allowed.has(i) && now[i] !== outBefore![i]) {
        outOfBounds.push(`${t.name}(${show(args)}) wrote element ${i} outside its region`);
        break;
      }
    }
  }
}

describe('near-valid calls: one argument of a valid call mutated at a time', () => {
  test('the templates name exactly the keys of their kernels', () => {
    for (const t of templates()) expect(Object.keys(t.args), t.name).toEqual(KERNELS[t.name]);
  });

  for (const level of cpuLevels()) {
    test(`every template at cpu level ${level}`, () => {
      const previous = native.info().cpuLevel;
      dv.setCpuLevel(level);
      try {
        const c = new Campaign();
        const outOfBounds: string[] = [];
        const list = templates();
        // Inputs hold values in every kernel's domain (positive for log/sqrt, moderate for exp).
        for (const t of list) {
          for (const a of liveBuffers(t.args)) if (a.dtype === 'float32') native.randomFill({
            out: a, offset: 0, n: a.numel, distribution: 'uniform', seed: 3, counter: 0, a: 0.25, b: 2
          });
        }
        for (const t of list) {
          const keys = KERNELS[t.name];
          const spec = PROTOCOLS.get(t.name)?.args ?? undefined;
          // The template itself must be valid and stay in bounds.
          checkedCall(c, t, { ...t.args }, outOfBounds);
          expect(c.violations).toEqual([]);
          expect(c.succeeded, `the template of ${t.name} is valid`).toBeGreaterThan(0);
          const buffers = liveBuffers(t.args);
          keys.forEach((key, i) => {
            const value = t.args[key];
            for (const m of mutations(value, spec?.[i], buffers.filter((b) => b !== value))) checkedCall(c, t, { ...t.args, [key]: m }, outOfBounds);
            // Without the key, or with it spelled otherwise: rejected, whatever the other values.
            const { [key]: _dropped, ...without } = t.args;
            void _dropped;
            checkedCall(c, t, without, outOfBounds, undefined, true);
            checkedCall(c, t, withKey({ ...without }, key.toUpperCase() === key ? key.toLowerCase() : key.toUpperCase(), value), outOfBounds, undefined, true);
          });
          // The call shape: an unknown key, positional arguments, nothing, two objects.
          checkedCall(c, t, withKey({ ...t.args }, 'extra', 0), outOfBounds, undefined, true);
          checkedCall(c, t, t.args, outOfBounds, Object.values(t.args), true);
          checkedCall(c, t, t.args, outOfBounds, [], true);
          checkedCall(c, t, t.args, outOfBounds, [{ ...t.args }, { ...t.args }], true);
        }
        tally(c);
        c.expectClean();
        expect(outOfBounds.slice(0, 10)).toEqual([]);
        // Valid mutations exist (other op names, offsets one lower, aliasing): they ran and were checked.
        expect(c.succeeded).toBeGreaterThan(50);
      } finally {
        dv.setCpuLevel(previous);
      }
    });
  }
});
