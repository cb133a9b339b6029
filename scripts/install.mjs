#!/usr/bin/env node
/**
 * npm's install script. In order:
 *   1. the prebuilt addon shipped for this platform (prebuilds/<platform>-<arch>/diffvit.napi.node),
 *      if it loads here (checked in a child process: a binary for a newer glibc, or for glibc on
 *      musl, fails to load rather than to exist);
 *   2. the source build (cmake-js into build/), as in a source checkout;
 *   3. where the source build cannot start, one line naming what is missing and how to get it
 *      (instead of CMake's own dump), and exit code 1.
 * DIFFVIT_BUILD_FROM_SOURCE=1 skips the prebuilt addon, and so do the build options DIFFVIT_CUDA and
 * DIFFVIT_NVTX (AUTO, ON or OFF: CMakeLists.txt), which are passed to CMake. A git checkout always
 * builds from source: developers build the sources they edit (and `npm ci` in CI builds the CUDA
 * backend there).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const target = `${process.platform}-${process.arch}`;
const prebuilt = join(root, 'prebuilds', target, 'diffvit.napi.node');
const CMAKE_MIN = [3, 18];
const BUILD_OPTIONS = ['DIFFVIT_CUDA', 'DIFFVIT_NVTX'].filter((name) => process.env[name]);

/** Why the source build runs: null when the prebuilt addon is used. */
function sourceBuildReason() {
  if (process.env.DIFFVIT_BUILD_FROM_SOURCE === '1') return 'building from source was asked for (DIFFVIT_BUILD_FROM_SOURCE=1)';
  if (BUILD_OPTIONS.length > 0) return `build options were given (${BUILD_OPTIONS.map((n) => `${n}=${process.env[n]}`).join(' ')})`;
  if (existsSync(join(root, '.git'))) return 'a git checkout builds from source';
  if (!existsSync(prebuilt)) return `this package has no prebuilt addon for ${target}`;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)})`], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return null;
  const error = (r.stderr ?? '').split('\n').find((l) => /Error/.test(l))?.trim() ?? r.error?.message ?? `exit ${r.status ?? r.signal}`;
  return `the prebuilt addon for ${target} does not load here (${error})`;
}

/** The first of `names` that is an executable on PATH (a name with a slash is taken as a path). */
function findExecutable(names) {
  for (const name of names) {
    if (name.includes('/')) {
      if (isExecutable(name)) return name;
      continue;
    }
    for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
      if (isExecutable(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** What the source build lacks, as phrases for one line (empty when it can start). */
function missingTools() {
  const missing = [];
  if (process.platform !== 'win32') {
    // CMake takes $CXX when set (its first word: the compiler, then any flags).
    const cxx = process.env.CXX?.trim().split(/\s+/)[0];
    const compilers = cxx ? [cxx] : ['c++', 'g++', 'clang++'];
    if (!findExecutable(compilers)) {
      missing.push(`no C++17 compiler (${cxx ? `CXX=${process.env.CXX} is not an executable` : 'none of c++, g++, clang++ on PATH'})`);
    }
    if (!findExecutable(['ninja', 'make'])) missing.push('no build tool (neither ninja nor make on PATH)');
  }
  const cmake = findExecutable(['cmake']);
  if (!cmake) {
    missing.push(`no CMake ${CMAKE_MIN.join('.')} or newer (cmake not on PATH)`);
  } else {
    const version = /cmake version (\d+)\.(\d+)/.exec(spawnSync(cmake, ['--version'], { encoding: 'utf8' }).stdout ?? '');
    const [major, minor] = version ? [Number(version[1]), Number(version[2])] : [0, 0];
    if (major < CMAKE_MIN[0] || (major === CMAKE_MIN[0] && minor < CMAKE_MIN[1])) {
      missing.push(`${cmake} is CMake ${version ? `${major}.${minor}` : 'of an unknown version'} (${CMAKE_MIN.join('.')} or newer needed)`);
    }
  }
  return missing;
}

const reason = sourceBuildReason();
if (reason === null) {
  console.log(`diffvit: using the prebuilt addon ${relative(root, prebuilt)}`);
  process.exit(0);
}
const missing = missingTools();
if (missing.length > 0) {
  console.error(`diffvit: cannot install the native addon: ${reason}, and the source build cannot start: ${missing.join(', ')}; ` +
    'install them (Debian/Ubuntu: apt-get install g++ cmake make; Fedora: dnf install gcc-c++ cmake make; ' +
    'macOS: xcode-select --install and brew install cmake), then run npm rebuild diffvit');
  process.exit(1);
}
console.log(`diffvit: building the native addon from source (${reason})`);
const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
const defines = BUILD_OPTIONS.map((name) => `--CD${name}=${process.env[name]}`);
const build = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', ...defines], { cwd: root, stdio: 'inherit' });
process.exit(build.status ?? 1);
