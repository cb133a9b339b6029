#!/usr/bin/env node
/**
 * The CUDA kernels that matter most, each run once on small awkward shapes, for compute-sanitizer
 * (scripts/gpu-check.sh runs this under `--tool memcheck` and `--tool racecheck`):
 *
 *   attention   forward and forward+backward, fp32 and bf16 (autocast), one shape per head-dim class
 *               of the kernels (d <= 32, 64, 128, 256) with rows that fill no tile (1, 17, 67, 129...),
 *               Nq != Nk, q/k/v read in place from a packed (B, N, 3, H, D) tensor, and selfAttention
 *               (the model's path);
 *   edm         the fused training step (edmTrainingNoise: σ, c_noise, noisy inputs; edmWeightedLoss and
 *               its backward) and the fused sampler update (edmSamplerUpdate: Euler, Heun's 2nd-order
 *               correction, guided and not), on image sizes that are no multiple of a warp or a vector;
 *   model       one training step of a tiny IU-ViT and a 2-step sampling on 'cuda' (needs the Trainer's
 *               and DiffusionViT's `device` option; skipped, saying so, where this build lacks it).
 *
 * Every result is read back: it must be finite, and the attention outputs and gradients must match
 * the CPU backend's (fp32 within 1e-3 of max(|reference|, 1), bf16 within 5e-2). Prints one line per case;
 * exits 1 if any case failed, 2 if no CUDA device is usable.
 *
 *   node bench/gpu/sanitizer_cases.mjs [--only attention,edm,model]
 *   compute-sanitizer --tool memcheck --error-exitcode 99 node bench/gpu/sanitizer_cases.mjs
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = process.env.DIFFVIT_DIST ? resolve(process.env.DIFFVIT_DIST) : join(root, 'dist');
const fail = (m) => {
  console.error(`sanitizer_cases: ${m}`);
  process.exit(2);
};
const { values: args } = parseArgs({ options: { only: { type: 'string' } } });
const only = (args.only ?? 'attention,edm,model').split(',');
if (!existsSync(join(dist, 'lib', 'index.js'))) fail(`no CUDA device: diffvit is not built (${dist}/lib/index.js is missing)`);
const dv = await import(pathToFileURL(join(dist, 'lib', 'index.js')).href);
const edm = await import(pathToFileURL(join(dist, 'lib', 'ops', 'edm.js')).href);
if (!dv.cuda) fail('no CUDA device: this build of diffvit has no dv.cuda');
if (!dv.cuda.isAvailable()) fail(`no CUDA device: ${dv.cuda.info().reason || dv.runtimeInfo().cudaStatus}`);

let failures = 0;
function check(name, fn) {
  const t0 = performance.now();
  try {
    const detail = dv.scope(fn);
    dv.synchronize('cuda');
    console.log(`case ${name}: ok${detail ? ` (${detail})` : ''} [${(performance.now() - t0).toFixed(0)} ms]`);
  } catch (e) {
    failures++;
    console.log(`case ${name}: FAILED: ${String(e?.message ?? e).split('\n')[0]}`);
  }
  // every case on fresh cudaMalloc blocks: memcheck sees overruns past a block, not inside the cache's rounding
  dv.emptyCache('cuda');
}
function skip(name, why) {
  console.log(`case ${name}: skipped: ${why}`);
}

/** Host values of t, which must all be finite. */
function finite(label, t) {
  const v = t.toArray();
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new Error(`${label}: element ${i} is ${v[i]}`);
  return v;
}
/**
 * max |a - b| / max(max |b|, 1), a read back from the device, b on the CPU. The floor of 1 (the
 * inputs' scale: randn) keeps gradients that are zero in exact arithmetic (one key: the softmax is
 * constant, so dq = dk = 0) from turning bf16 rounding noise into a huge relative error.
 */
function relDiff(label, a, b) {
  const x = finite(label, a), y = b.toArray();
  let diff = 0, scale = 1;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return diff / scale;
}

