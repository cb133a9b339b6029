/** A line chart as SVG (the loss curve written at the end of training). */

export interface Series {
  name: string;
  points: [number, number][];
  colour: string;
}

function niceTicks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** The smallest and largest of `values` ([Infinity, -Infinity] for none), by a loop: spreading a long run's 10⁵ losses into Math.min overflows the stack. */
function extent(values: Iterable<number>): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * At most about 2·buckets of `points` (sorted by x), for drawing: the lowest and the highest point
 * of each of `buckets` equal runs, in x order, so spikes stay visible; shorter series as they are.
 */
export function decimate(points: [number, number][], buckets: number): [number, number][] {
  if (points.length <= 2 * buckets) return points;
  const out: [number, number][] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * points.length) / buckets), to = Math.floor(((b + 1) * points.length) / buckets);
    let lo = from, hi = from;
    for (let i = from; i < to; i++) {
      if (points[i][1] < points[lo][1]) lo = i;
      if (points[i][1] > points[hi][1]) hi = i;
    }
    out.push(points[Math.min(lo, hi)]);
    if (hi !== lo) out.push(points[Math.max(lo, hi)]);
  }
  return out;
}

/**
 * y values are plotted on a log scale when `logY` (all must be positive). A series of more points
 * than the plot has room for is drawn through decimate (2 points a pixel column at most).
 */
export function lineChartSVG(series: Series[], options: { title: string; xLabel: string; yLabel: string; logY?: boolean }): string {
  const W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!options.logY || y > 0));
  const fy = (y: number) => (options.logY ? Math.log10(y) : y);
  const [xMin, xMax] = extent(all.map(([x]) => x));
  const x0 = Math.min(xMin, 0), x1 = Math.max(xMax, 1);
  const [y0, y1] = extent(all.map(([, y]) => fy(y)));
  const px = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y: number) => T + (1 - (fy(y) - y0) / (y1 - y0 || 1)) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${options.title}</text>`,
  ];
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${px(t)}" y1="${T}" x2="${px(t)}" y2="${H - B}" stroke="#eee"/>`, `<text x="${px(t)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  }
  const yTicks = options.logY ? niceTicks(y0, y1).map((e) => 10 ** e) : niceTicks(y0, y1);
  for (const t of yTicks) {
    parts.push(`<line x1="${L}" y1="${py(t)}" x2="${W - R}" y2="${py(t)}" stroke="#eee"/>`, `<text x="${L - 6}" y="${py(t) + 4}" text-anchor="end">${Number(t.toPrecision(3))}</text>`);
  }
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${options.xLabel}</text>`);
  parts.push(`<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">${options.yLabel}</text>`);
  series.forEach((s, i) => {
    const pts = decimate(s.points.filter(([, y]) => Number.isFinite(y) && (!options.logY || y > 0)), W - L - R);
    if (pts.length) parts.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    parts.push(`<text x="${W - R - 8}" y="${T + 16 + 16 * i}" text-anchor="end" fill="${s.colour}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Moving average over a window, for noisy per-step losses. */
export function smooth(points: [number, number][], window: number): [number, number][] {
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i][1];
    if (i >= window) sum -= points[i - window][1];
    out.push([points[i][0], sum / Math.min(i + 1, window)]);
  }
  return out;
}
