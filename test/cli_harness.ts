/**
 * Runs `diffvit` command lines in this process (lib/cli/cli.ts runCli) with the console captured,
 * optionally stopping each command where its checks end and its work would begin
 * (cliHooks.beforeWork): the CLI tests see exit codes and messages without training anything.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { vi } from 'vitest';

import { runCli } from '../lib/cli/cli.js';
import { cliHooks } from '../lib/cli/options.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The command passed all its checks and was about to work (stopped there when asked). */
  reachedWork: boolean;
}

const STOP = 'cli_harness: stopped before the work';

export async function cli(argv: string[], { stopBeforeWork = false } = {}): Promise<CliResult> {
  let stdout = '', stderr = '', reachedWork = false;
  const text = (args: unknown[]) => args.map(String).join(' ') + '\n';
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void (stdout += text(a)));
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void (stderr += text(a)));
  const warn = vi.spyOn(console, 'warn').mockImplementation((...a) => void (stderr += text(a)));
  // progress bars write to the stream itself
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  const before = cliHooks.beforeWork;
  cliHooks.beforeWork = () => {
    reachedWork = true;
    if (stopBeforeWork) throw new Error(STOP);
  };
  try {
    let code = await runCli(argv);
    if (stopBeforeWork && reachedWork && code === 1 && stderr.trim().endsWith(STOP)) {
      code = 0;
      stderr = stderr.replace(STOP + '\n', '');
    }
    return { code, stdout, stderr, reachedWork };
  } finally {
    cliHooks.beforeWork = before;
    for (const spy of [log, error, warn, write]) spy.mockRestore();
  }
}

/** Every file under `root` with its size and modification time (nothing when it does not exist). */
export function snapshot(root: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files[p] = `${statSync(p).size}@${statSync(p).mtimeMs}`;
    }
  };
  if (existsSync(root)) walk(root);
  return files;
}
