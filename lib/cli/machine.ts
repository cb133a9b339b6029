/** What machine this is, for `diffvit info` and benchmark reports. Node built-ins only. */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CPU model name (/proc/cpuinfo on Linux, else what Node reports). */
export function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // Not Linux: fall through to Node's view.
  }
  return os.cpus()[0]?.model.trim() || 'unknown';
}

/** Logical cores this process may use. */
export function logicalCores(): number {
  return os.availableParallelism();
}

/**
 * diffvit's package.json, found by walking up from this file (lib/cli in a checkout, dist/lib/cli
 * once compiled). Read without loading the native addon, so `--help` and `--version` work on a
 * machine where the addon is not built.
 */
export function packageJson(): { name: string; version: string; path: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'diffvit') return { name: pkg.name, version: pkg.version ?? '0.0.0', path: file };
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`diffvit: cannot find diffvit's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
