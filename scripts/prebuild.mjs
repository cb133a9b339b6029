#!/usr/bin/env node
/**
 * Builds the prebuilt addons the npm package ships (run by `npm pack` / `npm publish` through
 * "prepack", or as `npm run prebuild`), in the prebuildify layout the install script and the
 * loader read: prebuilds/<platform>-<arch>/diffvit.napi.node (Node-API 8: one binary for every
 * Node version), with libdiffvit_nvtx_recorder.so beside it where NVTX is compiled in.
 *
 *   node scripts/prebuild.mjs [TARGET...]     targets: linux-x64, linux-arm64 (default: both)
 *
 * The host's target (linux-x64 here) is the source build's own output: build/Release/diffvit.node
 * when it is a Release build newer than every source file (as right after `npm ci`; a full build
 * takes minutes, with CUDA longer), else a fresh build into build-prebuild/<target>. The build is
 * portable (no -march=native; AVX-512/AVX2/scalar chosen at run time; cudart linked statically).
 * linux-arm64 is cross-compiled with aarch64-linux-gnu-g++ (Debian: g++-aarch64-linux-gnu), the
 * scalar kernels only and without CUDA, and skipped with the reason where that compiler is absent.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const host = `${process.platform}-${process.arch}`;
const KNOWN = ['linux-x64', 'linux-arm64'];
// Targets cross-compiled from another host, where the cross compiler is on PATH.
const CROSS = {
  'linux-arm64': {
    from: 'linux-x64',
    cxx: 'aarch64-linux-gnu-g++',
    get: 'Debian: apt-get install g++-aarch64-linux-gnu',
    // CMakeLists.txt builds the scalar level off x86; nvcc here cannot target arm64.
    cmake: ['CMAKE_SYSTEM_NAME=Linux', 'CMAKE_SYSTEM_PROCESSOR=aarch64', 'DIFFVIT_CUDA=OFF'],
  },
};

const targets = process.argv.slice(2);
for (const t of targets) {
  if (!KNOWN.includes(t)) fail(`scripts/prebuild.mjs: unknown target '${t}' (expected ${KNOWN.join(', ')})`);
}

function fail(message) {
  console.error(message);
  process.exit(1);
}

function onPath(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

/** The newest modification time of the files the addon is built from. */
function newestSource() {
  let newest = statSync(join(root, 'CMakeLists.txt')).mtimeMs;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  walk(join(root, 'native'));
  return newest;
}

/** build/Release/diffvit.node when it can stand for the host's prebuilt addon, else null (and why not). */
function reusableBuild() {
  const addon = join(root, 'build', 'Release', 'diffvit.node');
  const cache = join(root, 'build', 'CMakeCache.txt');
  if (!existsSync(addon) || !existsSync(cache)) return { why: 'build/ has no addon' };
  const config = readFileSync(cache, 'utf8');
  if (!/^CMAKE_BUILD_TYPE:\w+=Release$/m.test(config)) return { why: 'build/ is not a Release build' };
  if (statSync(addon).mtimeMs < newestSource()) return { why: 'build/Release/diffvit.node is older than the sources' };
  return { dir: dirname(addon) };
}

/** Compiles `target` into build-prebuild/<target> and returns the folder holding diffvit.node. */
function build(target) {
  const cross = target === host ? null : CROSS[target];
  const defines = cross ? cross.cmake : [];
  const out = join('build-prebuild', target);
  const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
  console.log(`prebuild ${target}: cmake-js compile --out ${out}${defines.map((d) => ` --CD${d}`).join('')}${cross ? ` (CXX=${cross.cxx})` : ''}`);
  const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', out, ...defines.map((d) => `--CD${d}`)], {
    cwd: root, stdio: 'inherit', env: cross ? { ...process.env, CXX: cross.cxx } : process.env,
  });
  if (r.status !== 0) fail(`prebuild ${target}: the build failed (exit ${r.status ?? r.signal})`);
  return join(root, out, 'Release');
}

/** Why `target` cannot be built on this host, or null. */
function cannotBuild(target) {
  if (target === host) return null;
  const cross = CROSS[target];
  if (!cross || cross.from !== host) return `built only on a ${target} host; this is ${host}`;
  if (!onPath(cross.cxx)) return `${cross.cxx} not on PATH; ${cross.get}`;
  return null;
}

const wanted = targets.length > 0 ? targets : KNOWN;
const made = [];
for (const target of wanted) {
  const dest = join(root, 'prebuilds', target);
  const skip = cannotBuild(target);
  if (skip) {
    rmSync(dest, { recursive: true, force: true }); // an earlier run's binary would ship stale
    console.log(`prebuild ${target}: skipped (${skip})`);
    continue;
  }
  let from;
  if (target === host) {
    const reuse = reusableBuild();
    if (reuse.dir) console.log(`prebuild ${target}: reusing build/Release/diffvit.node (a Release build newer than the sources)`);
    else console.log(`prebuild ${target}: building (${reuse.why})`);
    from = reuse.dir ?? build(target);
  } else {
    from = build(target);
  }
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  copyFileSync(join(from, 'diffvit.node'), join(dest, 'diffvit.napi.node'));
  const recorder = join(from, 'libdiffvit_nvtx_recorder.so');
  if (existsSync(recorder)) copyFileSync(recorder, join(dest, 'libdiffvit_nvtx_recorder.so'));
  made.push(target);
  console.log(`prebuild ${target}: ${relative(root, join(dest, 'diffvit.napi.node'))} (${(statSync(join(dest, 'diffvit.napi.node')).size / 2 ** 20).toFixed(1)} MB)`);
}
if (targets.length > 0 && made.length < targets.length) fail('scripts/prebuild.mjs: not every target asked for was built');
