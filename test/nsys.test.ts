/**
 * Nsight Systems itself (docs/profiling.md): `nsys profile -t nvtx` on a short script that runs a
 * user range around a GEMM and a sampling step, then `nsys stats -r nvtxsum`: the user range, the
 * library's phase range and the kernel ranges with their sizes must be in the summary. Skipped,
 * saying why, where nsys is not installed, the addon has no NVTX, or dist/ is not built.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';

import { nvtxStatus } from '../lib/backend/cpu/runtime.js';
import { packageRoot } from '../lib/package_root.js';

const nsys = spawnSync('sh', ['-c', 'command -v nsys'], { encoding: 'utf8' }).stdout.trim();
const dist = join(packageRoot(), 'dist', 'lib', 'index.js');
// Debian's nsys 2022.4 may not find its importer (docs/profiling.md): convert by hand then.
const IMPORTER = '/usr/lib/nsight-systems/host-linux-x64/QdstrmImporter';

const skipReason = !nsys
  ? 'nsys is not installed (Debian: apt-get install nsight-systems from non-free; see docs/profiling.md)'
  : !nvtxStatus().nvtx
    ? 'this addon was built without NVTX3 (CMake found no nvtx3/nvToolsExt.h)'
    : !existsSync(dist)
      ? 'dist/ is not built (npx tsc -p tsconfig.json)'
      : '';

const SCRIPT = String.raw`
import { pathToFileURL } from 'node:url';
const dv = await import(pathToFileURL(process.argv[2]).href);
dv.profiler.range('nsys_test_phase', () => {
  const a = dv.randn([64, 96], { generator: new dv.Generator(1) });
  const b = dv.randn([96, 80], { generator: new dv.Generator(2) });
  dv.matmul(a, b).dispose();
  const model = new dv.DiffusionViT({ ...dv.PRESETS['iuvit-xs/4'], depth: 1 }, { seed: 0 });
  dv.generate(model, { count: 2, steps: 2, sampler: 'euler', seed: 0 });
});
`;

describe.skipIf(Boolean(skipReason))(`nsys${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  test('nsys profile -t nvtx sees the user range, the phase ranges and each kernel with its sizes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'diffvit-nsys-'));
    // Our own session, so that whatever nsys leaves running (its agent has been seen to outlive a
    // killed front end, spinning on a core) can be ended afterwards.
    const session = (attempt: number) => `diffvit-nsys-test-${process.pid}-${attempt}`;
    try {
      const script = join(dir, 'script.mjs');
      writeFileSync(script, SCRIPT);
      const out = join(dir, 'report');
      // The profile takes ~2 s; nsys itself was once seen to hang (killed after 120 s, under a
      // loaded machine): a hung attempt is ended with its session and tried once more.
      const profileOnce = (attempt: number) => spawnSync(nsys, ['profile', '--session-new', session(attempt), '-t', 'nvtx', '-s', 'none', '--force-overwrite', 'true',
        '-o', out, process.execPath, script, dist], { encoding: 'utf8', timeout: 120_000 });
      let run = profileOnce(1);
      if (run.status === null) {
        spawnSync('pkill', ['-f', `nsys.*${session(1)}`]);
        run = profileOnce(2);
      }
      expect(run.status, run.stderr + run.stdout).toBe(0);
      if (!existsSync(`${out}.nsys-rep`) && existsSync(`${out}.qdstrm`) && existsSync(IMPORTER)) {
        const imported = spawnSync(IMPORTER, ['-i', `${out}.qdstrm`], { encoding: 'utf8', timeout: 120_000 });
        expect(imported.status, imported.stderr).toBe(0);
      }
      expect(existsSync(`${out}.nsys-rep`), `nsys wrote no report:\n${run.stdout}\n${run.stderr}`).toBe(true);
      const stats = spawnSync(nsys, ['stats', '-q', '-r', 'nvtxsum', '-f', 'csv', `${out}.nsys-rep`], { encoding: 'utf8', timeout: 120_000 });
      expect(stats.status, stats.stderr).toBe(0);
      // The last CSV column is the range's text: "diffvit:<name>[ <sizes>]".
      const ranges = stats.stdout.split('\n').map((line) => /"?(diffvit:[^"]*)"?\s*$/.exec(line)?.[1]).filter(Boolean);
      expect(ranges).toContain('diffvit:nsys_test_phase');
      expect(ranges).toContain('diffvit:sample');
      expect(ranges).toContain('diffvit:step 0');
      expect(ranges).toContain('diffvit:gemm batch=1 m=64 n=80 k=96');
      expect(ranges.some((r) => r!.startsWith('diffvit:attentionForward batch=2 '))).toBe(true);
      expect(ranges.some((r) => r!.startsWith('diffvit:edmSamplerStep '))).toBe(true);
    } finally {
      for (const attempt of [1, 2]) spawnSync('pkill', ['-f', `nsys.*${session(attempt)}`]);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
