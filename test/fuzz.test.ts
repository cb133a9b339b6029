/**
 * "Nothing segfaults": thousands of malformed calls to every function the native addon exports.
 * Every call must either succeed or throw an Error whose message starts with "diffvit." — and
 * the process must live (this file finishing is the proof).
 *
 * Bindings are enumerated at run time, so kernels added later are fuzzed without editing this
 * file. For each one the fuzzer learns the argument list from the addon's own errors ("expected
 * 4 arguments (out, offset, n, value)", "argument 'op' expected one of 'neg', ...") until it has a
 * call that succeeds, then throws random and mutated arguments at it. The core bindings also have
 * hand-written valid templates that are mutated one argument at a time ("near-valid" calls); when
 * such a call succeeds, every element outside the region it may write is checked untouched and
 * every input checked unchanged, at every CPU kernel level.
 */
import { afterAll, describe, expect, test } from 'vitest';

import type { NativeBuffer } from '../lib/backend/kernels/core.js';
import { native } from '../lib/backend/cpu/addon.js';
import * as dv from '../lib/index.js';
import { cpuLevels } from './helpers.js';

type AnyFn = (...args: unknown[]) => unknown;
const addon = native as unknown as Record<string, unknown>;
const NB = native.NativeBuffer as unknown as new (...args: unknown[]) => NativeBuffer;

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
  if (v && typeof v === 'object') return depth > 1 ? '{…}' : `{${Object.keys(v).slice(0, 4).map((k) => `${k}: ${show((v as Record<string, unknown>)[k], depth + 1)}`).join(', ')}}`;
  return Object.is(v, -0) ? '-0' : String(v);
}

class Campaign {
  calls = 0;
  rejected = 0;
  succeeded = 0;
  readonly perBinding = new Map<string, number>();
  readonly violations: string[] = [];

