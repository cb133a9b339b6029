/** A terminal progress bar (one line, redrawn) that degrades to periodic log lines when not a TTY. */

export class ProgressBar {
  private readonly start = Date.now();
  private lastDraw = 0;
  private readonly tty: boolean;

  /** `start`: work already done when the bar starts (a resumed run), excluded from the rate. `total` may change as the work goes (a run sized by time), and is NaN while unknown. */
  constructor(
    public total: number,
    readonly label: string,
    private readonly start_ = 0,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  /** Redraws with `done` of `total` and extra fields such as { loss: '0.123' }. */
  update(done: number, fields: Record<string, string> = {}): void {
    const now = Date.now();
    const final = done >= this.total;
    if (!final && now - this.lastDraw < (this.tty ? 100 : 10_000)) return;
    this.lastDraw = now;
    const elapsed = (now - this.start) / 1000;
    const rate = (done - this.start_) / Math.max(elapsed, 1e-9);
    const known = Number.isFinite(this.total);
    const eta = rate > 0 && known ? (this.total - done) / rate : Infinity;
    const width = 24, filled = known ? Math.min(width, Math.round((width * done) / this.total)) : 0;
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const extras = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('  ');
    const line = `${this.label} ${bar} ${done}/${known ? this.total : '?'}  ${extras}  ${formatDuration(elapsed)}<${formatDuration(eta)}`;
    if (this.tty) this.stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else this.stream.write(line + '\n');
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}`;
}
