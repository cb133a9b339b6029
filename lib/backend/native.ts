/**
 * Loads the native addon once. Its functions are the CPU kernel table: each family's signatures
 * are declared in lib/backend/kernels/<family>.ts and implemented in native/addon/bind_<family>.cpp.
 * DIFFVIT_ADDON=/path/to/diffvit.node loads another build (e.g. a debug or sanitizer build).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { CoreKernels } from './kernels/core.js';
import type { GemmKernels } from './kernels/gemm.js';
import type { AttentionKernels } from './kernels/attention.js';
import type { NormKernels } from './kernels/norm.js';
import type { ConvKernels } from './kernels/conv.js';
import type { OptimKernels } from './kernels/optim.js';
import type { EdmKernels } from './kernels/edm.js';
import type { PoolKernels } from './kernels/pool.js';
import type { FileKernels } from './kernels/file.js';
import type { FusedKernels } from './kernels/fused.js';

export interface NativeAddon extends CoreKernels, GemmKernels, AttentionKernels, NormKernels, ConvKernels, OptimKernels, EdmKernels, PoolKernels,
  FusedKernels, FileKernels {}

/** The package root: the nearest directory above this file holding diffvit's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'diffvit') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('diffvit: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

function loadAddon(): NativeAddon {
  const require = createRequire(import.meta.url);
  const candidates = process.env.DIFFVIT_ADDON
    ? [process.env.DIFFVIT_ADDON]
    : [join(packageRoot(), 'build', 'Release', 'diffvit.node'), join(packageRoot(), 'build', 'diffvit.node')];
  for (const path of candidates) {
    if (existsSync(path)) return require(path) as NativeAddon;
  }
  if (process.env.DIFFVIT_ADDON) {
    throw new Error(`diffvit: DIFFVIT_ADDON=${process.env.DIFFVIT_ADDON} does not exist (unset it to load the addon built by npm install)`);
  }
  throw new Error(
    `diffvit: the native addon is not built (looked for ${candidates.join(', ')}). ` +
      'Run `npm install` (or `npm run build:native`) with a C++ compiler and CMake installed.',
  );
}

export const native: NativeAddon = loadAddon();