  /** Runs one call; returns whether it succeeded. A throw that breaks the contract is recorded. */
  call(label: string, fn: () => unknown, args: readonly unknown[], allowEngineTypeErrors = false): boolean {
    this.calls++;
    this.perBinding.set(label, (this.perBinding.get(label) ?? 0) + 1);
    try {
      fn();
      this.succeeded++;
      return true;
    } catch (e) {
      this.rejected++;
      const ok = e instanceof Error && (e.message.startsWith('diffvit.') ||
        (allowEngineTypeErrors && e instanceof TypeError && ENGINE_TYPE_ERRORS.includes(e.message)));
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

type Kind = 'f32' | 'i32' | 'buffer' | 'int' | 'number' | 'bool' | 'choice' | 'ints' | 'unknown';
interface ArgSpec {
  name: string;
  kind: Kind;
  choices: string[];
}
interface Protocol {
  name: string;
  /** Argument list from the arity error; null when the binding did not say. */
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

function invoke(name: string, args: readonly unknown[]): unknown {
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
  const first = errorOf(() => invoke(name, []));
  if (first === null) return { name, args: [], template: [] };
  const arity = /argument '\(arguments\)' expected (\d+) arguments \(([^)]*)\)/.exec(first);
  if (!arity) return { name, args: null, template: null };
  const names = arity[2] ? arity[2].split(', ') : [];
  const args: ArgSpec[] = names.map((n) => ({ name: n, kind: 'unknown', choices: [] }));
  const values: unknown[] = names.map(() => undefined);
  const attempts = names.map(() => 0);
  for (let step = 0; step < 8 * names.length + 8; step++) {
    const message = errorOf(() => invoke(name, values));
    if (message === null) return { name, args, template: values };
    const m = /^diffvit\.[\w.]+: argument '([^']+)' expected (.*), received/s.exec(message);
    const i = m ? names.indexOf(m[1]) : -1;
    if (i < 0 || ++attempts[i] > 4) break;
    const expected = m![2], spec = args[i];
    const choices = /one of ((?:'[^']*'(?:, )?)+)/.exec(expected);
    const bound = />= (\d+)/.exec(expected);
    if (choices) {
      spec.kind = 'choice';
      spec.choices = [...choices[1].matchAll(/'([^']*)'/g)].map((c) => c[1]);
      values[i] = spec.choices[0];
    } else if (/NativeBuffer|dtype float32|dtype int32|elements/.test(expected)) {
      const wantsI32 = /int32/.test(expected) && !/float32/.test(expected);
      spec.kind = spec.kind === 'unknown' ? (wantsI32 ? 'i32' : /^a NativeBuffer/.test(expected) ? 'buffer' : 'f32') : spec.kind;
      values[i] = wantsI32 ? VALID_I32[1] : VALID_F32[5];
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

const BINDINGS = Object.keys(addon).filter((k) => k !== 'NativeBuffer' && typeof addon[k] === 'function').sort();
const PROTOCOLS = new Map(BINDINGS.map((name) => [name, learn(name)]));

describe('random malformed calls to every binding', () => {
  test('the binding list is enumerated from the addon and the protocols were learned', () => {
    for (const core of ['fill', 'copyStrided', 'randomFill', 'unary', 'unaryGrad', 'binary', 'axpby', 'reduceSum', 'gemm', 'info', 'memoryStats']) {
      expect(BINDINGS).toContain(core);
    }
    // Every binding the core defines validates its argument count and reaches a successful call.
    for (const name of ['fill', 'copyStrided', 'unary', 'binary', 'reduceSum', 'gemm', 'axpby', 'randomFill']) {
      expect(PROTOCOLS.get(name)!.template, `no valid call learned for ${name}`).not.toBeNull();
    }
  });

  test.each(BINDINGS)('%s', (name) => {
    const c = new Campaign();
    const rng = new Rng(hashString(name));
    const p = PROTOCOLS.get(name)!;
    const arity = p.args?.length ?? 3;
    for (let i = 0; i < 400; i++) {
      let args: unknown[];
      const mode = rng.next();
      if (mode < 0.1) {
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
      c.call(name, () => invoke(name, args), args);
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
          if (!['f32', 'i32', 'buffer'].includes(spec.kind)) return;
          lookAlikes.forEach((fake, k) => {
            const args = [...p.template!];
            args[i] = fake;
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
  const b = (n: number) => VALID_F32.find((x) => x.numel === n)!;

  // [label, binding, args, must it throw?]
  const CASES: [string, string, unknown[], boolean][] = [
    // Offsets and counts at and past the end of a buffer.
    ['fill: n = 0 at offset = numel', 'fill', [b(17), 17, 0, 1], false],
    ['fill: one past the end', 'fill', [b(17), 17, 1, 1], true],
    ['fill: offset 2^53', 'fill', [b(17), 2 ** 53, 1, 1], true],
    ['fill: offset + n overflows int64', 'fill', [b(17), 2 ** 50, 2 ** 40, 1], true],
    ['fill: zero-size buffer, n = 0', 'fill', [b(0), 0, 0, 1], false],
    ['fill: zero-size buffer, n = 1', 'fill', [b(0), 0, 1, 1], true],
    ['fill: int32 buffer with a fractional value', 'fill', [VALID_I32[0], 0, 1, 0.5], true],
    ['unary: n = 2^40 on a small buffer', 'unary', ['exp', b(64), 0, b(64), 0, 2 ** 40, 0, 0], true],
    ['unary: in-place (x and out the same buffer)', 'unary', ['exp', b(64), 0, b(64), 0, 64, 0, 0], false],
    ['unary: int32 buffers', 'unary', ['exp', VALID_I32[0], 0, VALID_I32[0], 0, 1, 0, 0], true],
    // Strided extents whose arithmetic overflows int64.
    ['copyStrided: extent overflow', 'copyStrided', [b(64), 0, [2 ** 40, 2 ** 40], b(64), 0, [2 ** 40, 2 ** 40], [2 ** 40, 2 ** 40]], true],
    ['copyStrided: 9 dims', 'copyStrided', [b(64), 0, new Array(9).fill(0), b(64), 0, new Array(9).fill(0), new Array(9).fill(1)], true],
    ['copyStrided: strides shorter than shape', 'copyStrided', [b(64), 0, [1], b(64), 0, [4, 1], [4, 4]], true],
    ['copyStrided: negative stride', 'copyStrided', [b(64), 0, [-1], b(64), 0, [1], [4]], true],
    ['copyStrided: float32 to int32', 'copyStrided', [b(64), 0, [1], VALID_I32[0], 0, [1], [4]], true],
    // Zero strides read one element many times; on the destination they would make the kernel
    // loop over an element count the buffers never bound (2^80 here wraps int64 to 0).
    ['copyStrided: broadcast source (stride 0)', 'copyStrided', [b(1), 0, [0, 0], b(64), 0, [8, 1], [8, 8]], false],
    ['copyStrided: 2^80 elements through zero strides', 'copyStrided', [b(1), 0, [0, 0], b(1), 0, [0, 0], [2 ** 40, 2 ** 40]], true],
    ['copyStrided: 2^70 elements through zero strides', 'copyStrided', [b(1), 0, [0, 0], b(1), 0, [0, 0], [2 ** 40, 2 ** 30]], true],
    ['copyStrided: destination with a zero stride (overlapping writes)', 'copyStrided', [b(64), 0, [4, 1], b(64), 0, [0, 1], [4, 4]], true],
    ['copyStrided: empty shape, zero strides (nothing to write)', 'copyStrided', [b(1), 0, [0, 0, 0], b(1), 0, [0, 3, 1], [2, 0, 3]], false],
    ['copyStrided: overlapping destination rows', 'copyStrided', [b(64), 0, [4, 1], b(64), 0, [1, 1], [4, 4]], true],
    ['binary: 2^80 broadcast elements', 'binary', ['add', b(1), 0, [0, 0], b(1), 0, [0, 0], b(64), 0, [2 ** 40, 2 ** 40]], true],
    ['binary: out too short for the shape', 'binary', ['add', b(64), 0, [8, 1], b(64), 0, [8, 1], b(17), 0, [8, 8]], true],
    // GEMM leading dimensions, batch strides and empty products.
    ['gemm: lda < k', 'gemm', [b(64), 0, b(64), 0, b(64), 0, 1, 4, 4, 4, false, false, 1, 0, 0, 0, 0, 3, 4, 4], true],
    ['gemm: batch 2^40 with broadcast A/B and C stride 0', 'gemm', [b(64), 0, b(64), 0, b(64), 0, 2 ** 40, 1, 1, 1, false, false, 1, 0, 0, 0, 0, 1, 1, 1], true],
    ['gemm: batch 2^40, C stride 1', 'gemm', [b(64), 0, b(64), 0, b(64), 0, 2 ** 40, 1, 1, 1, false, false, 1, 0, 0, 0, 1, 1, 1, 1], true],
    ['gemm: k = 2^40 with m = 0 still needs B to hold k x n', 'gemm', [b(64), 0, b(64), 0, b(64), 0, 1, 0, 4, 2 ** 40, false, false, 1, 0, 0, 0, 0, 2 ** 40, 4, 4], true],
    ['gemm: k = 2^40 with m = n = 0 (nothing to read or write)', 'gemm', [b(64), 0, b(64), 0, b(64), 0, 1, 0, 0, 2 ** 40, false, false, 1, 0, 0, 0, 0, 2 ** 40, 0, 0], false],
    ['gemm: k = 0 (C = beta C)', 'gemm', [b(64), 0, b(64), 0, b(64), 0, 1, 4, 4, 0, false, false, 1, 0.5, 0, 0, 0, 0, 4, 4], false],
    ['gemm: transposed A too short', 'gemm', [b(17), 0, b(64), 0, b(64), 0, 1, 4, 4, 8, true, false, 1, 0, 0, 0, 0, 4, 4, 4], true],
    // Reductions with empty and huge axes.
    ['reduceSum: outer 2^40, r 0, inner 0', 'reduceSum', [b(64), 0, b(64), 0, 2 ** 40, 0, 0], false],
    ['reduceSum: r 2^40 over an empty inner axis', 'reduceSum', [b(64), 0, b(64), 0, 1, 2 ** 40, 0], false],
    ['reduceSum: outer*r*inner overflows int64', 'reduceSum', [b(64), 0, b(64), 0, 2 ** 40, 2 ** 40, 2 ** 40], true],
    ['reduceSum: r = 0 (sums of nothing)', 'reduceSum', [b(64), 0, b(64), 0, 4, 0, 4], false],
    ['sumSquares: n = 0 on a zero-size buffer', 'sumSquares', [b(0), 0, 0], false],
    ['randomFill: counter 2^53', 'randomFill', [b(64), 0, 64, 'normal', 1, 2 ** 53, 0, 1], false],
    ['randomFill: counter past 2^53', 'randomFill', [b(64), 0, 64, 'normal', 1, 2 ** 60, 0, 1], true],
    ['randomFill: std NaN', 'randomFill', [b(64), 0, 64, 'normal', 1, 0, 0, NaN], true],
    ['setThreads: 0 threads', 'setThreads', [0], true],
    ['setThreads: 2^31 threads', 'setThreads', [2 ** 31], true],
    ['setCpuLevel: unknown level', 'setCpuLevel', ['avx1024'], true],
  ];

  test.each(CASES)('%s', (_label, name, args, mustThrow) => {
    const c = new Campaign();
    const ok = c.call(name, () => invoke(name, args), args);
    tally(c);
    c.expectClean();
    expect(ok, mustThrow ? 'must be rejected' : 'must be accepted').toBe(!mustThrow);
  });
});

// ---------------------------------------------------------------------------------------------
// Near-valid calls: valid templates of the core bindings, one argument mutated at a time

interface Template {
  name: string;
  args: unknown[];
  /** Index of the argument written to (none for pure queries). */
  out?: number;
  /** Elements of the output buffer that a successful call with `args` may write. */
  writes?: (args: unknown[]) => Iterable<number>;
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
    { name: 'fill', args: [OUT, 5, 37, 2.5], out: 0, writes: (a) => range(n(a[1]), n(a[2])) },
    { name: 'fill', args: [I, 3, 21, -7], out: 0, writes: (a) => range(n(a[1]), n(a[2])) },
    { name: 'copyStrided', args: [X, 7, [40, 1, 5], OUT, 3, [1, 60, 12], [3, 5, 4]], out: 3, writes: (a) => strided(n(a[4]), arr(a[5]), arr(a[6])) },
    // The bias broadcast of linear(): a zero source stride.
    { name: 'copyStrided', args: [X, 2, [0, 1], OUT, 1, [19, 1], [6, 19]], out: 3, writes: (a) => strided(n(a[4]), arr(a[5]), arr(a[6])) },
    { name: 'randomFill', args: [OUT, 9, 33, 'normal', 5, 7, 0.5, 2], out: 0, writes: (a) => range(n(a[1]), n(a[2])) },
    { name: 'unary', args: ['gelu_tanh', X, 3, OUT, 11, 77, 0.5, 0.25], out: 3, writes: (a) => range(n(a[4]), n(a[5])) },
    { name: 'unaryGrad', args: ['silu', X, 1, Y, 2, OUT, 3, 45, 1, 0], out: 5, writes: (a) => range(n(a[6]), n(a[7])) },
    { name: 'binary', args: ['mul', X, 4, [17, 0, 1], Y, 1, [0, 17, 1], OUT, 6, [3, 5, 17]], out: 7,
      writes: (a) => range(n(a[8]), arr(a[9]).reduce((p, s) => p * s, 1)) },
    { name: 'axpby', args: [OUT, 2, X, 5, 67, 0.5, -1.5], out: 0, writes: (a) => range(n(a[1]), n(a[4])) },
    { name: 'reduceSum', args: [X, 3, OUT, 2, 3, 7, 11], out: 2, writes: (a) => range(n(a[3]), n(a[4]) * n(a[6])) },
    { name: 'reduceSum', args: [X, 1, OUT, 4, 5, 33, 1], out: 2, writes: (a) => range(n(a[3]), n(a[4]) * n(a[6])) },
    { name: 'sumSquares', args: [X, 3, 101] },
    // C (2 batches of 5 x 7, ldc 9, batch stride 50) = A (5 x 6, lda 8) · Bᵀ (B stored 7 x 6, ldb 6).
    { name: 'gemm', args: [X, 1, Y, 2, OUT, 3, 2, 5, 7, 6, false, true, 1, 0.5, 40, 0, 50, 8, 6, 9], out: 4,
      writes: (a) => (function* () {
        for (let bt = 0; bt < n(a[6]); bt++) for (let i = 0; i < n(a[7]); i++) yield* range(n(a[5]) + bt * n(a[16]) + i * n(a[19]), n(a[8]));
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
    const out: unknown[] = [value.slice(0, -1), [...value, 1], [], new Array(9).fill(1), new Array(1_000_000), Int32Array.from(value), value.map((x) => [x])];
    value.forEach((_, i) => {
      for (const bad of [0, 1, -1, 1.5, NaN, 2 ** 40, 2 ** 40 + 1, 2 ** 60, '1', null]) {
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

/**
 * One call with a bounds check: the output buffer is filled with a sentinel first; on success
 * every element outside the call's declared write region must still hold it, and every other
 * buffer passed must be bit-for-bit unchanged.
 */
function checkedCall(c: Campaign, t: Template, args: unknown[], outOfBounds: string[]): void {
  const outBuf = t.out !== undefined && isLive(args[t.out]) ? (args[t.out] as NativeBuffer) : null;
  if (outBuf && outBuf.numel > 0) native.fill({ out: outBuf, offset: 0, n: outBuf.numel, value: outBuf.dtype === 'float32' ? SENTINEL : -777 });
  const inputs = [...new Set(args.filter(isLive))].filter((b) => b !== outBuf);
  const before = inputs.map((b) => bits(b.read(0, b.numel)).slice());
  const outBefore = outBuf ? bits(outBuf.read(0, outBuf.numel)).slice() : null;
  if (!c.call(t.name, () => invoke(t.name, args), args)) return;
  inputs.forEach((b, k) => {
    const now = bits(b.read(0, b.numel));
    if (now.some((v, i) => v !== before[k][i])) outOfBounds.push(`${t.name}(${args.map((a) => show(a)).join(', ')}) changed an input`);
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
        outOfBounds.push(`${t.name}(${args.map((a) => show(a)).join(', ')}) wrote element ${i} outside its region`);
        break;
      }
    }
  }
}

describe('near-valid calls: one argument of a valid call mutated at a time', () => {
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
          for (const a of t.args) if (isLive(a) && a.dtype === 'float32') native.randomFill({
            out: a, offset: 0, n: a.numel, distribution: 'uniform', seed: 3, counter: 0, a: 0.25, b: 2
          });
        }
        for (const t of list) {
          const spec = PROTOCOLS.get(t.name)?.args ?? undefined;
          // The template itself must be valid and stay in bounds.
          checkedCall(c, t, [...t.args], outOfBounds);
          expect(c.violations).toEqual([]);
          const buffers = [...new Set(t.args.filter(isLive))];
          t.args.forEach((value, i) => {
            for (const m of mutations(value, spec?.[i], buffers.filter((b) => b !== value))) {
              const args = [...t.args];
              args[i] = m;
              checkedCall(c, t, args, outOfBounds);
            }
          });
          checkedCall(c, t, t.args.slice(0, -1), outOfBounds);
          checkedCall(c, t, [...t.args, 0], outOfBounds);
          checkedCall(c, t, [], outOfBounds);
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
