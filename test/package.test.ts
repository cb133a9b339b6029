/**
 * The npm package as a user gets it: `npm pack` ships everything package.json, the README and the
 * CLI's help point at (and no tests, builds or source maps); the tarball installs offline on a
 * PATH with no C++ compiler and no CMake by loading the prebuilt addon (`npx diffvit info` runs);
 * and without a prebuilt addon, or with DIFFVIT_BUILD_FROM_SOURCE=1, the install fails with one
 * line naming what the source build lacks instead of CMake's output.
 *
 * The host's prebuilt addon is the existing build (scripts/prebuild.mjs reuses
 * build/Release/diffvit.node when it is newer than the sources, as after `npm ci`), so this costs
 * seconds; the tarball is packed with --ignore-scripts after running that script, as "prepack"
 * does (its "prepare", tsc, made dist/ at `npm ci` already).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string; version: string; license: string; main: string; types: string; bin: Record<string, string>;
  exports: Record<string, Record<string, string>>; scripts: Record<string, string>; dependencies: Record<string, string>;
  engines: Record<string, string>;
};
const target = `${process.platform}-${process.arch}`;
const PREBUILT = `prebuilds/${target}/diffvit.napi.node`;

/** npm's own entry script (npm-cli.js), from the npm on PATH: run with this node, on any PATH. */
function findNpmCli(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (!existsSync(npm)) continue;
    const cli = realpathSync(npm);
    if (cli.endsWith('npm-cli.js')) return cli;
  }
  return null;
}
const npmCli = findNpmCli();
const skipReason = !['linux-x64', 'linux-arm64'].includes(target)
  ? `no prebuilt addon is made for ${target} (scripts/prebuild.mjs)`
  : !npmCli ? 'no npm on PATH (npm-cli.js)' : null;

// Paths the README or the help name that are run from a source checkout, not from the package.
const CHECKOUT_ONLY: Record<string, string> = {
  'scripts/gpu-check.sh': 'builds and runs the test suites and the GPU benchmarks: needs test/ and the dev dependencies',
};

