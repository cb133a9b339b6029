/**
 * The `diffvit` command line: the command table and runCli, which runs one command line and
 * returns its exit code — 0 success, 1 failure while running, 2 usage error (a mistake in the
 * command line, found before any work). Errors print as one line naming the command; the stack
 * trace only with DIFFVIT_DEBUG=1. Node built-ins only at the top level: the native addon is loaded
 * by the commands that need it, so help and --version work without it.
 */
import { BENCH_HELP, EVAL_HELP, EXPORT_HELP, INFO_HELP, MAKE_CAPTIONS_HELP, PREPARE_HELP, SAMPLE_HELP, TRAIN_HELP } from './help.js';
import { packageJson } from './machine.js';
import { didYouMean, UsageError } from './options.js';

export interface Command {
  summary: string;
  usage: string;
  /** The command prints its own (sub-command) help. */
  ownHelp?: boolean;
  run(args: string[]): Promise<number>;
}

export const COMMANDS: Record<string, Command> = {
  train: {
    summary: 'train a model with EDM (no options: the shapes data, class-conditional)',
    usage: TRAIN_HELP,
    run: async (args) => (await import('./train.js')).trainCommand(args),
  },
  prepare: {
    summary: 'preprocess a dataset into a memory-mapped cache file (train with --data cache:FILE)',
    usage: PREPARE_HELP,
    run: async (args) => (await import('./prepare.js')).prepareCommand(args),
  },
  sample: {
    summary: 'sample images from a checkpoint into a PNG grid or folder',
    usage: SAMPLE_HELP,
    run: async (args) => (await import('./sample.js')).sampleCommand(args),
  },
  eval: {
    summary: "score a checkpoint's samples ('eval shapes': class accuracy, Fréchet distance; 'eval fid')",
    usage: EVAL_HELP,
    ownHelp: true,
    run: async (args) => (await import('./eval.js')).evalCommand(args),
  },
  export: {
    summary: "write a checkpoint's EMA (or raw) weights alone: a weights-only safetensors",
    usage: EXPORT_HELP,
    run: async (args) => (await import('./export.js')).exportCommand(args),
  },
  'make-captions': {
    summary: 'write a synthetic text-to-image dataset (coloured shapes, template captions, embeddings)',
    usage: MAKE_CAPTIONS_HELP,
    run: async (args) => (await import('./make_captions.js')).makeCaptionsCommand(args),
  },
  info: {
    summary: 'print version, CPU features and kernel level, threads, CUDA status, build flags',
    usage: INFO_HELP,
    run: async (args) => (await import('./info.js')).infoCommand(args),
  },
  bench: {
    summary: 'run benchmarks (gemm, attention, fused ops, model vs the PyTorch twin) and write a JSON report',
    usage: BENCH_HELP,
    run: async (args) => (await import('./bench_command.js')).benchCommand(args),
  },
};

export const HELP = `diffvit — vision-transformer diffusion models for Node.js

Usage: diffvit <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(15)}${c.summary}`).join('\n')}

Options:
  -h, --help     show this help (or a command's: diffvit <command> --help)
  -v, --version  print the version

Run 'diffvit <command> --help' for a command's options.
Exit codes: 0 success, 1 failure while running, 2 usage error.`;

async function dispatch(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    console.error(HELP);
    return 2;
  }
  if (first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !Object.hasOwn(COMMANDS, topic)) throw new UsageError('', `unknown command '${topic}'${didYouMean(topic, Object.keys(COMMANDS))}`);
    console.log(topic ? COMMANDS[topic].usage : HELP);
    return 0;
  }
  if (first === '-v' || first === '--version') {
    console.log(packageJson().version);
    return 0;
  }
  if (first.startsWith('-')) throw new UsageError('', `unknown option '${first}' (options before a command: --help, --version)`);
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!command) throw new UsageError('', `unknown command '${first}'${didYouMean(first, Object.keys(COMMANDS))}`);
  const end = rest.indexOf('--');
  const options = end === -1 ? rest : rest.slice(0, end);
  if (!command.ownHelp && (options.includes('-h') || options.includes('--help'))) {
    console.log(command.usage);
    return 0;
  }
  return command.run(rest);
}

/** The message of an error thrown by a command: one line where the error is one of ours. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return `diffvit: ${String(e)}`;
  if (process.env.DIFFVIT_DEBUG === '1' && e.stack) return e.stack;
  return e.message || e.name;
}

/** Runs one `diffvit` command line; returns the exit code (errors are printed, never thrown). */
export async function runCli(argv: string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      const command = e.command;
      const message = e.message.endsWith('.') ? e.message : e.message + '.';
      const commands = command ? '' : ` Commands: ${Object.keys(COMMANDS).join(', ')}.`;
      console.error(`${message}${commands} See 'diffvit ${command ? command + ' ' : ''}--help'.`);
      return 2;
    }
    console.error(describe(e));
    return 1;
  }
}