// ---- attention ----
// [label, B, H, Nq, Nk, D, packed]: packed = q, k, v sliced in place from one (B, N, 3, H, D) tensor (Nq = Nk)
const ATTENTION = [
  ['d8 one row', 1, 1, 1, 1, 8, false],
  ['d24 17x17', 2, 3, 17, 17, 24, false],
  ['d40 67x33', 1, 2, 67, 33, 40, false],
  ['d64 packed 65', 2, 2, 65, 65, 64, true],
  ['d80 129x31', 1, 1, 129, 31, 80, false],
  ['d160 19x45', 1, 2, 19, 45, 160, false],
];
function attentionCase([label, B, H, Nq, Nk, D, packed], precision) {
  check(`attention ${label} ${precision}`, () => {
    const g = new dv.Generator(7);
    const dy = dv.randn([B, H, Nq, D], { generator: g });
    const dyDevice = dy.to('cuda');
    let q, k, v, onDevice;
    if (packed) {
      // the same in-place views on both devices: (B, N, 3, H, D) sliced and permuted to (B, H, N, D)
      const qkv = dv.randn([B, Nq, 3, H, D], { generator: g });
      const views = (t) => [0, 1, 2].map((i) => dv.detach(t.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3])));
      [q, k, v] = views(qkv);
      onDevice = views(qkv.to('cuda'));
    } else {
      [q, k, v] = [[B, H, Nq, D], [B, H, Nk, D], [B, H, Nk, D]].map((s) => dv.randn(s, { generator: g }));
      onDevice = [q, k, v].map((t) => dv.detach(t.to('cuda')));
    }
    const tol = precision === 'bf16' ? 5e-2 : 1e-3;
    // forward alone (no log-sum-exp stored)
    const o0 = dv.autocast(precision, () => dv.noGrad(() => dv.attention(onDevice[0], onDevice[1], onDevice[2])));
    const ref = dv.noGrad(() => dv.attention(q, k, v));
    const e0 = relDiff('forward', o0, ref);
    // forward + backward
    for (const t of [...onDevice, q, k, v]) t.requiresGrad = true;
    const o = dv.autocast(precision, () => dv.attention(onDevice[0], onDevice[1], onDevice[2]));
    dv.autocast(precision, () => o.backward({ grad: dyDevice }));
    const r = dv.attention(q, k, v);
    r.backward({ grad: dy });
    const errs = [e0, relDiff('output', o, r), ...['dq', 'dk', 'dv'].map((n, i) => relDiff(n, onDevice[i].grad, [q, k, v][i].grad))];
    for (const t of [...onDevice, q, k, v]) {
      t.grad?.dispose();
      t.grad = null;
    }
    const worst = Math.max(...errs);
    if (!(worst <= tol)) throw new Error(`differs from the CPU backend: relative errors (forward alone, output, dq, dk, dv) ${errs.map((x) => x.toExponential(1)).join(', ')} (tolerance ${tol})`);
    return `max rel. error vs CPU ${worst.toExponential(1)}`;
  });
}
function selfAttentionCase(precision) {
  check(`selfAttention B=2 N=37 H=3 D=32 ${precision}`, () => {
    const qkv = dv.randn([2, 37, 3 * 3 * 32], { generator: new dv.Generator(3) });
    const dev = dv.detach(qkv.to('cuda'));
    dev.requiresGrad = true;
    const y = dv.autocast(precision, () => dv.selfAttention(dev, 3));
    dv.autocast(precision, () => y.sum().backward());
    finite('output', y);
    finite('dqkv', dev.grad);
    dev.grad.dispose();
    dev.grad = null;
    return null;
  });
}

