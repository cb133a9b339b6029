/**
 * Whole-model benchmarks against the PyTorch twin on the same machine, in the same run:
 * the iuvit-t/4 training step (EDM loss, backward, AdamW; batch 32) and a 64-image sampling
 * forward pass (one denoiser evaluation), img/s for diffvit and for the twin, with the ratio.
 *
 *   diffvit bench model
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../lib/backend/native.js';
import { EDMDenoiser } from '../lib/diffusion/edm.js';
import { PRESETS } from '../lib/models/configs.js';
import { randn } from '../lib/ops/creation.js';
import { runtimeInfo, type MatmulPrecision } from '../lib/runtime.js';
import { noGrad } from '../lib/tensor/autograd.js';
import { scope } from '../lib/tensor/scope.js';
import { DEFAULT_TRAIN_CONFIG, Trainer } from '../lib/train/trainer.js';
import { type BenchRow, timeIt } from './common.js';

const PYTHON = '/usr/bin/python3';
const INSTALL = 'apt-get install -y python3-torch';

function twinPath(): string {
  return join(packageRoot(), '..', 'shared', 'reference', 'diffvit_torch.py');
}

/** Times the twin with a Python snippet (training step via its own `bench`, forward via EDMPrecond). */
function twin(preset: string, batch: number, samples: number): { stepMs: number; forwardMs: number } | { missing: string } {
  if (!existsSync(PYTHON) || spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) {
    return { missing: `PyTorch not installed (${INSTALL})` };
  }
  if (!existsSync(twinPath())) return { missing: `the twin is not at ${twinPath()}` };
  const step = JSON.parse(execFileSync(PYTHON, [twinPath(), 'bench', '--preset', preset, '--batch', String(batch)], { encoding: 'utf8' }).trim().split('\n').pop()!);
  const script = `
import sys, time, json, torch
sys.path.insert(0, ${JSON.stringify(join(twinPath(), '..'))})
import diffvit_torch as t
torch.set_num_threads(${Number(process.env.DIFFVIT_THREADS ?? 0) || 'torch.get_num_threads()'})
net = t.DiffusionViT(**t.PRESETS[${JSON.stringify(preset)}]).eval()
D = t.EDMPrecond(net)
c = net.cfg
x = torch.randn(${samples}, c["in_chans"], c["img_size"], c["img_size"])
s = torch.full((${samples},), 2.5)
with torch.no_grad():
    for _ in range(2): D(x, s)
    times = []
    for _ in range(5):
        t0 = time.perf_counter(); D(x, s); times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"forward_ms": times[len(times)//2] * 1e3}))`;
  const fwd = JSON.parse(execFileSync(PYTHON, ['-c', script], { encoding: 'utf8' }).trim().split('\n').pop()!);
  return { stepMs: step.step_ms, forwardMs: fwd.forward_ms };
}

/** Seconds per training step of `preset` at the given GEMM precision. */
function timeTrainStep(preset: string, batch: number, matmulPrecision: MatmulPrecision): number {
  const trainer = new Trainer({ ...DEFAULT_TRAIN_CONFIG, model: PRESETS[preset], data: { kind: 'shapes' }, batchSize: batch, matmulPrecision });
  try {
    return timeIt(() => trainer.trainStep(), { warmup: 2, minRuns: 5, minSeconds: 3 });
  } finally {
    trainer.dispose();
  }
}

export function benchModel(preset = 'iuvit-t/4', batch = 32, samples = 64): BenchRow[] {
  const stepS = timeTrainStep(preset, batch, 'float32');
  const stepBf16S = timeTrainStep(preset, batch, 'bf16');
  const trainer = new Trainer({ ...DEFAULT_TRAIN_CONFIG, model: PRESETS[preset], data: { kind: 'shapes' }, batchSize: batch });
  const D = new EDMDenoiser(trainer.model);
  const c = trainer.model.config;
  const x = randn([samples, c.in_chans, c.img_size, c.img_size]);
  const sigmas = new Float64Array(samples).fill(2.5);
  const forwardS = timeIt(() => noGrad(() => scope(() => { D.forward(x, sigmas); })), { warmup: 1, minRuns: 5, minSeconds: 3 });
  x.dispose();
  trainer.dispose();
  const base = twin(preset, batch, samples);
  const row = (kase: string, imgPerS: number, twinImgPerS: number | null): BenchRow => ({
    bench: 'model',
    case: kase,
    unit: 'img/s',
    value: imgPerS,
    baseline: 'missing' in base ? { name: 'pytorch twin', missing: base.missing } : { name: 'pytorch twin', value: twinImgPerS! },
    ratio: 'missing' in base ? undefined : imgPerS / twinImgPerS!,
  });
  return [
    row(`${preset} train step, batch ${batch}`, batch / stepS, 'missing' in base ? null : (batch * 1000) / base.stepMs),
    row(`${preset} train step bf16 GEMMs (${runtimeInfo().bf16Path.path}), batch ${batch}`, batch / stepBf16S, 'missing' in base ? null : (batch * 1000) / base.stepMs),
    row(`${preset} sampling forward, ${samples} images`, samples / forwardS, 'missing' in base ? null : (samples * 1000) / base.forwardMs),
  ];
}
