/**
 * ThreadSanitizer over the emulated CUDA kernels (scripts/cuda-race-check.sh): the emulator catches
 * deliberately racy kernels, and the attention and fused EDM kernels pass their reference checks
 * with no data race reported. Runs in the 'cuda-emulated' project only (it builds its own programs).
 */
import { execFileSync } from 'node:child_process';

import { expect, test } from 'vitest';

test('emulated attention and EDM kernels are race-free under ThreadSanitizer, and a racy kernel is caught', () => {
  let output = '';
  try {
    output = execFileSync('bash', ['scripts/cuda-race-check.sh', 'build-emu/tsan'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(`scripts/cuda-race-check.sh failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
  expect(output).toMatch(/clean tests: no race reported \(ok\)/);
  expect(output).toMatch(/racy test \w+: data race reported \(ok\)/);
  expect(output).toMatch(/attention_check: passed, no data race reported/);
  expect(output).toMatch(/edm_check: passed, no data race reported/);
}, 900_000);