// ---- the fused EDM steps ----
const IMAGES = [[3, 3, 7, 5], [1, 1, 1, 1], [5, 3, 9, 11]];
function edmCases(shape) {
  const name = shape.join('x');
  check(`edm training step ${name}`, () => {
    const y = dv.randn(shape, { generator: new dv.Generator(11), device: 'cuda' });
    const w = dv.full([1], 0.7, { device: 'cuda' });
    w.requiresGrad = true;
    const { sigmas, cNoise, xNoisy, xIn } = edm.edmTrainingNoise(y, new dv.Generator(5), { P_mean: -1.2, P_std: 1.2 });
    const F = dv.mul(xIn, w); // a stand-in network whose gradient reaches w
    const loss = edm.edmWeightedLoss(F, xNoisy, y, sigmas);
    loss.backward();
    for (const [label, t] of [['sigmas', sigmas], ['cNoise', cNoise], ['xNoisy', xNoisy], ['xIn', xIn], ['loss', loss], ['dw', w.grad]]) finite(label, t);
    const l = loss.item();
    w.grad.dispose();
    w.grad = null;
    return `loss ${l.toPrecision(4)}`;
  });
  check(`edm sampler steps ${name}`, () => {
    const g = new dv.Generator(13);
    const x = dv.randn(shape, { generator: g, device: 'cuda' });
    const F = dv.randn(shape, { generator: g, device: 'cuda' });
    const F2 = dv.randn([2 * shape[0], ...shape.slice(1)], { generator: g, device: 'cuda' });
    const euler = edm.edmSamplerUpdate({ F, x, sigma: 2.5, base: x, h: -0.7 });
    const heun = edm.edmSamplerUpdate({ F, x: euler.xNext, sigma: 1.8, base: x, h: -0.7, dPrev: euler.d, a: 0.5, b: 0.5 });
    const guided = edm.edmSamplerUpdate({ F: F2, x, sigma: 0.3, guidance: 2.5, base: x, h: -0.3 });
    for (const [label, t] of [['euler x', euler.xNext], ['euler d', euler.d], ['heun x', heun.xNext], ['guided x', guided.xNext], ['guided d', guided.d]]) finite(label, t);
    return null;
  });
}

// ---- a tiny model on the device ----
const TINY = { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 3, heads: 2 };
function modelCases() {
  let trainer;
  try {
    trainer = new dv.Trainer({ ...dv.DEFAULT_TRAIN_CONFIG, model: TINY, data: { kind: 'shapes' }, batchSize: 3, matmulPrecision: 'bf16', device: 'cuda' });
  } catch (e) {
    skip('model train step', `the Trainer failed on 'cuda': ${String(e.message).split('\n')[0]}`);
  }
  if (trainer && !String(trainer.model.parameters()[0].device).startsWith('cuda')) {
    skip('model train step', "this build's Trainer has no 'device' option yet (the model stayed on the CPU)");
    trainer.dispose();
    trainer = null;
  }
  if (trainer) {
    check('model train step (tiny iuvit, batch 3, bf16)', () => {
      const r = trainer.trainStep();
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) throw new Error(`loss ${r.loss}, gradient norm ${r.gradNorm}`);
      return `loss ${r.loss.toPrecision(4)}`;
    });
    trainer.dispose();
  }
  let model;
  try {
    model = new dv.DiffusionViT(TINY, { seed: 0, device: 'cuda' });
  } catch (e) {
    skip('model sampling', `DiffusionViT failed on 'cuda': ${String(e.message).split('\n')[0]}`);
    return;
  }
  if (!String(model.parameters()[0].device).startsWith('cuda')) {
    skip('model sampling', "this build's DiffusionViT has no 'device' option yet (the parameters stayed on the CPU)");
    model.dispose();
    return;
  }
  check('model sampling (tiny iuvit, 3 images, Heun 2 steps)', () => {
    const { images } = dv.generate(model, { count: 3, steps: 2, seed: 1 });
    if (!images.every(Number.isFinite)) throw new Error('non-finite pixels');
    return null;
  });
  model.dispose();
}

const info = dv.cuda.info();
console.log(`sanitizer_cases: ${info.name} (cc ${info.computeCapability}${info.emulated ? ', emulated' : ''}), ${only.join(', ')}`);
if (only.includes('attention')) {
  for (const precision of ['float32', 'bf16']) {
    for (const c of ATTENTION) attentionCase(c, precision);
    selfAttentionCase(precision);
  }
}
if (only.includes('edm')) for (const s of IMAGES) edmCases(s);
if (only.includes('model')) modelCases();
dv.synchronize('cuda');
dv.emptyCache('cuda');
console.log(`sanitizer_cases: ${failures ? `${failures} case(s) FAILED` : 'all cases ok'}`);
process.exit(failures ? 1 : 0);
