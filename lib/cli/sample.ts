/** `diffvit sample`: checkpoint -> PNG grid or a folder of PNGs. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import { generate, SAMPLERS, type SamplerName } from '../diffusion/sample.js';
import { imageGridPNG } from '../image/grid.js';
import { encodePNG } from '../image/png.js';
import { loadCheckpoint } from '../models/checkpoint.js';
import { SAMPLE_HELP } from './help.js';
import { ProgressBar } from './progress.js';

export function parseLabels(spec: string | undefined, numClasses: number, count: number): Int32Array | null {
  if (spec === undefined) return numClasses ? Int32Array.from({ length: count }, (_, i) => i % numClasses) : null;
  if (!numClasses) throw new Error('diffvit sample: --labels given but the model is unconditional (num_classes 0)');
  if (spec === 'all') return Int32Array.from({ length: count * numClasses }, (_, i) => Math.floor(i / count));
  const labels = spec.split(',').map((s) => Number(s.trim()));
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l > numClasses) throw new Error(`diffvit sample: --labels expected classes in [0, ${numClasses}] (${numClasses} = unconditional), received '${spec}'`);
  }
  return Int32Array.from(labels);
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      checkpoint: { type: 'string' }, out: { type: 'string' }, folder: { type: 'boolean' }, count: { type: 'string', short: 'n' },
      labels: { type: 'string' }, sampler: { type: 'string' }, steps: { type: 'string' }, guidance: { type: 'string' },
      churn: { type: 'string' }, seed: { type: 'string' }, columns: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(SAMPLE_HELP);
    return 0;
  }
  if (!values.checkpoint) throw new Error('diffvit sample: --checkpoint FILE is required (see diffvit sample --help)');
  const sampler = (values.sampler ?? 'heun') as SamplerName;
  if (!SAMPLERS.includes(sampler)) throw new Error(`diffvit sample: --sampler expected one of ${SAMPLERS.join(', ')}, received '${sampler}'`);
  const int = (name: string, v: string | undefined, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`diffvit sample: --${name} expected a number, received '${v}'`);
    return n;
  };
  const { model, extra } = loadCheckpoint(values.checkpoint);
  for (const t of extra.values()) t.dispose();
  const c = model.config;
  const count = int('count', values.count, values.labels === 'all' ? 4 : 16);
  const labels = parseLabels(values.labels, c.num_classes, count);
  const steps = int('steps', values.steps, sampler === 'ddim' ? 50 : 18);
  const evals = sampler === 'heun' ? 2 * steps - 1 : steps;
  const bar = new ProgressBar(steps, `sample (${sampler}, ${evals} evaluations)`);
  const { images, shape } = generate(model, {
    labels, count, sampler, steps, guidance: int('guidance', values.guidance, 1), churn: int('churn', values.churn, 0),
    seed: int('seed', values.seed, 0), onStep: (i) => bar.update(i),
  });
  const [B, C, H, W] = shape;
  const out = values.out ?? (values.folder ? 'samples' : 'samples.png');
  if (values.folder) {
    mkdirSync(out, { recursive: true });
    for (let b = 0; b < B; b++) {
      const rgb = new Uint8Array(H * W * 3);
      for (let p = 0; p < H * W; p++) {
        for (let ch = 0; ch < 3; ch++) rgb[p * 3 + ch] = Math.max(0, Math.min(255, Math.round((images[(b * C + (C === 1 ? 0 : ch)) * H * W + p] + 1) * 127.5)));
      }
      writeFileSync(join(out, `${String(b).padStart(5, '0')}${labels ? `-class${labels[b]}` : ''}.png`), encodePNG(rgb, W, H));
    }
  } else {
    mkdirSync(dirname(out) || '.', { recursive: true });
    const columns = values.columns ? int('columns', values.columns, 0) : labels && values.labels === 'all' ? count : undefined;
    writeFileSync(out, imageGridPNG(images, B, C, H, W, { columns, scale: H <= 32 ? 2 : 1 }));
  }
  console.error(`diffvit sample: wrote ${B} images to ${out}`);
  model.dispose();
  return 0;
}
