/** The loss curve's SVG line chart (lib/image/plot.ts): long runs, decimation, extents. */
import { describe, expect, test } from 'vitest';

import { decimate, lineChartSVG, smooth } from '../lib/image/plot.js';

const polylines = (svg: string) => [...svg.matchAll(/points="([^"]*)"/g)].map((m) => m[1].split(' ').map((p) => p.split(',').map(Number)));

describe('lineChartSVG', () => {
  test('a 200 000-step loss curve draws (no stack overflow), decimated to the plot\'s width, spikes kept', () => {
    const losses: [number, number][] = Array.from({ length: 200_000 }, (_, i) => [i + 1, 1 / Math.sqrt(i + 1) + 0.01 * Math.sin(i)]);
    losses[123_456][1] = 5; // one spike
    const svg = lineChartSVG([{ name: 'loss', points: losses, colour: '#9ab' }, { name: 'avg', points: smooth(losses, 50), colour: '#c33' }],
      { title: 't', xLabel: 'step', yLabel: 'loss', logY: true });
    const [raw, avg] = polylines(svg);
    expect(raw.length).toBeLessThanOrEqual(2 * 630);
    expect(avg.length).toBeLessThanOrEqual(2 * 630);
    expect(svg.length).toBeLessThan(100_000);
    // The spike is the highest point drawn: the top of the plot (y = 40).
    expect(Math.min(...raw.map(([, y]) => y))).toBeCloseTo(40, 5);
    // x spans the plot: the last steps at its right edge (x = 700).
    expect(Math.max(...raw.map(([x]) => x))).toBeGreaterThan(699);
  });

  test('decimate keeps short series and, per bucket, the lowest and highest point in x order', () => {
    const short: [number, number][] = [[0, 3], [1, 1], [2, 2]];
    expect(decimate(short, 2)).toBe(short);
    const points: [number, number][] = Array.from({ length: 12 }, (_, i) => [i, [5, 1, 9, 2, 2, 2, 7, 0, 3, 4, 4, 4][i]]);
    expect(decimate(points, 3)).toEqual([[1, 1], [2, 9], [6, 7], [7, 0], [8, 3], [9, 4]]);
  });
});
