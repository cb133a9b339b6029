/**
 * The one option parser of every `diffvit` command. util.parseArgs splits the command line
 * (strict: unknown options are errors), then each value is checked against its declared kind
 * before the command does any work. Every mistake is a UsageError (exit code 2) that names the
 * option, the value received and what is allowed.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** A mistake in the command line: printed with a pointer to the command's help, exit code 2. */
export class UsageError extends Error {
  constructor(readonly command: string, message: string) {
    super(`diffvit${command ? ' ' + command : ''}: ${message}`);
    this.name = 'UsageError';
  }
}

/** Seeds are 32-bit (lib/data/rng.ts mixes them as uint32). */
export const MAX_SEED = 2 ** 32 - 1;

interface Common {
  short?: string;
  /** The value's placeholder in messages: --count N. */
  arg?: string;
  /** Shown as "(default X)" in the help; the help test compares the two. */
  default?: number | string;
  required?: boolean;
}

export type OptionSpec =
  | { kind: 'flag'; short?: string }
  /** An integer in [min, max]. */
  | (Common & { kind: 'int'; min: number; max: number })
  /** A finite number: >= min (or > above), <= max (or < below). */
  | (Common & { kind: 'number'; min?: number; above?: number; max?: number; below?: number })
  | (Common & { kind: 'string'; optionalValue?: boolean })
  | (Common & { kind: 'choice'; choices: readonly string[] })
  /** An existing file (or directory) to read. */
  | (Common & { kind: 'file' | 'dir' })
  /** A file to write: not a directory, in a folder that exists or can be made; optional extensions. */
  | (Common & { kind: 'out-file'; extensions?: readonly string[] })
  /** A folder to write into: not a file, inside a writable folder. */
  | (Common & { kind: 'out-dir' });

type Specs = Record<string, OptionSpec>;
type ValueOf<S> = S extends { kind: 'flag' } ? boolean : S extends { kind: 'int' | 'number' } ? number : string;
type Always<S> = S extends { kind: 'flag' } ? true : S extends { default: number | string } ? true : S extends { required: true } ? true : false;
export type OptionValues<T extends Specs> = { [K in keyof T]: Always<T[K]> extends true ? ValueOf<T[K]> : ValueOf<T[K]> | undefined };

export interface ParsedOptions<T extends Specs> {
  values: OptionValues<T>;
  positionals: string[];
  /** The options the command line set (defaults are not in it). */
  given: Set<keyof T & string>;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The candidate closest to `name` when it is close enough to be a typo, else undefined. */
export function nearest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined, bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** " (did you mean X?)" or "". */
export function didYouMean(name: string, candidates: Iterable<string>, prefix = '', suffix = ''): string {
  const n = nearest(name, candidates);
  return n === undefined ? '' : ` (did you mean ${prefix}${n}${suffix}?)`;
}

/**
 * util.parseArgs has no options with an optional value: a bare `--name` (the last argument, or
 * followed by another option) becomes `--name=`, which it reads as the empty string.
 */
export function optionalValue(argv: string[], name: string): string[] {
  const flag = `--${name}`;
  const end = argv.indexOf('--');
  return argv.map((a, i) => (a === flag && (end === -1 || i < end) && (i + 1 >= argv.length || argv[i + 1].startsWith('-')) ? `${flag}=` : a));
}

/** `--name ARG` as messages name an option (the spec's placeholder, when it has one). */
function optionLabel(name: string, spec: OptionSpec | undefined): string {
  return `--${name}${spec && 'arg' in spec && spec.arg ? ' ' + spec.arg : ''}`;
}

function rangeText(min: number | undefined, max: number | undefined, above?: number, below?: number): string {
  const low = above !== undefined ? `> ${above}` : min !== undefined ? `>= ${min}` : '';
  if (below !== undefined) return low ? `${low} and < ${below}` : `< ${below}`;
  if (max === undefined || max === Number.MAX_SAFE_INTEGER) return low;
  if (above === undefined && min !== undefined) return `from ${min} to ${max}`;
  return low ? `${low} and <= ${max}` : `<= ${max}`;
}

/** The nearest existing ancestor of `path` must be a folder this process may write into. */
function checkWritableParent(fail: (why: string) => never, path: string): void {
  let dir = dirname(resolve(path));
  while (!existsSync(dir)) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) fail(`'${dir}' is a file, not a folder`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    fail(`cannot write into '${dir}' (permission denied)`);
  }
}

/**
 * What a number must be for `spec` ("an integer from 1 to 100"), or null when `n` is one: shared by
 * the command line and config files.
 */
export function numberProblem(spec: OptionSpec, n: number): string | null {
  if (spec.kind === 'int') {
    return Number.isInteger(n) && n >= spec.min && n <= spec.max ? null : `an integer ${rangeText(spec.min, spec.max)}`;
  }
  if (spec.kind === 'number') {
    const ok = Number.isFinite(n) && !(spec.min !== undefined && n < spec.min) && !(spec.above !== undefined && n <= spec.above) && !(spec.max !== undefined && n > spec.max) &&
      !(spec.below !== undefined && n >= spec.below);
    const range = rangeText(spec.min, spec.max, spec.above, spec.below);
    return ok ? null : `a number${range ? ' ' + range : ''}`;
  }
  return null;
}

