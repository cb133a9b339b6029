/**
 * Whole-model benchmarks against the PyTorch twin on the same machine, in the same run:
 * the iuvit-t/4 training step (EDM loss, backward, AdamW; batch 32) and a 64-image sampling
 * forward pass (one denoiser evaluation), img/s for diffvit and for the twin, with the ratio.
 *
 *   diffvit bench model
 */
import { EDMDenoiser } from '../lib/diffusion/edm.js';
import { PRESETS } from '../lib/models/configs.js';
import { randn } from '../lib/ops/creation.js';
import { setBf16PathLimit } from '../lib/backend/cpu/runtime.js';
import { runtimeInfo, type MatmulPrecision } from '../lib/runtime.js';
import { noGrad } from '../lib/tensor/autograd.js';
import { scope } from '../lib/tensor/scope.js';
import { DEFAULT_TRAIN_CONFIG, Trainer } from '../lib/train/trainer.js';
import { type BenchRow, timedBf16Paths, timeIt } from './common.js';
import { runTwin, runTwinSnippet, twinMissing, twinThreadCounts } from './twin.js';

/** Times the twin (the faster of its thread counts): the training step via its own `bench`, the forward via EDMPrecond. */
function twin(preset: string, batch: number, samples: number): { stepMs: number; forwardMs: number } | { missing: string } {
  const missing = twinMissing();
  if (missing) return { missing };
  const forward = (threads: number) => runTwinSnippet<{ forward_ms: number }>(`
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
print(json.dumps({"forward_ms": times[len(times)//2] * 1e3}))`, threads).forward_ms;
  const counts = twinThreadCounts();
  return {
    stepMs: Math.min(...counts.map((n) => runTwin<{ step_ms: number }>(['bench', '--preset', preset, '--batch', String(batch)], n).step_ms)),
    forwardMs: Math.min(...counts.map(forward)),
  };
}

/** Seconds per training step of `preset` at the given GEMM precision (and fraction of dropped tokens). */
function timeTrainStep(preset: string, batch: number, matmulPrecision: MatmulPrecision, maskRatio = 0): number {
  const trainer = new Trainer({ ...DEFAULT_TRAIN_CONFIG, model: PRESETS[preset], data: { kind: 'shapes' }, batchSize: batch, matmulPrecision, maskRatio });
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

/**
 * The default run's step (`diffvit train`: iuvit-xs/4, batch 32; masked, as its first three
 * quarters run, and on every token, as its last) with float32 GEMMs and with bf16 GEMMs on each
 * native kernel of this CPU (AMX, vdpbf16ps; the emulated one where it has neither), each against
 * the float32 step of the same run.
 *
 *   diffvit bench train-step
 */
export function benchTrainStep(preset = 'iuvit-xs/4', batch = 32): BenchRow[] {
  const rows: BenchRow[] = [];
  try {
    for (const maskRatio of [0.75, 0]) {
      const what = `${preset} train step, batch ${batch}, ${maskRatio ? `mask ratio ${maskRatio}` : 'every token'}`;
      const fp32 = batch / timeTrainStep(preset, batch, 'float32', maskRatio);
      rows.push({ bench: 'train-step', case: `${what}, float32 GEMMs`, unit: 'img/s', value: fp32 });
      for (const path of timedBf16Paths()) {
        setBf16PathLimit(path);
        const bf16 = batch / timeTrainStep(preset, batch, 'bf16', maskRatio);
        rows.push({ bench: 'train-step', case: `${what}, bf16 GEMMs (${path})`, unit: 'img/s', value: bf16,
          baseline: { name: 'float32 GEMMs', value: fp32 }, ratio: bf16 / fp32 });
      }
    }
  } finally {
    setBf16PathLimit('amx');
  }
  return rows;
}