describe.skipIf(skipReason !== null)(`the npm package${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let tmp = '';
  let tarball = '';
  let files: string[] = [];
  let bin = '';

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'diffvit-package-'));
    execFileSync(process.execPath, ['scripts/prebuild.mjs', target], { cwd: root, stdio: 'pipe' });
    const out = execFileSync(process.execPath, [npmCli!, 'pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
      cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [packed] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
    tarball = join(tmp, packed.filename);
    files = packed.files.map((f) => f.path);
    // A PATH with node and sh (npm runs scripts through sh) and nothing else: no compiler, no CMake.
    bin = join(tmp, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
  }, 900_000); // a build/ older than the sources is rebuilt first (minutes); after `npm ci` it is reused

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /**
   * A project depending on `tgz`, with a package-lock.json holding diffvit's dependencies as this
   * repository's lock pins them: `npm ci` cached their tarballs but not the registry's metadata,
   * which an offline install without a lock would need to resolve their version ranges.
   */
  function project(name: string, tgz: string): string {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const spec = `file:${tgz}`;
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const packages: Record<string, unknown> = {
      '': { name, dependencies: { diffvit: spec } },
      'node_modules/diffvit': {
        version: pkg.version, resolved: spec, hasInstallScript: true, license: pkg.license, dependencies: pkg.dependencies,
        bin: pkg.bin, engines: pkg.engines,
      },
    };
    for (const [path, entry] of Object.entries(lock.packages)) if (path && !entry.dev) packages[path] = entry;
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, dependencies: { diffvit: spec } }));
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ name, lockfileVersion: 3, requires: true, packages }));
    return dir;
  }

  /** Runs npm (or npx) in `cwd` on the bare PATH, without this process's npm and diffvit settings. */
  function run(cwd: string, args: string[], extraEnv: Record<string, string> = {}, cli = npmCli!) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|DIFFVIT_|CXX$|CC$)/i.test(k)));
    const r = spawnSync(process.execPath, [cli, ...args], {
      cwd, encoding: 'utf8', timeout: 120_000, env: { ...env, ...extraEnv, PATH: bin },
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  }
  const install = (cwd: string, tgz: string, env: Record<string, string> = {}) =>
    run(cwd, ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', tgz], env);

  test('the tarball ships everything package.json, the README and the help point at, and no tests, builds or maps', () => {
    const shipped = new Set(files);
    const ships = (path: string) => shipped.has(path) || files.some((f) => f.startsWith(`${path.replace(/\/$/, '')}/`));
    const wanted = new Map<string, string>(); // path -> who points at it
    const want = (path: string, by: string) => wanted.set(path.replace(/^\.\//, ''), by);

    want(pkg.main, 'package.json main');
    want(pkg.types, 'package.json types');
    for (const [cond, path] of Object.entries(pkg.exports['.'])) want(path, `package.json exports '.' ${cond}`);
    for (const [name, path] of Object.entries(pkg.bin)) want(path, `package.json bin ${name}`);
    const installScript = /^node (\S+)$/.exec(pkg.scripts.install);
    expect(installScript, `package.json scripts.install runs a node script: ${pkg.scripts.install}`).not.toBeNull();
    want(installScript![1], 'package.json scripts.install');
    want(PREBUILT, 'scripts/install.mjs and the loader (lib/backend/cpu/addon.ts)');
    want('LICENSE', `package.json license ${pkg.license}`);
    want('CMakeLists.txt', 'the source build (scripts/install.mjs)');
    want('dist/bench/run.js', 'diffvit bench (lib/cli/bench_suite.ts)');
    want('bench/openblas/sgemm_bench.c', 'diffvit bench gemm (bench/gemm.ts)');

    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const [, link] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/.test(link)) want(link.split('#')[0], 'a README link');
    }
    const texts: [string, string][] = [['README.md', readme], ['docs/reproducing.md', readFileSync(join(root, 'docs', 'reproducing.md'), 'utf8')]];
    for (const f of readdirSync(join(root, 'lib', 'cli')).filter((f) => f.endsWith('.ts'))) {
      texts.push([`lib/cli/${f}`, readFileSync(join(root, 'lib', 'cli', f), 'utf8')]);
    }
    for (const [file, text] of texts) {
      for (const [path] of text.matchAll(/\b(?:scripts|docs|examples)\/[\w.-]+(?:\/[\w.-]+)*/g)) {
        if (!(path in CHECKOUT_ONLY)) want(path, `mentioned in ${file}`);
      }
    }
    expect(wanted.size).toBeGreaterThan(20);

    const missing = [...wanted].filter(([path]) => !ships(path)).map(([path, by]) => `${path} (${by})`);
    expect(missing, 'files pointed at but not in the tarball').toEqual([]);
    // Checkout-only tools are named in package.json's files by none: if one ships, it is no longer checkout-only.
    for (const path of Object.keys(CHECKOUT_ONLY)) expect(ships(path), `${path}: ${CHECKOUT_ONLY[path]}`).toBe(false);

    const unneeded = files.filter((f) =>
      /^(test|lib|build|build-[^/]+|node_modules|\.ci|runs)\//.test(f) || /\.map$/.test(f) ||
      /^native\/cuda\/(emu|tests)\//.test(f) || (/^bench\//.test(f) && !/^bench\/openblas\//.test(f)) ||
      /^scripts\/(?!install\.mjs$|convert_inception\.py$)/.test(f));
    expect(unneeded, 'files the package does not need').toEqual([]);
    // `npm pack` and `npm publish` make the prebuilt addons first.
    expect(pkg.scripts.prepack).toBe('node scripts/prebuild.mjs');
  });

  test('installed offline with no compiler or CMake on PATH, it loads the prebuilt addon and `npx diffvit info` runs', () => {
    const dir = project('with-prebuild', tarball);
    const r = install(dir, tarball);
    expect(r.status, r.output).toBe(0);
    expect(r.output).toContain(`diffvit: using the prebuilt addon ${PREBUILT}`);
    const installed = join(dir, 'node_modules', 'diffvit');
    expect(existsSync(join(installed, 'build')), 'no source build ran').toBe(false);

    const info = run(dir, ['diffvit', 'info'], {}, join(dirname(npmCli!), 'npx-cli.js'));
    expect(info.status, info.output).toBe(0);
    expect(info.stdout).toMatch(new RegExp(`^version +diffvit ${pkg.version.replace(/\./g, '\\.')}, Node\\.js v`, 'm'));
    expect(info.stdout).toMatch(/^kernels +(avx512|avx2|scalar)\b/m);

    // The loader took the prebuilt addon (there is no other to take, but it says which).
    const loaded = execFileSync(process.execPath, ['--input-type=module', '-e',
      `const { addonPath } = await import(${JSON.stringify(join(installed, 'dist', 'lib', 'backend', 'cpu', 'addon.js'))}); console.log(addonPath);`],
    { cwd: dir, encoding: 'utf8', env: { PATH: bin, HOME: process.env.HOME ?? tmp } }).trim();
    expect(loaded).toBe(join(installed, PREBUILT));
  });

  /** npm's error output holds our line once, and nothing of CMake or cmake-js. */
  function expectOneLineFailure(r: ReturnType<typeof run>, reason: string) {
    expect(r.status, r.output).not.toBe(0);
    const ours = r.stderr.split('\n').filter((l) => l.includes('diffvit: '));
    expect(ours, r.output).toHaveLength(1);
    expect(ours[0]).toContain(`diffvit: cannot install the native addon: ${reason}, and the source build cannot start: ` +
      'no C++17 compiler (none of c++, g++, clang++ on PATH), no build tool (neither ninja nor make on PATH), ' +
      'no CMake 3.18 or newer (cmake not on PATH); install them (Debian/Ubuntu: apt-get install g++ cmake make');
    expect(ours[0]).toMatch(/then run npm rebuild diffvit$/);
    expect(r.output).not.toMatch(/CMake Error|CMakeLists|cmake-js|INFO CMD|\bERR! /);
  }

  test('without a prebuilt addon and without a compiler, the install fails with one line naming what is missing', () => {
    // The same package less prebuilds/, as on a platform nothing is prebuilt for.
    const unpacked = join(tmp, 'bare');
    mkdirSync(unpacked);
    execFileSync('tar', ['xzf', tarball, '-C', unpacked]);
    rmSync(join(unpacked, 'package', 'prebuilds'), { recursive: true });
    const bare = join(tmp, 'diffvit-bare.tgz');
    execFileSync('tar', ['czf', bare, '-C', unpacked, 'package']);

    const dir = project('without-prebuild', bare);
    expectOneLineFailure(install(dir, bare), `this package has no prebuilt addon for ${target}`);
    expect(existsSync(join(dir, 'node_modules', 'diffvit')), 'npm removed the failed package').toBe(false);
  });

  test('DIFFVIT_BUILD_FROM_SOURCE=1 skips the prebuilt addon (and fails the same way without a compiler)', () => {
    const dir = project('from-source', tarball);
    expectOneLineFailure(install(dir, tarball, { DIFFVIT_BUILD_FROM_SOURCE: '1' }), 'building from source was asked for (DIFFVIT_BUILD_FROM_SOURCE=1)');
  });
});
