/**
 * The CUDA emulator's own self-test (native/cuda/emu/tests/selftest.cpp): indexing over 3-D grids,
 * __syncthreads and shared memory, every shuffle and vote against a scalar reference, atomics,
 * mma.sync m16n8k16 against a float64 product, deadlock detection, launch-configuration errors,
 * the device memory limit, stream capture and replay, events. Built with g++ and run once per
 * worker count (one worker, and the default); 'cuda-emulated' project only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect, test } from 'vitest';

test('the emulator passes its self-test with one worker and with the default pool', () => {
  const exe = join(mkdtempSync(join(tmpdir(), 'diffvit-emu-')), 'selftest');
  const sources = readdirSync('native/cuda/emu').filter((f) => f.endsWith('.cpp')).map((f) => `native/cuda/emu/${f}`);
  execFileSync('g++', ['-std=c++17', '-O1', '-DDV_CUDA_EMULATOR', '-I', 'native', 'native/cuda/emu/tests/selftest.cpp', ...sources,
    '-lpthread', '-o', exe], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const threads of ['1', '']) {
    const env = { ...process.env, DIFFVIT_EMU_THREADS: threads };
    if (!threads) delete env.DIFFVIT_EMU_THREADS;
    let out: string;
    try {
      out = execFileSync(exe, { env, encoding: 'utf8' });
    } catch (e) {
      throw new Error(`emulator self-test failed (DIFFVIT_EMU_THREADS=${threads || 'default'}):\n${(e as { stdout?: string }).stdout ?? ''}`);
    }
    expect(out).toMatch(/OK: 0 check\(s\) failed/);
    expect(out).toMatch(/PASS .*mma/i);
    expect(out).toMatch(/PASS .*deadlock/i);
  }
}, 300_000);
