/**
 * The backend seam: the kernel table agrees across its three spellings (lib/backend/kernels/*.ts,
 * native/addon/kernels.def, the built addon's kernelTable()), and a toy backend written here — one
 * object and one registerBackend() call — runs the ops whose kernels it has, bit for bit like the
 * CPU, with clear errors for everything it lacks.
 */
import { readdirSync, readFileSync } from 'node:fs';

import { afterAll, describe, expect, test } from 'vitest';

import { native } from '../lib/backend/cpu/addon.js';
import { KERNEL_NAMES, type KernelName } from '../lib/backend/kernel_names.js';
import * as dv from '../lib/index.js';
import { describeEachBackend, randomValues } from './helpers.js';
import { makeToyBackend } from './toy_backend.js';

// ---------------------------------------------------------------------------------------------
// One kernel table
// ---------------------------------------------------------------------------------------------

/** `name(args: { key: type; ... })` of every kernel declared in lib/backend/kernels/*.ts: each key with its type, in order. */
function tsKernelArgs(): Map<string, [string, string][]> {
  const dir = new URL('../lib/backend/kernels/', import.meta.url);
  const table = new Map<string, [string, string][]>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
    const text = readFileSync(new URL(file, dir), 'utf8');
    for (const m of text.matchAll(/^\s*(\w+)\(args: \{([^}]*)\}\)/gm)) {
      expect(table.has(m[1]), `${m[1]} declared twice (again in ${file})`).toBe(false);
      table.set(m[1], [...m[2].matchAll(/(\w+)\??\s*:\s*([^;]+)/g)].map((k) => [k[1], k[2].trim()]));
    }
  }
  return table;
}

