#!/usr/bin/env node
/**
 * The GPU benchmark: diffvit on the CUDA device next to PyTorch on the same GPU, all in one run.
 *
 *   attention   fused attention forward and forward+backward at (B,H,N,D) = (128,8,257,64),
 *               (32,8,1025,64), (8,16,4097,64), fp32 and bf16 (diffvit: fp32 tensors, bf16 operands on
 *               the tensor cores under autocast('bf16'); torch: bf16 tensors), each iteration timed
 *               with CUDA events (dv.cuda.time), next to torch's F.scaled_dot_product_attention on
 *               the same layout (bench/gpu/torch_attention.py, torch.cuda.Event), with the SDPA
 *               backend torch picked;
 *   train       the iuvit-s/2 EDM training step, batch 128, bf16 GEMMs (dv.Trainer on 'cuda', one
 *               fixed batch), eager and with the trainer's cudaGraph option, next to the PyTorch
 *               twin's step (its `bench` step: autocast bf16, AdamW) eager and torch.compile'd
 *               (bench/gpu/torch_twin_bench.py);
 *   sample      512 images, EDM Heun 18 steps (35 network evaluations), unconditional, bf16 GEMMs:
 *               dv.generate on 'cuda' in one batch, and in batches of 128 eagerly and with its
 *               cudaGraph option (which replays the first batch's captured loop for the others),
 *               next to the twin's edm_heun_sampler (one batch) eager and compiled.
 *
 * Every case: warm-up calls, then several timed iterations; the median with its spread (min, max,
 * quartiles), TFLOP/s where the FLOP count is clear (attention: 4·B·H·N²·D forward; the backward
 * 2.5× the forward, so forward+backward 3.5×, as bench/attention.ts and FlashAttention's benchmarks
 * count), img/s for the model cases, and the ratio to the PyTorch baseline (baseline time / diffvit
 * time: > 1 means diffvit is faster). A case that fails records its error and the run goes on.
 *
 *   node bench/gpu.mjs [--smoke] [--only attention,train,sample] [--budget SECONDS] [--out FILE]
 *                      [--out-dir DIR] [--python python3] [--twin PATH] [--no-torch] [--no-compile]
 *   node bench/gpu.mjs --profile-train N [--smoke]    N training steps, nothing else (for nsys)
 *
 * Writes bench/results/<gpu-name-slug>-<date>.json (--out FILE instead) after every stage, and a copy
 * into --out-dir. --smoke shrinks every shape to a few rows (for the emulated device: DIFFVIT_ADDON=
 * build-emu/diffvit_cuda_emu.node) and writes to the temp folder unless --out is given, so
 * bench/results holds real GPU runs only. Without a usable CUDA device it prints one line saying
 * why and exits with status 2. Plain JavaScript over the built package (dist/, or DIFFVIT_DIST).
 * scripts/gpu-check.sh runs it; docs/gpu.md says how to run that on a lent GPU.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();

function fail(message) {
  console.error(`bench/gpu.mjs: ${message}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      budget: { type: 'string' },
      out: { type: 'string' },
      'out-dir': { type: 'string' },
      python: { type: 'string' },
      twin: { type: 'string' },
      'no-torch': { type: 'boolean', default: false },
      'no-compile': { type: 'boolean', default: false },
      'profile-train': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (e) {
  fail(e.message);
}
if (args.help) {
  console.log('usage: node bench/gpu.mjs [--smoke] [--only attention,train,sample] [--budget SECONDS] [--out FILE] [--out-dir DIR] [--python python3] [--twin PATH] [--no-torch] [--no-compile] | --profile-train N [--smoke]');
  process.exit(0);
}
const SMOKE = args.smoke;
const STAGES = ['attention', 'train', 'sample'];
const only = args.only ? args.only.split(',').map((s) => s.trim()).filter(Boolean) : STAGES;
for (const s of only) if (!STAGES.includes(s)) fail(`--only: unknown stage '${s}' (expected ${STAGES.join(', ')})`);
const budgetS = args.budget === undefined ? Infinity : Number(args.budget);
if (!(budgetS > 0)) fail(`--budget expected a number of seconds > 0, received '${args.budget}'`);

// ---- the library, and whether a CUDA device is usable: otherwise one line and exit 2 ----
const dist = process.env.DIFFVIT_DIST ? resolve(process.env.DIFFVIT_DIST) : join(root, 'dist');
const indexJs = join(dist, 'lib', 'index.js');
if (!existsSync(indexJs)) fail(`no CUDA device: diffvit is not built (${indexJs} is missing: run npm run build)`);
let dv, native;
try {
  dv = await import(pathToFileURL(indexJs).href);
  ({ native } = await import(pathToFileURL(join(dist, 'lib', 'backend', 'cpu', 'addon.js')).href));
} catch (e) {
  fail(`no CUDA device: diffvit failed to load: ${String(e.message).split('\n')[0]}`);
}
if (!dv.cuda) fail(`no CUDA device: this build of diffvit has no dv.cuda (${dist} predates the CUDA backend: run npm run build)`);
if (!dv.cuda.isAvailable()) fail(`no CUDA device: ${dv.cuda.info().reason || dv.runtimeInfo().cudaStatus}`);
const gpu = dv.cuda.info();

// ---- sizes ----
const FULL = {
  attention: [[128, 8, 257, 64], [32, 8, 1025, 64], [8, 16, 4097, 64]],
  model: 'iuvit-s/2', modelConfig: dv.PRESETS['iuvit-s/2'], batch: 128, samples: 512, sampleBatch: 128, steps: 18,
  warmup: 3, iters: 10, sampleWarmup: 1, sampleIters: 3,
};
const TINY = {
  attention: [[2, 2, 17, 64], [1, 2, 33, 64], [1, 1, 65, 64]],
  model: 'tiny iuvit (smoke)', modelConfig: { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 32, depth: 3, heads: 2 },
  batch: 4, samples: 4, sampleBatch: 2, steps: 3, warmup: 1, iters: 2, sampleWarmup: 1, sampleIters: 2,
};
const S = SMOKE ? TINY : FULL;
const DTYPES = [['fp32', 'float32', 'float32'], ['bf16', 'bf16', 'bfloat16']]; // label, diffvit precision, torch dtype

// ---- helpers ----
function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  const mid = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median_ms: mid, min_ms: s[0], max_ms: s[s.length - 1], p25_ms: q(0.25), p75_ms: q(0.75), mean_ms: s.reduce((a, b) => a + b, 0) / s.length, n: s.length };
}
const spread = (st) => ({ min_ms: st.min_ms, max_ms: st.max_ms, p25_ms: st.p25_ms, p75_ms: st.p75_ms, n: st.n });
const message = (e) => String(e?.message ?? e).split('\n')[0].slice(0, 500);
const elapsedS = () => (Date.now() - started) / 1000;
const leftS = () => budgetS - elapsedS();
const log = (line) => process.stderr.write(`bench/gpu: ${line}\n`);
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'gpu';

/** Times fn on the device (dv.cuda.time: CUDA events around the work fn queues), per iteration. */
function deviceTimes(fn, warmup, iters) {
  for (let i = 0; i < warmup; i++) fn();
  dv.synchronize('cuda');
  const ms = [];
  for (let i = 0; i < iters; i++) ms.push(dv.cuda.time(fn));
  return stats(ms);
}

