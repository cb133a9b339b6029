#!/usr/bin/env node
// Static checks of the CUDA device code in the built addon (no GPU needed), run by CI:
//   - each kernel's registers, shared memory, stack and spills per architecture (cuobjdump
//     -res-usage), printed as a table and failed past the budget below;
//   - the attention and GEMM kernels contain tensor-core instructions (HMMA) in their SASS.
// cuobjdump comes from PATH, the CUDA toolkit, or a triton wheel (which ships one) under /opt.
// Usage: node scripts/check-cuda-build.mjs [addon.node] [--json out.json]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const BUDGET = { registers: 255, sharedBytes: 100 * 1024, stackBytes: 1024, spillBytes: 0 };
const TENSOR_CORE_KERNELS = [/attention/i, /gemm/i];

const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const jsonPath = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : null;
const addon = resolve(args[0] ?? 'build/Release/diffvit.node');
const root = resolve(new URL('..', import.meta.url).pathname);

function which(name) {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, name))) return join(dir, name);
  for (const base of [process.env.CUDA_HOME, '/usr/local/cuda', ...globCuda()]) {
    if (base && existsSync(join(base, 'bin', name))) return join(base, 'bin', name);
  }
  return null;
}
function globCuda() {
  try {
    return readdirSync('/usr/local').filter((d) => d.startsWith('cuda-')).map((d) => join('/usr/local', d));
  } catch {
    return [];
  }
}
// The triton wheel's copy, unpacked once into build/tools.
function fromWheel(name) {
  const out = join(root, 'build', 'tools', name);
  if (existsSync(out)) return out;
  for (const dir of ['/opt/pypi/files', '/opt/pypi-more/files']) {
    let wheels = [];
    try {
      wheels = readdirSync(dir).filter((f) => /^triton-.*\.whl$/.test(f)).sort().reverse();
    } catch {
      continue;
    }
    for (const wheel of wheels) {
      try {
        mkdirSync(join(root, 'build', 'tools'), { recursive: true });
        execFileSync('unzip', ['-o', '-j', '-q', join(dir, wheel), `triton/backends/nvidia/bin/${name}`, '-d', join(root, 'build', 'tools')]);
        if (existsSync(out)) return out;
      } catch {
        // not in this wheel
      }
    }
  }
  return null;
}

if (!existsSync(addon)) {
  console.error(`check-cuda-build: ${addon} does not exist (build the addon first)`);
  process.exit(1);
}
const cuobjdump = which('cuobjdump') ?? fromWheel('cuobjdump');
// cuobjdump disassembles (-sass) with nvdisasm, found on PATH.
const nvdisasm = which('nvdisasm') ?? fromWheel('nvdisasm');
if (nvdisasm) process.env.PATH = `${join(nvdisasm, '..')}:${process.env.PATH ?? ''}`;
if (!cuobjdump) {
  console.log('check-cuda-build: skipped: cuobjdump not found (CUDA toolkit or a triton wheel under /opt)');
  process.exit(0);
}
let listing;
try {
  listing = execFileSync(cuobjdump, ['-res-usage', addon], { encoding: 'utf8', maxBuffer: 1 << 28 });
} catch (e) {
  if (/does not contain device code/.test(String(e.stderr ?? e.message))) {
    console.log('check-cuda-build: the addon has no device code (built without the CUDA backend): nothing to check');
    process.exit(0);
  }
  throw e;
}
const demangle = (names) => {
  try {
    return execFileSync('c++filt', { input: names.join('\n'), encoding: 'utf8' }).split('\n');
  } catch {
    return names;
  }
};

