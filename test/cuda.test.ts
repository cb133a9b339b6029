/**
 * The CUDA backend's runtime: device, memory, copies, graphs and errors. In the plain test run the
 * addon has no usable device (no GPU here), and these tests check that every entry point says why;
 * in the emulated run (vitest project 'cuda-emulated': build-emu/diffvit_cuda_emu.node, the CUDA
 * code on the project's CPU emulator) and on a real GPU they exercise the backend itself.
 */
import { describe, expect, test } from 'vitest';

import * as dv from '../lib/index.js';
import { native } from '../lib/backend/cpu/addon.js';

const usable = dv.cuda.isAvailable();
const reason = dv.runtimeInfo().cudaStatus;

describe('without a usable CUDA device', () => {
  test.skipIf(usable)(`every CUDA entry point throws the reason${usable ? ' (skipped: a CUDA device is usable here)' : ''}`, () => {
    expect(dv.cuda.info().usable).toBe(false);
    expect(reason.length).toBeGreaterThan(10);
    expect(() => dv.zeros([2], { device: 'cuda' })).toThrow(/device 'cuda' is not available/);
    expect(() => dv.cuda.graph(() => 0)).toThrow(/no CUDA device is usable/);
    expect(() => dv.cuda.time(() => {})).toThrow(/no CUDA device is usable/);
    expect(() => new native.NativeBuffer('cuda', 'float32', 4)).toThrow(/diffvit\.(alloc|NativeBuffer)/);
  });
});