/** Times fn by the wall clock, per iteration (fn returns only once its results are on the host). */
function wallTimes(fn, warmup, iters) {
  let firstS = null;
  for (let i = 0; i < warmup; i++) {
    const t0 = performance.now();
    fn();
    if (i === 0) firstS = (performance.now() - t0) / 1000;
  }
  const ms = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return { ...stats(ms), firstS };
}

function pythonJson(script, argv, timeoutS) {
  const t0 = Date.now();
  const p = spawnSync(PYTHON, [join(root, 'bench', 'gpu', script), ...argv], {
    encoding: 'utf8', timeout: Math.max(1, timeoutS) * 1000, killSignal: 'SIGKILL', maxBuffer: 1 << 26,
    env: { ...process.env, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const seconds = (Date.now() - t0) / 1000;
  const last = (p.stdout ?? '').trim().split('\n').pop();
  let parsed = null;
  try {
    parsed = JSON.parse(last);
  } catch {
    // no JSON line: say why below
  }
  if (p.error?.code === 'ETIMEDOUT' || (p.signal && !parsed)) throw new Error(`${script} ${argv.join(' ')}: stopped after ${seconds.toFixed(0)} s (time limit ${timeoutS.toFixed(0)} s)`);
  if (!parsed) throw new Error(`${script} exited with status ${p.status}${p.error ? ` (${p.error.message})` : ''} and printed no JSON`);
  if (parsed.error) throw new Error(`${script}: ${parsed.error}`);
  return { ...parsed, seconds };
}

if (args['profile-train'] !== undefined) {
  // nsys mode (scripts/gpu-check.sh): a couple of warm-up steps, then N steps in one range.
  const n = Number(args['profile-train']);
  if (!(Number.isInteger(n) && n > 0)) fail(`--profile-train expected a positive integer, received '${args['profile-train']}'`);
  let trainer;
  try {
    trainer = cudaTrainer(false);
  } catch (e) {
    fail(`--profile-train: ${message(e)}`);
  }
  const batch = trainer.sampler.batch(0);
  for (let i = 0; i < 2; i++) trainer.trainStep(batch);
  const t0 = performance.now();
  let loss = NaN;
  dv.profiler.range('profiled_steps', () => {
    for (let i = 0; i < n; i++) loss = trainer.trainStep(batch).loss;
  });
  console.log(`profiled ${n} training steps of ${S.model}, batch ${S.batch}, bf16: ${((performance.now() - t0) / n).toFixed(2)} ms/step, last loss ${loss.toFixed(4)}`);
  trainer.dispose();
  process.exit(0);
}

// ---- the report, written after every stage ----
const date = new Date();
const file = resolve(args.out ?? (SMOKE
  ? join(tmpdir(), `${slug(gpu.name)}-${date.toISOString().slice(0, 10)}-smoke.json`)
  : join(root, 'bench', 'results', `${slug(gpu.name)}-${date.toISOString().slice(0, 10)}.json`)));
function nvidiaSmi() {
  const p = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit,temperature.gpu', '--format=csv'], { encoding: 'utf8' });
  return p.status === 0 ? p.stdout.trim() : null;
}
const report = {
  schema: 'diffvit-gpu-bench/1',
  date: date.toISOString(),
  smoke: SMOKE,
  command: `node bench/gpu.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  machine: { gpu, nvidiaSmi: nvidiaSmi(), cpu: cpus()[0]?.model ?? '?', cores: cpus().length, node: process.version, diffvit: dv.runtimeInfo() },
  torch: null,
  method: {
    attention: 'diffvit: dv.cuda.time (CUDA events) per iteration; torch: torch.cuda.Event per iteration. q, k, v read in place from one (B, N, 3, H, D) tensor on both sides.',
    flops: 'attention forward 4·B·H·N²·D; backward 2.5× the forward (10·B·H·N²·D), so forward+backward 3.5× (14·B·H·N²·D): the algorithm\'s count, not the recomputation a kernel does',
    model: 'wall-clock time per call, each call ending with its results on the host (diffvit: trainStep reads the loss and gradient norm, generate returns the images; the twin: torch.cuda.synchronize, images copied to the host)',
    ratio: 'baseline median / diffvit median: > 1 means diffvit is faster',
    train: `${S.model}, batch ${S.batch}, bf16 GEMMs, one fixed batch. diffvit's step (dv.Trainer): EDM loss, backward, gradient norm (read to the host), clipping, AdamW, EMA. The twin's step (its bench command's): EDM loss under torch.autocast(bfloat16), backward, AdamW.`,
    sample: `${S.samples} images, unconditional, EDM Heun ${S.steps} steps (${2 * S.steps - 1} network evaluations), GEMMs in bf16 (diffvit: autocast('bf16'); the twin: torch.autocast(bfloat16); its sampler keeps x in float64 between steps). diffvit: one batch of ${S.samples}, and batches of ${S.sampleBatch} eagerly and with cudaGraph (generate captures the first batch's loop and replays it for the others; each call captures anew, and its time includes that); the twin: one batch of ${S.samples}.`,
  },
  sizes: { attention: S.attention, model: S.model, modelConfig: S.modelConfig, batch: S.batch, samples: S.samples, sampleBatch: S.sampleBatch, steps: S.steps, warmup: S.warmup, iters: S.iters, sampleWarmup: S.sampleWarmup, sampleIters: S.sampleIters },
  notes: [],
  rows: [],
};
function save() {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  if (args['out-dir']) {
    mkdirSync(args['out-dir'], { recursive: true });
    copyFileSync(file, join(args['out-dir'], basename(file)));
  }
}
function addRow(row) {
  report.rows.push(row);
  const v = row.error ? `ERROR ${row.error}` : `${row.value.toFixed(3)} ${row.unit}${row.tflops ? ` ${row.tflops.toFixed(1)} TFLOP/s` : ''}${row.imgPerS ? ` ${row.imgPerS.toFixed(0)} img/s` : ''}`;
  log(`${row.bench} | ${row.case} | ${row.impl}: ${v}`);
  return row;
}
/** Sets row[key] (default: baseline) and row[ratioKey] from a baseline case, or says why it is missing. */
function compare(row, name, base, key = 'baseline', ratioKey = 'ratio') {
  if (!row || row.error) return;
  if (!base || base.missing || base.error) {
    row[key] = { name, missing: base?.missing ?? base?.error ?? 'not measured' };
    return;
  }
  row[key] = { name, value: base.median_ms, ...spread(base), ...(base.tflops ? { tflops: base.tflops } : {}), ...(base.imgPerS ? { imgPerS: base.imgPerS } : {}), ...(base.extra ?? {}) };
  row[ratioKey] = base.median_ms / row.value;
}

// ---- PyTorch: which python, which twin ----
const PYTHON = args.python ?? process.env.PYTHON ?? 'python3';
function twinPath() {
  const candidates = [args.twin, process.env.DIFFVIT_TWIN, join(root, '..', 'shared', 'reference', 'diffvit_torch.py'),
    join(root, 'shared', 'reference', 'diffvit_torch.py'), join(root, '.gpu', 'reference', 'diffvit_torch.py')];
  return candidates.find((p) => p && existsSync(p)) ?? null;
}
function probeTorch() {
  if (args['no-torch']) return { missing: 'skipped (--no-torch)' };
  const p = spawnSync(PYTHON, ['-c', 'import json, torch; c = torch.cuda.is_available(); print(json.dumps({"version": torch.__version__, "cuda": c, "cudaVersion": torch.version.cuda, "device": torch.cuda.get_device_name() if c else None, "compile": hasattr(torch, "compile")}))'], { encoding: 'utf8', timeout: 120_000 });
  if (p.status !== 0) return { missing: `PyTorch is not importable by ${PYTHON}${p.error ? ` (${p.error.message})` : `: ${(p.stderr ?? '').trim().split('\n').pop()}`}` };
  const info = JSON.parse(p.stdout.trim().split('\n').pop());
  if (!info.cuda && !SMOKE) return { ...info, missing: `torch ${info.version} sees no CUDA device` };
  return { ...info, gpu: info.device, device: info.cuda ? 'cuda' : 'cpu' };
}
const torch = probeTorch();
report.torch = torch;
const twin = twinPath();
if (torch.missing) report.notes.push(`PyTorch baselines skipped: ${torch.missing}`);
else if (torch.device === 'cpu') report.notes.push(`smoke run: torch ${torch.version} has no CUDA here, so its baselines ran on the CPU (code paths only, not comparable)`);
if (!twin) report.notes.push('the PyTorch twin (diffvit_torch.py) was not found (--twin, DIFFVIT_TWIN, ../shared/reference, shared/reference, .gpu/reference): twin baselines skipped');
if (!torch.missing && !torch.compile) report.notes.push(`torch ${torch.version} has no torch.compile: compiled baselines skipped`);
const twinMissing = torch.missing ?? (twin ? null : 'the twin diffvit_torch.py was not found');
log(`${gpu.name} (cc ${gpu.computeCapability}${gpu.emulated ? ', EMULATED' : ''}; built ${gpu.architectures}; GEMM ${gpu.gemm}); torch: ${torch.missing ?? `${torch.version} on ${torch.device}`}; twin: ${twin ?? 'not found'}; writing ${file}`);
save();

// ---- the stages ----
function timeLeftFor(stage, needS) {
  if (leftS() >= needS) return true;
  report.notes.push(`${stage}: skipped, ${Math.max(0, leftS()).toFixed(0)} s of the ${budgetS} s budget left`);
  return false;
}

function benchAttention() {
  const results = new Map(); // key -> diffvit row
  for (const [B, H, N, D] of S.attention) {
    for (const [label, precision] of DTYPES) {
      const name = `B=${B} H=${H} N=${N} D=${D} ${label}`;
      const flops = 4 * B * H * N * N * D;
      const tensors = [];
      try {
        dv.scope(() => {
          const qkv = dv.keep(dv.randn([B, N, 3, H, D], { device: 'cuda', generator: new dv.Generator(1) }));
          tensors.push(qkv);
          const [q, k, v] = [0, 1, 2].map((i) => dv.keep(dv.detach(qkv.slice(2, i, i + 1).squeeze(2).permute([0, 2, 1, 3]))));
          const dy = dv.keep(dv.randn([B, H, N, D], { device: 'cuda', generator: new dv.Generator(2) }));
          tensors.push(q, k, v, dy);
        });
        const [, q, k, v, dy] = tensors;
        const fwd = deviceTimes(() => dv.autocast(precision, () => dv.noGrad(() => dv.attention(q, k, v))).dispose(), S.warmup, S.iters);
        results.set(`${name} fwd`, addRow({ bench: 'attention', case: `${name} fwd`, impl: 'diffvit', unit: 'ms', value: fwd.median_ms, ...spread(fwd), tflops: flops / (fwd.median_ms * 1e-3) / 1e12 }));
        for (const t of [q, k, v]) t.requiresGrad = true;
        const both = deviceTimes(() => {
          dv.autocast(precision, () => {
            const o = dv.attention(q, k, v);
            o.backward({ grad: dy });
            o.dispose();
          });
          for (const t of [q, k, v]) {
            t.grad?.dispose();
            t.grad = null;
          }
        }, S.warmup, S.iters);
        results.set(`${name} fwd+bwd`, addRow({ bench: 'attention', case: `${name} fwd+bwd`, impl: 'diffvit', unit: 'ms', value: both.median_ms, ...spread(both), tflops: (3.5 * flops) / (both.median_ms * 1e-3) / 1e12 }));
      } catch (e) {
        for (const kind of ['fwd', 'fwd+bwd']) {
          if (!results.has(`${name} ${kind}`)) results.set(`${name} ${kind}`, addRow({ bench: 'attention', case: `${name} ${kind}`, impl: 'diffvit', unit: 'ms', value: null, error: message(e) }));
        }
      } finally {
        for (const t of tensors) {
          t.grad?.dispose();
          t.dispose();
        }
        dv.emptyCache('cuda');
      }
      save();
    }
  }
  // torch SDPA on the same cases, in one python process, after diffvit gave its cached memory back
  let base = { missing: torch.missing };
  if (!torch.missing && timeLeftFor('torch attention', 20)) {
    try {
      const out = pythonJson('torch_attention.py', ['--cases', JSON.stringify(S.attention), '--dtypes', DTYPES.map((d) => d[2]).join(','),
        '--warmup', String(S.warmup), '--iters', String(S.iters), '--device', torch.device], Math.min(240, leftS() - 5));
      base = out;
      report.torchAttention = { torch: out.torch, device: out.device, cuda: out.cuda, cudnn: out.cudnn, timing: out.timing, layout: out.layout, seconds: out.seconds };
    } catch (e) {
      base = { missing: message(e) };
    }
  } else if (!torch.missing) {
    base = { missing: 'skipped: time budget' };
  }
  for (const [B, H, N, D] of S.attention) {
    for (const [label, , tdt] of DTYPES) {
      const c = base.cases?.find((x) => x.B === B && x.H === H && x.N === N && x.D === D && x.dtype === tdt);
      for (const [kind, key] of [['fwd', 'fwd'], ['fwd+bwd', 'fwd_bwd']]) {
        const row = results.get(`B=${B} H=${H} N=${N} D=${D} ${label} ${kind}`);
        const name = `torch SDPA${c?.backend ? ` [${c.backend.split(' ')[0]}]` : ''} ${tdt}`;
        compare(row, name, base.missing ? base : !c ? { missing: 'no result' } : c.error ? { error: c.error } : { ...c[key], extra: { backend: c.backend } });
      }
    }
  }
  save();
}

/** A Trainer on the CUDA device, or an Error saying why not. */
function cudaTrainer(cudaGraph) {
  const config = {
    ...dv.DEFAULT_TRAIN_CONFIG, model: S.modelConfig, data: { kind: 'shapes' }, batchSize: S.batch, steps: 1_000_000,
    matmulPrecision: 'bf16', device: 'cuda', ...(cudaGraph ? { cudaGraph: true } : {}),
  };
  const trainer = new dv.Trainer(config);
  const where = trainer.model.parameters()[0].device;
  if (!String(where).startsWith('cuda')) {
    trainer.dispose();
    throw new Error(`the Trainer kept the model on '${where}': this build's Trainer has no 'device' option yet (TrainConfig.device = 'cuda' was ignored)`);
  }
  return trainer;
}

const graphCount = () => native.cudaGraphCount?.() ?? 0;

function benchTrain() {
  const rows = {};
  for (const graph of [false, true]) {
    const label = graph ? 'cudaGraph' : 'eager';
    const kase = `${S.model} train step, batch ${S.batch}, bf16 (${label})`;
    let trainer = null;
    try {
      const before = graphCount();
      trainer = cudaTrainer(graph);
      const batch = trainer.sampler.batch(0);
      const losses = [];
      const st = wallTimes(() => losses.push(trainer.trainStep(batch).loss), S.warmup, S.iters);
      const row = { bench: 'train', case: kase, impl: 'diffvit', unit: 'ms', value: st.median_ms, ...spread(st), imgPerS: S.batch / (st.median_ms * 1e-3), firstStepS: st.firstS, losses: [losses[0], losses[losses.length - 1]] };
      if (!losses.every(Number.isFinite)) row.warning = 'a loss was not finite';
      if (graph) {
        row.graphsAlive = graphCount() - before;
        if (row.graphsAlive <= 0) row.warning = "no CUDA graph was alive after the steps: this build's Trainer ignores the cudaGraph option (the timing is eager)";
      }
      rows[label] = addRow(row);
    } catch (e) {
      rows[label] = addRow({ bench: 'train', case: kase, impl: 'diffvit', unit: 'ms', value: null, error: message(e) });
    } finally {
      trainer?.dispose();
      dv.emptyCache('cuda');
    }
    save();
  }
  return rows;
}

/**
 * generate's cudaGraph captures one batch's whole sampling loop and replays it for the further
 * batches of the same size (the first batch runs eagerly, then is captured), so it needs
 * batchSize < count: the graph case samples in batches of S.sampleBatch, next to the same batches
 * eagerly and to one eager batch of all the images.
 */
function benchSample() {
  const rows = {};
  const variants = [
    ['eager', {}, `${S.samples} images in one batch`],
    ['eagerBatched', { batchSize: S.sampleBatch }, `batches of ${S.sampleBatch}`],
    ['cudaGraph', { batchSize: S.sampleBatch, cudaGraph: true }, `batches of ${S.sampleBatch}, cudaGraph`],
  ];
  const kase = (what) => `${S.model} sampling, ${S.samples} images, Heun ${S.steps} steps, bf16 (${what})`;
  let model = null;
  try {
    model = new dv.DiffusionViT(S.modelConfig, { seed: 0, device: 'cuda' });
    const where = model.parameters()[0].device;
    if (!String(where).startsWith('cuda')) throw new Error(`DiffusionViT kept its parameters on '${where}': this build's DiffusionViT has no 'device' option yet`);
  } catch (e) {
    model?.dispose();
    model = null;
    for (const [label, , what] of variants) rows[label] = addRow({ bench: 'sample', case: kase(what), impl: 'diffvit', unit: 'ms', value: null, error: message(e) });
  }
  let eagerImages = null;
  for (const [label, options, what] of model ? variants : []) {
    try {
      const before = graphCount();
      let alive = 0;
      let images = null;
      const run = () => {
        images = dv.autocast('bf16', () => dv.generate(model, {
          count: S.samples, steps: S.steps, sampler: 'heun', seed: 1, ...options,
          onStep: () => { alive = Math.max(alive, graphCount() - before); },
        })).images;
      };
      const st = wallTimes(run, S.sampleWarmup, S.sampleIters);
      const row = { bench: 'sample', case: kase(what), impl: 'diffvit', unit: 'ms', value: st.median_ms, ...spread(st), imgPerS: S.samples / (st.median_ms * 1e-3), firstCallS: st.firstS, ...options };
      if (!images.every(Number.isFinite)) row.warning = 'the images hold non-finite values';
      if (options.cudaGraph) {
        row.graphsAliveDuringSampling = alive;
        if (alive <= 0) row.warning = "no CUDA graph was alive while sampling: this build's generate ignores the cudaGraph option (the timing is eager)";
      }
      if (eagerImages) {
        let d = 0;
        for (let i = 0; i < images.length; i++) d = Math.max(d, Math.abs(images[i] - eagerImages[i]));
        row.maxAbsDiffToEager = d; // same latents: equal within the rounding of batched bf16 kernels
      } else {
        eagerImages = images;
      }
      rows[label] = addRow(row);
    } catch (e) {
      rows[label] = addRow({ bench: 'sample', case: kase(what), impl: 'diffvit', unit: 'ms', value: null, error: message(e) });
    } finally {
      dv.emptyCache('cuda');
    }
    save();
  }
  model?.dispose();
  dv.emptyCache('cuda');
  return rows;
}

/** The twin's train step or sampling, eager or compiled; {missing} when it cannot run. */
function twinCase(what, compile) {
  if (twinMissing) return { missing: twinMissing };
  if (compile && args['no-compile']) return { missing: 'skipped (--no-compile)' };
  if (compile && !torch.compile) return { missing: `torch ${torch.version} has no torch.compile` };
  const need = compile ? 90 : 25;
  if (leftS() < need) return { missing: `skipped: ${Math.max(0, leftS()).toFixed(0)} s of the time budget left (needs ~${need} s)` };
  const argv = ['--twin', twin, '--what', what, '--config', JSON.stringify(S.modelConfig), '--device', torch.device,
    '--batch', String(S.batch), '--samples', String(S.samples), '--steps', String(S.steps),
    '--warmup', String(what === 'train' ? S.warmup : S.sampleWarmup), '--iters', String(what === 'train' ? S.iters : S.sampleIters),
    ...(compile ? ['--compile'] : [])];
  try {
    const out = pythonJson('torch_twin_bench.py', argv, Math.min(compile ? 300 : 150, leftS() - 5));
    log(`twin ${what}${compile ? ' compiled' : ''}: ${out.wall.median_ms.toFixed(2)} ms median, ${out.img_per_s.toFixed(0)} img/s (first call ${out.first_call_s?.toFixed(1)} s)`);
    return { ...out.wall, imgPerS: out.img_per_s, extra: { firstCallS: out.first_call_s, ...(out.events ? { deviceMedianMs: out.events.median_ms } : {}), params: out.params, torch: out.torch } };
  } catch (e) {
    return { missing: message(e) };
  }
}

if (only.includes('attention') && timeLeftFor('attention', 10)) benchAttention();
let trainRows = null, sampleRows = null;
if (only.includes('train') && timeLeftFor('train', 15)) trainRows = benchTrain();
const twinTrainEager = trainRows ? twinCase('train', false) : null;
if (trainRows) {
  for (const r of Object.values(trainRows)) compare(r, 'pytorch twin eager', twinTrainEager);
  save();
}
if (only.includes('sample') && timeLeftFor('sample', 15)) sampleRows = benchSample();
const twinSampleEager = sampleRows ? twinCase('sample', false) : null;
if (sampleRows) {
  for (const r of Object.values(sampleRows)) compare(r, 'pytorch twin eager', twinSampleEager);
  save();
}
// torch.compile last: its compilation takes the longest and matters least if time runs out.
for (const [what, rows] of [['train', trainRows], ['sample', sampleRows]]) {
  if (!rows) continue;
  const compiled = twinCase(what, true);
  for (const r of Object.values(rows)) compare(r, 'pytorch twin torch.compile', compiled, 'baselineCompiled', 'ratioCompiled');
  save();
}

report.seconds = elapsedS();
save();
const failed = report.rows.filter((r) => r.error).length;
console.log(`bench/gpu: ${report.rows.length} rows (${failed} failed) in ${report.seconds.toFixed(0)} s on ${gpu.name}; wrote ${file}${args['out-dir'] ? ` and a copy in ${args['out-dir']}` : ''}`);
const versus = (b, ratio) => (!b ? '' : 'value' in b ? `  | ${b.name} ${b.value.toFixed(3)} ms: ${ratio.toFixed(2)}x` : `  | ${b.name}: ${b.missing}`);
for (const r of report.rows) {
  const value = r.error ? `ERROR: ${r.error}` : `${r.value.toFixed(3)} ms${r.tflops ? `  ${r.tflops.toFixed(1)} TFLOP/s` : ''}${r.imgPerS ? `  ${r.imgPerS.toFixed(0)} img/s` : ''}`;
  console.log(`${r.bench.padEnd(9)} ${r.case.padEnd(62)} ${value}${versus(r.baseline, r.ratio)}${versus(r.baselineCompiled, r.ratioCompiled)}${r.warning ? `  (${r.warning})` : ''}`);
}
