/** `diffvit info`: what the native addon was built with and what it is doing. */
import { cpuModel, logicalCores } from './machine.js';
import { cliHooks, type OptionSpec, parseOptions } from './options.js';

export const INFO_OPTIONS = {
  json: { kind: 'flag' },
} as const satisfies Record<string, OptionSpec>;

type Info = Awaited<ReturnType<typeof loadInfo>>;

async function loadInfo() {
  // Loading the runtime loads the addon: a missing build surfaces here with its own message.
  const { runtimeInfo } = await import('../runtime.js');
  const { trainPrecision } = await import('./precision.js');
  const { registeredBackends } = await import('../backend/index.js');
  const { nvtxStatus } = await import('../backend/cpu/runtime.js');
  return {
    ...runtimeInfo(),
    /** The devices this build can use (one registered backend each). */
    backends: registeredBackends(),
    cuda: (await import('../cuda.js')).info(),
    nvtx: nvtxStatus(),
    /** The precision `diffvit train` runs at without --precision, and why. */
    trainPrecision: trainPrecision(),
    platform: `${process.platform} ${process.arch}`,
    cpuModel: cpuModel(),
    logicalCores: logicalCores(),
    env: {
      DIFFVIT_THREADS: process.env.DIFFVIT_THREADS ?? null,
      DIFFVIT_CPU: process.env.DIFFVIT_CPU ?? null,
      DIFFVIT_ADDON: process.env.DIFFVIT_ADDON ?? null,
      DIFFVIT_MATMUL_PRECISION: process.env.DIFFVIT_MATMUL_PRECISION ?? null,
    },
  };
}

const TRAIN_PRECISION_WHY = {
  DIFFVIT_MATMUL_PRECISION: 'from DIFFVIT_MATMUL_PRECISION',
  'native bf16': 'the CPU multiplies bf16 natively',
  'intel vdpbf16ps': 'on this Intel CPU bf16 runs on vdpbf16ps without AMX, slower than float32',
  default: 'no native bf16 GEMM at this kernel level; bf16 would be emulated',
} as const;

/** Why bf16 GEMMs do not run on a faster kernel than they do ('' on AMX). */
function bf16PathNote(info: Info): string {
  const f = info.cpuFeatures;
  if (info.bf16Path.path === 'amx') return '';
  if (info.cpuLevel !== 'avx512' && f.avx512bf16) return ` — the native bf16 kernels need the avx512 level, not ${info.cpuLevel}`;
  if (f.amxTile && f.amxBf16) return ' — the CPU has AMX but the OS did not grant its tile state (Linux 5.16 or later does)';
  return info.bf16Path.path === 'emulated' ? ' — this CPU lacks AVX512_BF16 and AMX' : ' — this CPU lacks AMX';
}

function formatInfo(info: Info): string {
  const has = Object.entries(info.cpuFeatures).filter(([, v]) => v).map(([k]) => k);
  const lacks = Object.entries(info.cpuFeatures).filter(([, v]) => !v).map(([k]) => k);
  const threadsEnv = info.env.DIFFVIT_THREADS;
  let threadsNote: string;
  if (threadsEnv === null) threadsNote = 'one per logical core; DIFFVIT_THREADS overrides';
  else if (info.threads === Math.min(Number.parseInt(threadsEnv, 10), 1024)) threadsNote = `from DIFFVIT_THREADS=${threadsEnv}`;
  else threadsNote = `DIFFVIT_THREADS=${threadsEnv} ignored: not a positive integer`;
  const rows: [string, string][] = [
    ['version', `diffvit ${info.version}, Node.js ${info.node}, ${info.platform}`],
    ['cpu', `${info.cpuModel} (${info.logicalCores} logical cores)`],
    ['cpu features', has.join(' ') + (lacks.length ? `   (absent: ${lacks.join(' ')})` : '')],
    ['kernels', `${info.cpuLevel}${info.cpuLevel === info.cpuBestLevel ? ' (the best this CPU supports)' : ` (this CPU supports up to ${info.cpuBestLevel})`}` +
      (info.cpuLevelNote ? ` — ${info.cpuLevelNote}` : '')],
    ['threads', `${info.threads} (${threadsNote})`],
    ['matmul', `train: ${info.trainPrecision.precision} (${TRAIN_PRECISION_WHY[info.trainPrecision.source]}; --precision overrides); ` +
      `library default outside autocast: ${info.matmulPrecision}; attention stays fp32`],
    ['bf16 gemm', info.bf16Path.description + bf16PathNote(info)],
    ['devices', info.backends.join(', ')],
    ['cuda', info.cudaBuilt ? `built — ${info.cudaStatus}` : info.cudaStatus],
    ...(info.cuda.usable ? [['cuda gemm', info.cuda.gemm] as [string, string]] : []),
    ['nvtx', info.nvtx.nvtx ? `compiled in: one range per kernel under nsys${info.nvtx.attached ? ' (a tool is attached now)' : ''} — docs/profiling.md`
      : 'not compiled in (CMake found no nvtx3/nvToolsExt.h); the built-in profiler (--profile) still works'],
    ['build', info.buildFlags],
  ];
  if (info.env.DIFFVIT_ADDON) rows.push(['addon', `${info.env.DIFFVIT_ADDON} (from DIFFVIT_ADDON)`]);
  return rows.map(([k, v]) => `${k.padEnd(13)} ${v}`).join('\n');
}

export async function infoCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions('info', argv, INFO_OPTIONS);
  cliHooks.beforeWork('info');
  const info = await loadInfo();
  console.log(values.json ? JSON.stringify(info, null, 2) : formatInfo(info));
  return 0;
}