function checkValue(command: string, name: string, spec: OptionSpec, raw: string): number | string {
  const fail = (expected: string, hint = ''): never => {
    throw new UsageError(command, `${optionLabel(name, spec)} expected ${expected}, received '${raw}'${hint}`);
  };
  switch (spec.kind) {
    case 'int':
    case 'number': {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      const problem = numberProblem(spec, n);
      if (problem) fail(problem);
      return n;
    }
    case 'choice':
      if (!spec.choices.includes(raw)) fail(`one of ${spec.choices.join(', ')}`, didYouMean(raw, spec.choices));
      return raw;
    case 'file':
    case 'dir': {
      const what = spec.kind === 'file' ? 'file' : 'folder';
      if (raw === '') fail(`a ${what}`);
      if (!existsSync(raw)) fail(`an existing ${what} (no such ${what})`);
      const isDir = statSync(raw).isDirectory();
      if (isDir !== (spec.kind === 'dir')) fail(`a ${what}, not a ${isDir ? 'folder' : 'file'}`);
      return raw;
    }
    case 'out-file': {
      if (raw === '') fail('a file to write');
      if (existsSync(raw) && statSync(raw).isDirectory()) fail('a file to write, not an existing folder');
      if (spec.extensions && !spec.extensions.includes(extname(raw).toLowerCase())) fail(`a ${spec.extensions.join(' or ')} file`);
      checkWritableParent((why) => fail(`a file it can write: ${why}`), raw);
      return raw;
    }
    case 'out-dir': {
      if (raw === '') fail('a folder to write into');
      if (existsSync(raw) && !statSync(raw).isDirectory()) fail('a folder, not an existing file');
      checkWritableParent((why) => fail(`a folder it can write: ${why}`), raw);
      return raw;
    }
    default:
      return raw;
  }
}

/** Node's parseArgs complaints, reworded as one line naming the option and what it takes. */
function parseArgsMessage(e: Error, specs: Specs): string {
  const quoted = /'(-{1,2})([^' =<]*)/.exec(e.message);
  const dashes = quoted?.[1] ?? '--', name = quoted?.[2] ?? '';
  const option = optionLabel(name, specs[name]);
  if (e.message.startsWith('Unknown option')) {
    return `unknown option '${dashes}${name}'${dashes === '--' ? didYouMean(name, [...Object.keys(specs), 'help'], '--') : ''}`;
  }
  if (/argument missing/.test(e.message)) return `${option} needs a value`;
  if (/argument is ambiguous/.test(e.message)) return `${option} needs a value, but an option follows it (a value that starts with '-' is written --${name}=VALUE)`;
  if (/does not take an argument/.test(e.message)) return `--${name} takes no value`;
  const positional = /^Unexpected argument '([^']*)'/.exec(e.message);
  if (positional) return `unexpected argument '${positional[1]}' (this command takes options only)`;
  return e.message.split('\n')[0];
}

/** Negative numbers are values, not options: `--churn -1` reads as --churn=-1 (then its range is checked). */
function joinNegativeValues(argv: string[], specs: Specs): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') return [...out, ...argv.slice(i)];
    const spec = argv[i].startsWith('--') ? specs[argv[i].slice(2)] : undefined;
    if (spec && spec.kind !== 'flag' && /^-(\d|\.\d|Infinity|NaN)/.test(argv[i + 1] ?? '')) out.push(`${argv[i]}=${argv[++i]}`);
    else out.push(argv[i]);
  }
  return out;
}

/**
 * Parses `argv` for `command` against `specs`: every value checked (see OptionSpec), defaults
 * filled in, required options enforced. Throws UsageError.
 */
export function parseOptions<T extends Specs>(command: string, argv: string[], specs: T, { positionals: allowPositionals = false } = {}): ParsedOptions<T> {
  let args = joinNegativeValues(argv, specs);
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.kind === 'string' && spec.optionalValue) args = optionalValue(args, name);
  }
  const parseSpec: Record<string, { type: 'boolean' | 'string'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, spec] of Object.entries(specs)) parseSpec[name] = { type: spec.kind === 'flag' ? 'boolean' : 'string', ...(spec.short ? { short: spec.short } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: parseSpec, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(command, parseArgsMessage(e as Error, specs));
  }
  const values: Record<string, unknown> = {};
  const given = new Set<keyof T & string>();
  for (const [name, spec] of Object.entries(specs)) {
    const raw = parsed.values[name];
    if (raw === undefined) {
      if ('required' in spec && spec.required) throw new UsageError(command, `${optionLabel(name, spec)} is required`);
      values[name] = spec.kind === 'flag' ? false : 'default' in spec ? spec.default : undefined;
      continue;
    }
    given.add(name as keyof T & string);
    values[name] = spec.kind === 'flag' ? raw : spec.kind === 'string' && spec.optionalValue && raw === '' ? '' : checkValue(command, name, spec, raw as string);
  }
  return { values: values as OptionValues<T>, positionals: parsed.positionals, given };
}

/** A check across options (or of a value against a loaded file) that failed: a UsageError. */
export function usage(command: string, message: string): never {
  throw new UsageError(command, message);
}

/**
 * Called by every command once its options are checked, before it reads data, loads a model or
 * writes anything. Tests replace it to stop there (the CLI fuzz test).
 */
export const cliHooks = {
  beforeWork(_command: string): void {},
};

/** Checks a value the parser could not (its kind depends on other options) against `spec`. */
export function checkOutput(command: string, name: string, spec: OptionSpec, raw: string): void {
  checkValue(command, name, spec, raw);
}
