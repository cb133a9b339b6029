/**
 * The seam between `diffvit bench` and the benchmarks. They live in bench/, outside the library:
 * lib/ never imports them. The bench entry (bench/run.ts, built to dist/bench/run.js) registers its
 * suite here when it loads; the CLI loads the entry installed beside it by location, at run time,
 * and runs whatever registered.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchSuite {
  /** Expands 'all' (or no names: every benchmark) and checks the names; throws an Error naming the valid ones otherwise. */
  resolve(names: readonly string[]): string[];
  /** Runs the named benchmarks, prints the table and writes the JSON report (to `out`, else bench/results/). */
  run(names: string[], out?: string): Promise<unknown>;
}

let registered: BenchSuite | null = null;

/** Called by the bench entry as it loads. */
export function registerBenchSuite(suite: BenchSuite): void {
  registered = suite;
}

/**
 * The registered suite, loading the bench entry first if none has registered: <root>/bench/run.js
 * from this file's <root>/lib/cli/ (dist/ when installed; a source checkout run through a
 * TypeScript loader has run.ts there).
 */
export async function loadBenchSuite(): Promise<BenchSuite> {
  if (registered) return registered;
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');
  const entry = ['run.js', 'run.ts'].map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!entry) {
    throw new Error(`diffvit bench: the benchmarks are not in this installation (no ${join(dir, 'run.js')}); ` +
      'run them from a source checkout: npm run build && npm run bench');
  }
  await import(pathToFileURL(entry).href);
  if (!registered) throw new Error(`diffvit bench: ${entry} registered no benchmarks`);
  return registered;
}