/** `DV_KERNEL(name, F32("x", "rows cols"), "xOffset", ...)` of native/addon/kernels.def, in file order: each name with its declaration ('' for a value; a buffer's extent is skipped). */
function defKernelArgs(): Map<string, [string, string][]> {
  const text = readFileSync(new URL('../native/addon/kernels.def', import.meta.url), 'utf8');
  const table = new Map<string, [string, string][]>();
  for (const m of text.matchAll(/^DV_KERNEL\((\w+)((?:,\s*(?:\w+\("\w+"(?:, "[^"]+")?\)|"\w+"))*)\)$/gm)) {
    table.set(m[1], [...m[2].matchAll(/(\w+)\("(\w+)"(?:, "[^"]+")?\)|"(\w+)"/g)].map((k) => (k[1] ? [k[2], k[1]] : [k[3], ''])));
  }
  return table;
}

/** The buffer declaration of kernels.def that a TS argument type asks for ('' for a value). */
const BUFFER_KINDS: Record<string, readonly string[]> = {
  DeviceBuffer: ['F32', 'I32', 'ANY'],
  'DeviceBuffer | null': ['F32_OPT'],
  'DeviceBuffer[]': ['F32_LIST'],
};

describe('the kernel table', () => {
  const ts = tsKernelArgs(), def = defKernelArgs(), addon = native.kernelTable();
  const sorted = (names: Iterable<string>) => [...names].sort();

  test('KERNEL_NAMES, the kernels of lib/backend/kernels/*.ts, kernels.def and the addon name the same kernels', () => {
    expect(new Set(KERNEL_NAMES).size).toBe(KERNEL_NAMES.length);
    expect(sorted(ts.keys()), 'declared in lib/backend/kernels/*.ts').toEqual(sorted(KERNEL_NAMES));
    expect(sorted(def.keys()), 'native/addon/kernels.def').toEqual(sorted(KERNEL_NAMES));
    expect(sorted(Object.keys(addon)), 'kernelTable() of the built addon').toEqual(sorted(KERNEL_NAMES));
    // KERNEL_NAMES keeps kernels.def's order.
    expect([...KERNEL_NAMES]).toEqual([...def.keys()]);
  });

  const names = (args: [string, string][] | undefined) => args?.map(([n]) => n);

  test.each([...KERNEL_NAMES])('%s: lib/backend/kernels declares the arguments of kernels.def, in order, buffers as buffers', (name) => {
    expect(names(ts.get(name)), `${name} in lib/backend/kernels/*.ts`).toEqual(names(def.get(name)));
    const declared = new Map(def.get(name));
    for (const [arg, type] of ts.get(name)!) {
      const kinds = BUFFER_KINDS[type] ?? [''];
      expect(kinds, `${name}.${arg}: '${type}' in TS, ${declared.get(arg) || 'a value'} in kernels.def`).toContain(declared.get(arg));
    }
  });

  test.each([...KERNEL_NAMES])('%s: the built addon takes the arguments lib/backend/kernels declares', (name) => {
    expect(addon[name], `${name}: build/Release/diffvit.node disagrees with lib/backend/kernels (stale build? npm run build:native)`)
      .toEqual(names(ts.get(name)));
  });

  test('the CPU backend implements every kernel', () => {
    const cpu = dv.resolveDevice('cpu').backend;
    expect(KERNEL_NAMES.filter((k) => typeof cpu.kernels[k] !== 'function')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// A toy backend: buffers that wrap CPU buffers, a few kernels that unwrap them and run the CPU's
// ---------------------------------------------------------------------------------------------

const TOY_KERNELS = ['fill', 'randomFill', 'binary', 'unary', 'unaryGrad', 'reduceSum', 'copyStrided', 'axpby'] as const;

// Registered while the file is collected, so describeEachBackend runs its suites on 'toy' too.
dv.registerBackend(makeToyBackend('toy', TOY_KERNELS));
afterAll(() => dv.removeBackend('toy'));

/** The device list resolveDevice's errors print: 'cpu', 'toy', and 'cuda', 'cuda:N' where a CUDA device is usable. */
const knownDevices = () => dv.registeredBackends().map((b) => (b === 'cuda' ? "'cuda', 'cuda:N'" : `'${b}'`)).join(', ');
const bits = (t: dv.Tensor) => Array.from(new Uint32Array((t.data() as Float32Array).slice().buffer));

/** add, mul (broadcasting), exp, sum, mean and their backward on `device`: values and gradients, as bits. */
function toyChain(device: string): number[][] {
  return dv.scope(() => {
    const x = dv.tensor(Float32Array.from(randomValues(12, 1)), [3, 4], { device });
    const w = dv.tensor(Float32Array.from(randomValues(4, 2)), [1, 4], { device });
    x.requiresGrad = true;
    w.requiresGrad = true;
    const h = dv.mul(dv.add(x, w), w); // (x + w) * w, w broadcast over the rows
    const e = dv.exp(dv.mulScalar(h, 0.5));
    const rowSums = dv.sum(e, 1);
    const loss = dv.add(dv.sum(dv.mul(rowSums, rowSums)), dv.mean(e));
    expect([h, e, rowSums, loss].map((t) => t.device)).toEqual([device, device, device, device]);
    loss.backward();
    expect([x.grad!.device, w.grad!.device]).toEqual([device, device]);
    const out = [h, e, rowSums, loss, x.grad!, w.grad!].map(bits);
    x.grad!.dispose();
    w.grad!.dispose();
    return out;
  });
}

describeEachBackend('ops the toy backend has kernels for', ({ device }) => {
  test('match the CPU bit for bit, forward and backward (the CUDA kernels within float32 rounding)', () => {
    if (!device.startsWith('cuda')) {
      expect(toyChain(device)).toEqual(toyChain('cpu'));
      return;
    }
    // The device sums in another order (tree reductions): the same values to float32 rounding.
    const asFloats = (rows: number[][]) => rows.map((r) => Array.from(new Float32Array(new Uint32Array(r).buffer)));
    const got = asFloats(toyChain(device)), want = asFloats(toyChain('cpu'));
    got.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - want[i][j])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[i][j])))));
  });

  test('seeded draws match the CPU bit for bit', () => {
    const draw = (on: string) => dv.scope(() => bits(dv.randn([64], { device: on, generator: new dv.Generator(9) })));
    expect(draw(device)).toEqual(draw('cpu'));
  });
});

describe('a toy backend', () => {
  test('is one registerBackend() call; tensors are created on it', () => {
    expect(dv.registeredBackends()).toContain('toy');
    expect(dv.resolveDevice('toy').device).toBe('toy');
    dv.scope(() => {
      const z = dv.zeros([2, 3], { device: 'toy' });
      expect(z.device).toBe('toy');
      expect(z.toString()).toBe('Tensor([2, 3], float32, toy)');
      expect(Array.from(z.data())).toEqual([0, 0, 0, 0, 0, 0]);
      expect(dv.ones([2], { device: 'toy', dtype: 'int32' }).toArray()).toEqual(Int32Array.from([1, 1]));
      expect(dv.zerosLike(z).device).toBe('toy');
    });
    expect(() => dv.registerBackend(makeToyBackend('toy', TOY_KERNELS))).toThrow("diffvit.registerBackend: a backend named 'toy' is already registered");
  });

  test("to('cpu') and to('toy') copy values both ways, and the gradient flows back across", () => {
    dv.scope(() => {
      const values = Float32Array.from(randomValues(6, 3));
      const x = dv.tensor(values, [2, 3]);
      x.requiresGrad = true;
      const t = x.to('toy');
      expect(t.device).toBe('toy');
      expect(t.to('toy')).toBe(t); // already there: itself
      expect(bits(t.to('cpu'))).toEqual(bits(x));
      // A strided view travels as its values.
      expect(Array.from(t.transpose(0, 1).to('cpu').data())).toEqual(Array.from(x.transpose(0, 1).contiguous().data()));
      dv.sum(dv.exp(t)).backward();
      expect(x.grad!.device).toBe('cpu');
      expect(bits(x.grad!)).toEqual(dv.noGrad(() => bits(dv.exp(x))));
      x.grad!.dispose();
    });
  });

  test('frees its buffers: memory(device) counts them', () => {
    const before = dv.memory('toy').buffers;
    dv.scope(() => {
      toyChain('toy');
      dv.zeros([5], { device: 'toy' });
      expect(dv.memory('toy').buffers).toBe(before + 1);
    });
    expect(dv.memory('toy').buffers).toBe(before);
  });

  test("an op whose kernel it lacks says so: matmul needs 'gemm'", () => {
    dv.scope(() => {
      const a = dv.ones([2, 2], { device: 'toy' });
      expect(() => dv.matmul(a, a)).toThrow("diffvit.gemm: the 'toy' backend has no 'gemm' kernel");
      expect(() => dv.softmax(a)).toThrow("diffvit.softmax: the 'toy' backend has no 'softmax' kernel");
      const missing = KERNEL_NAMES.filter((k: KernelName) => !(TOY_KERNELS as readonly string[]).includes(k));
      expect(missing.length).toBe(KERNEL_NAMES.length - TOY_KERNELS.length);
    });
  });

  test('mixing devices in one op throws, naming both devices', () => {
    dv.scope(() => {
      const c = dv.ones([3]), t = dv.ones([3], { device: 'toy' });
      expect(() => dv.add(c, t)).toThrow("diffvit.binary: argument 'b' is on device 'toy' but argument 'a' is on 'cpu'");
      expect(() => dv.mul(t, c)).toThrow("diffvit.binary: argument 'b' is on device 'cpu' but argument 'a' is on 'toy'");
      expect(() => dv.copy_(c, t)).toThrow("argument 'dst' is on device 'cpu' but 'src' is on 'toy'");
      expect(() => dv.concat([c, t])).toThrow("diffvit.concat: argument 'tensors[1]' expected device 'cpu' (that of tensors[0]), received 'toy'");
    });
  });

  test("'cuda' throws why it is unavailable; 'cpu:1' and 'bogus' throw clear errors", () => {
    const reason = dv.runtimeInfo().cudaStatus;
    if (!dv.registeredBackends().includes('cuda')) {
      expect(() => dv.zeros([2], { device: 'cuda' })).toThrow(`device 'cuda' is not available: ${reason}`);
      expect(() => dv.ones([1]).to('cuda:1')).toThrow(`diffvit.to: device 'cuda:1' is not available: ${reason}`);
    }
    expect(() => dv.zeros([2], { device: 'cpu:1' })).toThrow("argument 'device': there is one 'cpu' device, received 'cpu:1'");
    expect(dv.resolveDevice('cpu:0').device).toBe('cpu');
    expect(() => dv.zeros([2], { device: 'bogus' }))
      .toThrow(`argument 'device' expected one of the devices of this build (${knownDevices()}), received 'bogus'`);
    expect(() => dv.ones([1]).to('CPU')).toThrow(`diffvit.to: argument 'device' expected a device string (${knownDevices()}), received 'CPU'`);
    expect(() => dv.randn([2], { device: 7 as unknown as string })).toThrow("argument 'device' expected a device string");
  });

  test('removeBackend takes it away again; the cpu cannot be removed', () => {
    const toy2 = makeToyBackend('toy2', TOY_KERNELS);
    dv.registerBackend(toy2);
    try {
      dv.scope(() => expect(dv.add(dv.ones([2], { device: 'toy2' }), 1).device).toBe('toy2'));
      expect(toy2.memoryStats().liveBuffers).toBe(0);
    } finally {
      dv.removeBackend('toy2');
    }
    expect(dv.registeredBackends()).not.toContain('toy2');
    expect(() => dv.zeros([1], { device: 'toy2' })).toThrow(`expected one of the devices of this build (${knownDevices()}), received 'toy2'`);
    expect(() => dv.removeBackend('cpu')).toThrow("diffvit.removeBackend: the 'cpu' backend cannot be removed");
  });
});

// ---------------------------------------------------------------------------------------------
// Every op on a backend that is not the CPU: a mirror with all the kernels
// ---------------------------------------------------------------------------------------------

/**
 * Each op runs on `device` from strided views where it matters (so the internal copies run too),
 * with its backward; returns every output and gradient as bits. An output, gradient or temporary
 * allocated on the CPU instead of the inputs' device fails the dispatch's same-device check.
 */
const OP_CASES: [string, (device: string) => dv.Tensor[]][] = [
  ['matmul (broadcast batch, transposed and copied operands)', (device) => {
    const a = param([2, 1, 3, 4], 1, device), bt = param([3, 5, 4], 2, device), c = param([3, 4, 2], 3, device);
    const e = param([4, 2], 4, device);
    const y = dv.matmul(a, bt.transpose(1, 2));
    const z = dv.matmul(c.permute([2, 0, 1]), e); // (2, 3, 4): neither row- nor column-major, copied
    return [...backwardAll([y, z], [a, bt, c, e]), y, z];
  }],
  ['linear and linearGelu (strided x, transposed weight)', (device) => {
    const x = param([2, 4, 3], 5, device), w = param([5, 4], 6, device), wt = param([4, 5], 7, device), b = param([5], 8, device);
    const y = dv.linear(x.transpose(1, 2), w, b), z = dv.linearGelu(x.transpose(1, 2), wt.transpose(0, 1), b);
    return [...backwardAll([y, z], [x, w, wt, b]), y, z];
  }],
  ['conv2d (im2col with bias; pointwise)', (device) => {
    const x = param([2, 3, 5, 5], 9, device), w = param([4, 3, 3, 3], 10, device), b = param([4], 11, device);
    const w1 = param([4, 3, 1, 1], 12, device);
    const y = dv.conv2d(x, w, b, { stride: 2, padding: 1 }), z = dv.conv2d(x.transpose(2, 3), w1);
    return [...backwardAll([y, z], [x, w, b, w1]), y, z];
  }],
  ['softmax, layerNorm (transposed views)', (device) => {
    const x = param([6, 3], 13, device), w = param([3], 14, device), b = param([3], 15, device);
    const y = dv.softmax(x.transpose(0, 1), 0), z = dv.layerNorm(x, w, b), u = dv.layerNorm(x.transpose(0, 1));
    return [...backwardAll([y, z, u], [x, w, b]), y, z, u];
  }],
  ['layerNormModulate, addGated (column slices of adaLN)', (device) => {
    const x = param([2, 3, 4], 16, device), ada = param([2, 12], 17, device), y = param([2, 3, 4], 18, device);
    const [shift, scale, gate] = dv.chunk(ada, 3, 1);
    const h = dv.layerNormModulate(x, shift, scale), o = dv.addGated(x, dv.unsqueeze(gate, 1), y);
    return [...backwardAll([h, o], [x, ada, y]), h, o];
  }],
  ['embedding', (device) => {
    const table = param([5, 3], 19, device), idx = dv.tensor([4, 0, 4, 2], [2, 2], { dtype: 'int32', device });
    const e = dv.embedding(table, idx);
    return [...backwardAll([e], [table]), e];
  }],
  ['attention, selfAttention', (device) => {
    const q = param([1, 3, 2, 4], 20, device), k = param([1, 3, 2, 4], 21, device), v = param([1, 3, 2, 4], 22, device);
    const qkv = param([1, 3, 24], 23, device);
    const o = dv.attention(q.permute([0, 2, 1, 3]), k.permute([0, 2, 1, 3]), v.permute([0, 2, 1, 3]));
    const s = dv.selfAttention(qkv, 2);
    return [...backwardAll([o, s], [q, k, v, qkv]), o, s];
  }],
  ['views, concat, stack, reductions, broadcasting', (device) => {
    const x = param([3, 4, 2], 24, device), y = param([4, 1], 25, device);
    const c = dv.concat([dv.slice(x, 1, 0, 2), dv.expand(dv.reshape(y, [1, 4, 1]), [3, 4, 2])], 1);
    const st = dv.stack([dv.sum(x, [0, 2]), dv.mean(x, 1).reshape([-1]).slice(0, 0, 4)], 0);
    const d = dv.div(dv.sub(x, y.transpose(0, 1).reshape([1, 4, 1])), dv.addScalar(dv.square(x), 1));
    return [...backwardAll([c, st, d], [x, y]), c, st, d];
  }],
  ['pools, resize, sumSquares, adamwUpdate (no autograd)', (device) => {
    const img = param([1, 2, 5, 5], 26, device, false);
    const out = [dv.maxPool2d(img, 3, { stride: 2, padding: 1 }), dv.avgPool2d(img.transpose(2, 3), 2),
      dv.resizeBilinear(img, [7, 3]), dv.sumSquares([img, img.transpose(1, 3)])];
    const p = param([6], 27, device, false), g = param([6], 28, device, false);
    const m = dv.zeros([6], { device }), v2 = dv.zeros([6], { device });
    dv.adamwUpdate(p, g, m, v2, { lr: 0.1, step: 1 });
    return [...out, p, m, v2];
  }],
];

/** A seeded float32 tensor on `device`, requiring grad unless said otherwise. */
function param(shape: number[], seed: number, device: string, requiresGrad = true): dv.Tensor {
  const t = dv.tensor(Float32Array.from(randomValues(shape.reduce((a, b) => a * b, 1), seed)), shape, { device });
  t.requiresGrad = requiresGrad;
  return t;
}

/** backward of sum_i <w_i, outputs_i> (seeded weights w_i); returns the inputs' gradients (taken off them: the caller disposes them). */
function backwardAll(outputs: dv.Tensor[], inputs: dv.Tensor[]): dv.Tensor[] {
  const device = outputs[0].device;
  const terms = outputs.map((o, i) => dv.sum(dv.mul(o, param([...o.shape], 100 + i, device, false))));
  terms.reduce((a, b) => dv.add(a, b)).backward();
  return inputs.map((t) => {
    expect(t.grad, `${t.toString()} got no gradient`).not.toBeNull();
    const g = t.grad!;
    t.grad = null;
    return g;
  });
}

describe('every op on another backend (a mirror of the CPU with all its kernels)', () => {
  test.each(OP_CASES)('%s: outputs and gradients on its device, bit for bit the CPU values', (_name, run) => {
    dv.registerBackend(makeToyBackend('mirror', KERNEL_NAMES));
    try {
      const results = (device: string) => dv.scope(() => {
        const out = run(device);
        expect(out.map((t) => t.device)).toEqual(out.map(() => device));
        const values = out.map(bits);
        for (const t of out) t.dispose(); // the gradients live outside every scope
        return values;
      });
      const cpu = results('cpu');
      expect(results('mirror')).toEqual(cpu);
      expect(dv.memory('mirror').buffers).toBe(0);
    } finally {
      dv.removeBackend('mirror');
    }
  });
});
