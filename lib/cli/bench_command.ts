/** `diffvit bench`: the benchmarks of bench/ (see bench_suite.ts), a table and a JSON report. */
import { loadBenchSuite } from './bench_suite.js';
import { cliHooks, type OptionSpec, parseOptions, usage } from './options.js';

export const BENCH_OPTIONS = {
  out: { kind: 'out-file', arg: 'FILE', extensions: ['.json'] },
} as const satisfies Record<string, OptionSpec>;

export async function benchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions('bench', argv, BENCH_OPTIONS, { positionals: true });
  const suite = await loadBenchSuite();
  try {
    suite.resolve(positionals);
  } catch (e) {
    usage('bench', (e as Error).message.replace(/^diffvit bench: /, ''));
  }
  cliHooks.beforeWork('bench');
  await suite.run(positionals, values.out);
  return 0;
}
