#!/usr/bin/env node
/**
 * The `diffvit` command.
 *
 *   diffvit train [options]                          EDM training (default: shapes, class-conditional)
 *   diffvit prepare --data SPEC --out FILE           dataset -> memory-mapped cache file
 *   diffvit sample --checkpoint f [options]          checkpoint -> PNG grid or folder
 *   diffvit eval shapes --checkpoint f               class accuracy + Fréchet distance of samples
 *   diffvit make-captions --out dir                  synthetic text-to-image data (shapes + captions)
 *   diffvit info [--json]                            what the addon was built with and is doing
 *   diffvit bench [gemm|attention|fused|model|all] [--out f]     microbenchmarks, table + JSON report
 *
 * Exit codes: 0 success, 1 failure while running, 2 usage error (unknown command or option).
 * Node built-ins only; the native addon is loaded only by commands that need it.
 */
import { parseArgs } from 'node:util';

import { EVAL_HELP, MAKE_CAPTIONS_HELP, PREPARE_HELP, SAMPLE_HELP, TRAIN_HELP } from './help.js';
import { cpuModel, logicalCores, packageJson } from './machine.js';

/** A mistake in the command line: printed with a pointer to the help, exit code 2. */
class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

interface Command {
  summary: string;
  usage: string;
  /** The command prints its own (sub-command) help. */
  ownHelp?: boolean;
  run(args: string[]): Promise<void>;
}

/** Runs a command module's parser, turning util.parseArgs complaints into usage errors. */
async function withUsage(command: string, run: () => Promise<number>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (String((e as { code?: string }).code ?? '').startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError((e as Error).message.split('. To specify a positional')[0], command);
    }
    throw e;
  }
}

const COMMANDS: Record<string, Command> = {
  train: {
    summary: 'train a model with EDM (no options: the shapes data, class-conditional)',
    usage: TRAIN_HELP,
    async run(args) {
      const { trainCommand } = await import('./train.js');
      await withUsage('train', () => trainCommand(args));
    },
  },
  prepare: {
    summary: 'preprocess a dataset into a memory-mapped cache file (train with --data cache:FILE)',
    usage: PREPARE_HELP,
    async run(args) {
      const { prepareCommand } = await import('./prepare.js');
      await withUsage('prepare', () => prepareCommand(args));
    },
  },
  sample: {
    summary: 'sample images from a checkpoint into a PNG grid or folder',
    usage: SAMPLE_HELP,
    async run(args) {
      const { sampleCommand } = await import('./sample.js');
      await withUsage('sample', () => sampleCommand(args));
    },
  },
  eval: {
    summary: "score a checkpoint's samples ('eval shapes': class accuracy, Fréchet distance)",
    usage: EVAL_HELP,
    ownHelp: true,
    async run(args) {
      const { evalCommand } = await import('./eval.js');
      await withUsage('eval', () => evalCommand(args));
    },
  },
  'make-captions': {
    summary: 'write a synthetic text-to-image dataset (coloured shapes, template captions, embeddings)',
    usage: MAKE_CAPTIONS_HELP,
    async run(args) {
      const { makeCaptionsCommand } = await import('./make_captions.js');
      await withUsage('make-captions', () => makeCaptionsCommand(args));
    },
  },
  info: {
    summary: 'print version, CPU features and kernel level, threads, CUDA status, build flags',
    usage: `Usage: diffvit info [--json]

Prints what the native addon was built with and what it is doing: diffvit and Node.js versions,
the CPU's features and the kernel level they dispatch to, the thread count, the matmul precision
'diffvit train' would run at, whether a CUDA backend was built (and why not), and the build flags.

Options:
  --json      print one JSON object instead of text
  -h, --help  show this help

Environment:
  DIFFVIT_THREADS   number of CPU threads (default: one per logical core)
  DIFFVIT_CPU       force a lower kernel level: avx512, avx2 or scalar
  DIFFVIT_ADDON     path of another diffvit.node build to load
  DIFFVIT_MATMUL_PRECISION
                    float32 or bf16: the matmul precision outside autocast scopes, and the
                    one 'diffvit train' runs at without --precision`,
    async run(args) {
      const { values } = parse('info', args, { json: { type: 'boolean' } });
      const info = await loadInfo();
      if (values.json) {
        console.log(JSON.stringify(info, null, 2));
      } else {
        console.log(formatInfo(info));
      }
    },
  },
  bench: {
    summary: 'run benchmarks (gemm, attention, fused ops, model vs the PyTorch twin) and write a JSON report',
    usage: `Usage: diffvit bench [gemm|attention|fused|model|all ...] [--out file.json]

Runs the named benchmarks (default: all), prints one table (bench, case, value, baseline, ratio)
and writes the rows with a description of the machine to bench/results/<name>-<date>.json.

Options:
  --out file.json  write the JSON report here instead
  -h, --help       show this help`,
    async run(args) {
      const { values, positionals } = parse('bench', args, { out: { type: 'string' } }, true);
      // The benchmarks register themselves (lib/ does not import bench/): see bench_suite.ts.
      const { loadBenchSuite } = await import('./bench_suite.js');
      const suite = await loadBenchSuite();
      try {
        suite.resolve(positionals);
      } catch (e) {
        throw new UsageError((e as Error).message, 'bench');
      }
      await suite.run(positionals, values.out);
    },
  },
};

const HELP = `diffvit — vision-transformer diffusion models for Node.js

Usage: diffvit <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(15)}${c.summary}`).join('\n')}

Options:
  -h, --help     show this help (or a command's: diffvit <command> --help)
  -v, --version  print the version

Run 'diffvit <command> --help' for a command's options.`;

type OptionSpec = Record<string, { type: 'boolean' | 'string' }>;

/** util.parseArgs, strict; usage problems become UsageErrors of the command. */
function parse<T extends OptionSpec>(command: string, args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (e) {
    // Node's message, without its long hint about '--' for positionals that start with '-'.
    throw new UsageError((e as Error).message.split('. To specify a positional')[0], command);
  }
}

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
  AVX512_BF16: 'the CPU multiplies bf16 natively',
  default: 'no native bf16 GEMM at this kernel level; bf16 would be emulated',
} as const;

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
    ['bf16 gemm', info.bf16Path.description + (info.bf16Path.path === 'avx512bf16' ? ''
      : info.cpuFeatures.avx512bf16 ? ` — vdpbf16ps needs the avx512 level, not ${info.cpuLevel}` : ' — this CPU lacks AVX512_BF16')],
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

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    console.error(HELP);
    return 2;
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !(topic in COMMANDS)) throw new UsageError(`unknown command '${topic}'`);
    console.log(topic ? COMMANDS[topic].usage : HELP);
    return 0;
  }
  if (first === '-v' || first === '--version') {
    console.log(packageJson().version);
    return 0;
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option '${first}'`);
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!command) throw new UsageError(`unknown command '${first}'`);
  if (!command.ownHelp && (rest.includes('-h') || rest.includes('--help'))) {
    console.log(command.usage);
    return 0;
  }
  await command.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      const help = e.command ? `diffvit ${e.command} --help` : 'diffvit --help';
      const commands = e.command ? '' : `\nCommands: ${Object.keys(COMMANDS).join(', ')}.`;
      const message = e.message.endsWith('.') ? e.message : e.message + '.';
      console.error(`diffvit${e.command ? ' ' + e.command : ''}: ${message}${commands} See '${help}'.`);
      process.exitCode = 2;
    } else {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
    }
  },
);