// "arch = sm_90a" ... "Function _Z...:" then "REG:40 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:..."
const kernels = [];
let arch = '?', fn = null;
for (const line of listing.split('\n')) {
  const a = /arch = (sm_\w+)/.exec(line);
  if (a) arch = a[1];
  const f = /^\s*Function (\S+):/.exec(line);
  if (f) fn = f[1];
  const r = /REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)/.exec(line);
  if (r && fn) {
    kernels.push({ mangled: fn, arch, registers: +r[1], stackBytes: +r[2], sharedBytes: +r[3], spillBytes: +r[4] });
    fn = null;
  }
}
if (!kernels.length) {
  console.error('check-cuda-build: cuobjdump listed no kernels: is this a CUDA build?');
  process.exit(1);
}
const names = demangle(kernels.map((k) => k.mangled));
kernels.forEach((k, i) => {
  k.name = (names[i] || k.mangled).replace(/\(anonymous namespace\)::/g, '').replace(/^void /, '').replace(/\(.*$/, '');
});

// Tensor-core instructions per kernel, from the SASS of each architecture.
const sass = execFileSync(cuobjdump, ['-sass', addon], { encoding: 'utf8', maxBuffer: 1 << 30 });
const hmma = new Map();
arch = '?';
fn = null;
for (const line of sass.split('\n')) {
  const a = /arch = (sm_\w+)/.exec(line);
  if (a) arch = a[1];
  const f = /^\s*Function : (\S+)/.exec(line);
  if (f) fn = `${arch} ${f[1]}`;
  if (fn && /\bHMMA\b/.test(line)) hmma.set(fn, (hmma.get(fn) ?? 0) + 1);
}
for (const k of kernels) k.hmma = hmma.get(`${k.arch} ${k.mangled}`) ?? 0;

const failures = [];
for (const k of kernels) {
  if (k.registers > BUDGET.registers) failures.push(`${k.name} (${k.arch}): ${k.registers} registers > ${BUDGET.registers}`);
  if (k.sharedBytes > BUDGET.sharedBytes) failures.push(`${k.name} (${k.arch}): ${k.sharedBytes} B static shared > ${BUDGET.sharedBytes}`);
  if (k.stackBytes > BUDGET.stackBytes) failures.push(`${k.name} (${k.arch}): ${k.stackBytes} B stack > ${BUDGET.stackBytes}`);
  if (k.spillBytes > BUDGET.spillBytes) failures.push(`${k.name} (${k.arch}): ${k.spillBytes} B local memory (spills)`);
}
const archs = [...new Set(kernels.map((k) => k.arch))];
for (const pattern of TENSOR_CORE_KERNELS) {
  for (const a of archs) {
    const matching = kernels.filter((k) => k.arch === a && pattern.test(k.name));
    if (!matching.length) failures.push(`no kernel matching ${pattern} for ${a}`);
    else if (!matching.some((k) => k.hmma > 0)) failures.push(`no ${pattern} kernel for ${a} contains HMMA (tensor-core) instructions`);
  }
}

// One row per kernel template and architecture (the worst of its instantiations); every
// instantiation is in the JSON.
const rows = new Map();
for (const k of kernels) {
  const key = `${k.name.replace(/<.*$/, '')}\t${k.arch}`;
  const r = rows.get(key) ?? { name: k.name.replace(/<.*$/, ''), arch: k.arch, variants: 0, registers: 0, sharedBytes: 0, stackBytes: 0, spillBytes: 0, hmma: 0 };
  r.variants++;
  for (const f of ['registers', 'sharedBytes', 'stackBytes', 'spillBytes']) r[f] = Math.max(r[f], k[f]);
  r.hmma += k.hmma;
  rows.set(key, r);
}
const width = Math.max(...[...rows.values()].map((r) => r.name.length));
console.log(`${'kernel (worst instantiation)'.padEnd(width)}  arch     variants  regs  shared  stack  spill  HMMA`);
for (const r of [...rows.values()].sort((x, y) => x.name.localeCompare(y.name) || x.arch.localeCompare(y.arch))) {
  console.log(`${r.name.padEnd(width)}  ${r.arch.padEnd(8)} ${String(r.variants).padStart(8)} ${String(r.registers).padStart(5)} ${String(r.sharedBytes).padStart(7)} ${String(r.stackBytes).padStart(6)} ${String(r.spillBytes).padStart(6)} ${String(r.hmma).padStart(5)}`);
}
console.log(`${kernels.length} kernel variants over ${archs.join(', ')}; budget: ≤ ${BUDGET.registers} registers, ≤ ${BUDGET.sharedBytes} B static shared, ≤ ${BUDGET.stackBytes} B stack, no spills`);
if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify({ addon, budget: BUDGET, kernels }, null, 1)}\n`);
if (failures.length) {
  console.error(`check-cuda-build: FAILED\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('check-cuda-build: ok');
