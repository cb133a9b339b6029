/**
 * `shapes`: the built-in synthetic dataset (no download). 32×32 RGB images of one of four shapes —
 * circle, square, triangle, cross — with random colour, size, position, rotation (every shape but
 * the circle) and background colour, anti-aliased by 4×4 supersampling. Image i is a pure function
 * of (seed, i), values in [-1, 1], layout (C, H, W).
 */
import { DataRng } from './rng.js';

export const SHAPE_CLASSES = ['circle', 'square', 'triangle', 'cross'] as const;

export interface ShapeImage {
  pixels: Float32Array; // (3, size, size) in [-1, 1]
  label: number;
}

/** Colours far enough apart that the shape is always visible. */
function colourPair(rng: DataRng): [number[], number[]] {
  for (;;) {
    const fg = [rng.next(), rng.next(), rng.next()];
    const bg = [rng.next(), rng.next(), rng.next()];
    const dist = Math.hypot(fg[0] - bg[0], fg[1] - bg[1], fg[2] - bg[2]);
    if (dist > 0.6) return [fg, bg];
  }
}

/** Inside-test for class `label` at point (u, v) in the shape's own frame (radius 1). */
export function insideShape(label: number, u: number, v: number): boolean {
  switch (label) {
    case 0: // circle
      return u * u + v * v <= 1;
    case 1: // square (axis-aligned in its frame)
      return Math.abs(u) <= 0.8 && Math.abs(v) <= 0.8;
    case 2: {
      // equilateral triangle with circumradius 1, pointing up in its frame
      const y = -v; // screen y grows downward
      return y >= -0.5 && Math.sqrt(3) * u + y <= 1 && -Math.sqrt(3) * u + y <= 1;
    }
    default: // cross (plus sign), arms 0.3 thick
      return (Math.abs(u) <= 1 && Math.abs(v) <= 0.3) || (Math.abs(v) <= 1 && Math.abs(u) <= 0.3);
  }
}

/**
 * A signed distance from (u, v) to the edge of class `label`'s shape (frame as insideShape),
 * negative inside, never larger in magnitude than the true distance: a box or a convex polygon's
 * largest edge-line distance is exact inside and at most the true distance outside, and a union
 * (the cross) takes the smaller of its parts'. A point farther than it from the edge has its
 * whole neighbourhood of that radius on one side.
 */
function edgeDistanceBound(label: number, u: number, v: number): number {
  switch (label) {
    case 0:
      return Math.sqrt(u * u + v * v) - 1;
    case 1:
      return Math.max(Math.abs(u) - 0.8, Math.abs(v) - 0.8);
    case 2: {
      const y = -v; // insideShape's three half-planes, each distance in units of the frame
      return Math.max(-0.5 - y, (Math.sqrt(3) * u + y - 1) / 2, (-Math.sqrt(3) * u + y - 1) / 2);
    }
    default:
      return Math.min(Math.max(Math.abs(u) - 1, Math.abs(v) - 0.3), Math.max(Math.abs(v) - 1, Math.abs(u) - 0.3));
  }
}

/** A shape of class `label` (radius, centre in pixels; rotation in radians) in fg on bg (RGB in [0, 1]). */
export interface ShapeSpec {
  label: number;
  fg: readonly number[];
  bg: readonly number[];
  radius: number;
  cx: number;
  cy: number;
  angle: number;
}

/** Size (0.22–0.4 of the image), position (fully inside) and rotation of a class-`label` shape, drawn from rng. */
export function shapeGeometry(rng: DataRng, label: number, size: number): Pick<ShapeSpec, 'radius' | 'cx' | 'cy' | 'angle'> {
  const radius = rng.uniform(0.22, 0.4) * size;
  const cx = rng.uniform(radius, size - radius), cy = rng.uniform(radius, size - radius);
  const angle = label === 0 ? 0 : rng.uniform(0, Math.PI / 2);
  return { radius, cx, cy, angle };
}

/** Supersamples per pixel axis. */
export const SUPERSAMPLING = 4;

/**
 * Renders a shape as (3, size, size) values in [-1, 1], anti-aliased by 4×4 supersampling. Only
 * pixels near the edge are supersampled: a pixel whose centre is farther from the edge than its
 * farthest sample (0.375·√2 px, and a margin far above rounding) is wholly inside or outside, so
 * its coverage is 16 or 0 samples all the same — the same bits as testing every sample, ~8× faster
 * (the data worker shares the training's cores).
 */
export function drawShape(spec: ShapeSpec, size: number): Float32Array {
  const { label, fg, bg, radius, cx, cy, angle } = spec;
  const cos = Math.cos(angle), sin = Math.sin(angle);
  const pixels = new Float32Array(3 * size * size);
  const S = SUPERSAMPLING;
  const reach = (0.5 - 0.5 / S) * Math.SQRT2 * 1.001 / radius; // centre to farthest sample, in the shape's frame
  const blend = (a: number, c: number) => 2 * (a * fg[c] + (1 - a) * bg[c]) - 1; // a: the pixel's coverage
  const inside = [0, 1, 2].map((c) => blend(1, c)), outside = [0, 1, 2].map((c) => blend(0, c));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const du = (x + 0.5 - cx) / radius, dv = (y + 0.5 - cy) / radius;
      const edge = edgeDistanceBound(label, cos * du + sin * dv, -sin * du + cos * dv);
      let cover = edge < -reach ? S * S : 0;
      if (Math.abs(edge) <= reach) {
        for (let sy = 0; sy < S; sy++) {
          for (let sx = 0; sx < S; sx++) {
            const dx = (x + (sx + 0.5) / S - cx) / radius, dy = (y + (sy + 0.5) / S - cy) / radius;
            if (insideShape(label, cos * dx + sin * dy, -sin * dx + cos * dy)) cover++;
          }
        }
      }
      if (cover === 0) for (let c = 0; c < 3; c++) pixels[c * size * size + y * size + x] = outside[c];
      else if (cover === S * S) for (let c = 0; c < 3; c++) pixels[c * size * size + y * size + x] = inside[c];
      else for (let c = 0; c < 3; c++) pixels[c * size * size + y * size + x] = blend(cover / (S * S), c);
    }
  }
  return pixels;
}

export function shapeImage(seed: number, index: number, size = 32): ShapeImage {
  const rng = new DataRng(seed, index);
  const label = rng.int(SHAPE_CLASSES.length);
  const [fg, bg] = colourPair(rng);
  return { pixels: drawShape({ label, fg, bg, ...shapeGeometry(rng, label, size) }, size), label };
}
