/** The PyTorch twin as a speed baseline: where it is, whether it can run, and running a snippet of it. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../lib/package_root.js';
import { runtimeInfo } from '../lib/runtime.js';

const PYTHON = '/usr/bin/python3';
const INSTALL = 'apt-get install -y python3-torch';

export function twinPath(): string {
  return join(packageRoot(), '..', 'shared', 'reference', 'diffvit_torch.py');
}

/** Why the twin cannot run here, or null when it can. */
export function twinMissing(): string | null {
  if (!existsSync(PYTHON) || spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) {
    return `PyTorch not installed (${INSTALL})`;
  }
  if (!existsSync(twinPath())) return `the twin is not at ${twinPath()}`;
  return null;
}

/**
 * Thread counts the twin is timed at: torch's default here (one: Debian's build starts its OpenMP
 * pool at 1) and diffvit's count. Baselines take the faster — on this 2-vCPU machine torch's
 * OpenMP and BLAS threads oversubscribe the cores and two threads are slower than one.
 */
export function twinThreadCounts(): number[] {
  return [...new Set([1, runtimeInfo().threads])];
}

/** The twin process's environment at `threads` threads (torch's OpenMP pool and the BLAS under it). */
function twinEnv(threads: number): NodeJS.ProcessEnv {
  const n = String(threads);
  return { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n };
}

/** Runs the twin's command line (e.g. its `bench`) and returns the JSON its last line prints. */
export function runTwin<T>(args: string[], threads: number): T {
  return JSON.parse(execFileSync(PYTHON, [twinPath(), ...args], { encoding: 'utf8', env: twinEnv(threads) }).trim().split('\n').pop()!) as T;
}

/** Runs a Python snippet with the twin imported as `t` and returns the JSON its last line prints. */
export function runTwinSnippet<T>(body: string, threads: number): T {
  const script = `
import sys, time, json, torch
sys.path.insert(0, ${JSON.stringify(join(twinPath(), '..'))})
import diffvit_torch as t
torch.set_num_threads(${threads})
${body}`;
  return JSON.parse(execFileSync(PYTHON, ['-c', script], { encoding: 'utf8', env: twinEnv(threads) }).trim().split('\n').pop()!) as T;
}