describe.skipIf(!usable)(`on the CUDA device (${usable ? dv.cuda.info().name : `skipped: ${reason}`})`, () => {
  test('info names the device, its architectures and the GEMM path', () => {
    const info = dv.cuda.info();
    expect(info.usable).toBe(true);
    expect(info.name.length).toBeGreaterThan(0);
    expect(info.architectures.length).toBeGreaterThan(0);
    expect(info.gemm.length).toBeGreaterThan(0);
    expect(dv.registeredBackends()).toContain('cuda');
  });

  test('tensors round-trip between host and device bit for bit, with gradients back to the source', () => {
    const values = Float32Array.from({ length: 1031 }, (_, i) => Math.sin(i * 0.37) * 1e3 + 1e-7 * i);
    const x = dv.tensor(values, [1031], { device: 'cpu' });
    x.requiresGrad = true;
    const d = x.to('cuda');
    expect(d.device).toBe('cuda:0');
    expect(Array.from(d.toArray())).toEqual(Array.from(values));
    const back = d.mul(dv.full([1031], 3, { device: 'cuda' })).to('cpu');
    back.sum().backward();
    expect(Array.from(x.grad!.toArray()).every((g) => g === 3)).toBe(true);
    expect(x.grad!.device).toBe('cpu');
  });

  test('an op mixing devices names both arguments', () => {
    const a = dv.ones([3], { device: 'cuda' }), b = dv.ones([3], { device: 'cpu' });
    expect(() => a.add(b)).toThrow(/on device 'cpu' but argument '\w+' is on 'cuda:0'|on device 'cuda:0' but argument '\w+' is on 'cpu'/);
  });

  test('the addon itself refuses buffers of two devices in one kernel call, naming both', () => {
    const onCuda = new native.NativeBuffer('cuda', 'float32', 4), onCpu = new native.NativeBuffer('cpu', 'float32', 4);
    try {
      expect(() => native.axpby({ dst: onCuda, dstOffset: 0, src: onCpu, srcOffset: 0, n: 4, alpha: 1, beta: 1 }))
        .toThrow("diffvit.axpby: argument 'src' expected a buffer on cuda like 'dst', received one on cpu");
      expect(() => native.sumSquares({ xs: [onCuda, onCpu], offsets: [0, 0], counts: [4, 4], out: onCuda, outOffset: 0 }))
        .toThrow("diffvit.sumSquares: argument 'xs[1]' expected a buffer on cuda like 'xs[0]', received one on cpu");
    } finally {
      onCuda.dispose();
      onCpu.dispose();
    }
  });

  test('the caching allocator reuses freed blocks, counts live bytes, and empties its cache', () => {
    dv.synchronize('cuda');
    const before = native.cudaMemoryStats!();
    for (let i = 0; i < 5; i++) dv.zeros([4096], { device: 'cuda' }).dispose();
    const after = native.cudaMemoryStats!();
    expect(after.totalAllocations - before.totalAllocations).toBeLessThanOrEqual(1);
    expect(after.liveBytes).toBe(before.liveBytes);
    expect(after.cachedBytes).toBeGreaterThanOrEqual(4096 * 4);
    dv.emptyCache('cuda');
    expect(native.cudaMemoryStats!().cachedBytes).toBe(0);
    expect(dv.memory('cuda').bytes).toBe(after.liveBytes);
  });

  test.skipIf(!dv.cuda.info().emulated)(`out of memory is an Error with the requested and free sizes, and the allocator stays usable${dv.cuda.info().emulated ? '' : ' (skipped: only the emulator can lower the device memory limit)'}`, () => {
    const limit = 64 << 20;
    native.cudaEmulatorSetMemoryLimit!(limit);
    try {
      const keep = dv.zeros([4 << 20], { device: 'cuda' }); // 16 MiB
      expect(() => dv.zeros([16 << 20], { device: 'cuda' })).toThrow(/CUDA out of memory: tried to allocate 64\.0 MiB .* free of 64\.0 MiB/);
      const small = dv.full([1000], 2, { device: 'cuda' });
      expect(small.sum().item()).toBe(2000);
      keep.dispose();
      small.dispose();
    } finally {
      native.cudaEmulatorSetMemoryLimit!(8 * 2 ** 30);
    }
  });

  test('a graph replays every captured kernel into the same tensors, fed in place', () => {
    const x = dv.tensor([1, 2, 3, 4], [4], { device: 'cuda' });
    const before = native.cudaGraphCount!();
    const g = dv.cuda.graph(() => x.mul(x).add(x).mul(dv.full([4], 0.5, { device: 'cuda' })));
    expect(native.cudaGraphCount!()).toBe(before + 1);
    expect(Array.from(g.result.toArray())).toEqual([1, 3, 6, 10]);
    dv.copy_(x, dv.tensor([10, -1, 0.5, 7], [4], { device: 'cuda' }));
    g.replay();
    expect(Array.from(g.result.toArray())).toEqual([55, 0, 0.375, 28]);
    g.replay(); // idempotent: same inputs, same outputs
    expect(Array.from(g.result.toArray())).toEqual([55, 0, 0.375, 28]);
    g.dispose();
    expect(native.cudaGraphCount!()).toBe(before);
    expect(() => g.replay()).toThrow(/disposed/);
    expect(g.result.toArray()[0]).toBe(55); // the result outlives the graph
  });

  test('reading a tensor during capture fails clearly and leaves no capture behind', () => {
    const x = dv.ones([8], { device: 'cuda' });
    expect(() => dv.cuda.graph(() => x.add(x).sum().item(), { warmup: 0 })).toThrow(/while a CUDA graph is being captured/);
    const g = dv.cuda.graph(() => x.add(x), { warmup: 0 }); // capture works again afterwards
    g.replay();
    expect(g.result.sum().item()).toBe(16);
    g.dispose();
  });

  test('graph options are validated', () => {
    expect(() => dv.cuda.graph(() => 0, { warmup: -1 })).toThrow(/option 'warmup' expected an integer >= 0/);
  });

  test('cuda.time measures the device time of queued work', () => {
    const a = dv.randn([64, 64], { device: 'cuda' });
    const ms = dv.cuda.time(() => {
      dv.matmul(a, a).dispose();
    });
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(ms)).toBe(true);
  });
});
