import { usage } from './options.js';

/** `--guidance-interval LO,HI`: the noise levels lo < σ <= hi that get guidance (HI may be 'inf'). */
export function guidanceIntervalOption(command: string, v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const parts = v.split(',').map((s) => (/^\s*inf\s*$/i.test(s) ? Infinity : s.trim() === '' ? Number.NaN : Number(s)));
  const [lo, hi] = parts;
  if (parts.length !== 2 || !(lo >= 0 && hi > lo)) {
    usage(command, `--guidance-interval LO,HI expected two numbers with 0 <= LO < HI (HI may be 'inf'), received '${v}'`);
  }
  return [lo, hi];
}
