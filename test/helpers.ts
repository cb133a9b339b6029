/**
 * Shared test tools: one tolerance table and one closeness rule, seeded float64 inputs,
 * finite-difference gradients of float64 references, and loops over every backend and every CPU
 * kernel level this machine has.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import type { DeviceBuffer } from '../lib/backend/kernels/core.js';
import * as dv from '../lib/index.js';

// ---------------------------------------------------------------------------------------------
// Tolerances
// ---------------------------------------------------------------------------------------------

/** Bounds of |out - ref| <= atol + rtol*|ref|: for values, and for gradients against a reference's. */
export interface Tolerance {
  atol: number;
  rtol: number;
  /** Gradients against central differences (h = 1e-6) or analytic gradients of the float64 reference. */
  gradAtol: number;
  gradRtol: number;
}

/**
 * The one tolerance table, keyed by the arithmetic of the result (dtype or GEMM precision) and
 * then by the kind of op; every comparison of a result with its reference goes through it
 * (`expectClose(out, ref, { dtype: 'float32', kind: 'softmax' })`). 'default' is what a kind not
 * listed gets. References are float64 computed on the float32-rounded inputs (toF32), so the
 * bounds measure the kernel's own rounding only. The op rows are 2-5x the worst error seen on
 * avx512/avx2/scalar (printed after each file by recordError).
 */
export const TOLERANCES = {
  /** float32 kernels against float64 references. */
  float32: {
    default: { atol: 1e-5, rtol: 1e-4, gradAtol: 1e-4, gradRtol: 1e-3 },
    /** Unary maps: one rounding of a float32 function (a few ulp). */
    unary: { atol: 1e-6, rtol: 2e-6, gradAtol: 1e-5, gradRtol: 1e-4 },
    /** Broadcasting add/sub/mul/div: one rounding forward, sums of broadcast gradients backward. */
    binary: { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-5, gradRtol: 1e-4 },
    softmax: { atol: 1e-7, rtol: 2e-6, gradAtol: 1e-6, gradRtol: 1e-5 },
    layerNorm: { atol: 2e-6, rtol: 1e-5, gradAtol: 2e-5, gradRtol: 1e-4 },
    /**
     * Normalising values with a large common offset (1000 ± 1): the float32 mean is only known to
     * half an ulp of 1000 (3e-5), which bounds the accuracy of x - mean.
     */
    offset: { atol: 1e-4, rtol: 1e-4, gradAtol: 2e-4, gradRtol: 1e-3 },
    /** Bit-identical (same kernel, same order of operations). */
    exact: { atol: 0, rtol: 0, gradAtol: 0, gradRtol: 0 },
    /** GEMM-based ops (matmul, linear, conv2d through im2col) on unit-scale operands. */
    matmul: { atol: 1e-5, rtol: 1e-4, gradAtol: 1e-4, gradRtol: 1e-3 },
    /**
     * One GEMM element, a length-k float32 dot product, with `scale` = sqrt(k)·(|alpha|·Σ|a·b| + |beta·c|):
     * the probabilistic bound λ·sqrt(k)·u·Σ|a·b| (Higham & Mary), λ = 4, u = 2^-24. Not relative to the
     * result, which cancellation can make arbitrarily small.
     */
    dot: { atol: 1e-30, rtol: 2 ** -22, gradAtol: 1e-30, gradRtol: 2 ** -22 },
    /** Sums of ~10^6 float32 products (conv2d's weight and bias gradients over a 2×1000×1000 batch). */
    longSum: { atol: 1e-2, rtol: 1e-3, gradAtol: 1e-2, gradRtol: 1e-3 },
    /** Attention forward and gradients: sums of up to 1025 terms and a vectorised exp. */
    attention: { atol: 2e-5, rtol: 2e-4, gradAtol: 5e-5, gradRtol: 1e-3 },
    /** addGated, x + gate·y: one fused multiply-add forward, token sums for the gate's gradient. */
    addGated: { atol: 1e-6, rtol: 1e-5, gradAtol: 2e-5, gradRtol: 1e-4 },
    /** linearGelu: a GEMM then the tanh GELU (accurate to ~1e-7 absolute, its derivative to a few 1e-6). */
    linearGelu: { atol: 2e-6, rtol: 2e-5, gradAtol: 5e-5, gradRtol: 1e-4 },
    /**
     * A fused kernel against the unfused composition of ops computing the same function (both float32:
     * a few roundings each, in different orders): layerNormModulate, addGated, the EDM sampler step.
     */
    composition: { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
    /**
     * RoPE: a·c − b·s and b·c + a·s, one rounded product and one FMA per element; relative to the
     * result only above atol, since the two products of O(1) inputs can cancel.
     */
    rope: { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-6, gradRtol: 1e-6 },
    /** embedding: the gather copies values (exact); its gradient sums the rows of repeated indices. */
    embedding: { atol: 0, rtol: 0, gradAtol: 1e-5, gradRtol: 1e-5 },
    /** maxPool2d and avgPool2d (forward only): a max, or a window's sum times 1/count. */
    pool: { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-6, gradRtol: 1e-6 },
    /** resizeBilinear (forward only): two lerps with float32 source positions and weights. */
    resize: { atol: 1e-6, rtol: 1e-5, gradAtol: 1e-6, gradRtol: 1e-5 },
    /** PyTorch's float32 pooling and interpolate against our float64 references of them. */
    pytorch: { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
    /** AdamW's parameter after each of 5 steps against torch.optim.AdamW's update in float64. */
    adamw: { atol: 1e-6, rtol: 1e-5, gradAtol: 1e-6, gradRtol: 1e-5 },
    /** AdamW's exp_avg: β1·m + (1-β1)·g can cancel, so an absolute bound of a few ulps of the O(1) terms. */
    adamwExpAvg: { atol: 1e-7, rtol: 1e-5, gradAtol: 1e-7, gradRtol: 1e-5 },
    /** AdamW's exp_avg_sq: (1-β2)·g² of gradients down to 1e-3 is ~1e-8; relative only, in effect. */
    adamwExpAvgSq: { atol: 1e-12, rtol: 1e-5, gradAtol: 1e-12, gradRtol: 1e-5 },
    /** The fused EDM noise injection and input scaling against randn·σ + y, then ·c_in (two roundings each). */
    edmNoise: { atol: 1e-6, rtol: 1e-6, gradAtol: 1e-6, gradRtol: 1e-6 },
    /** The fused EDM weighted loss (a mean of B·C·H·W terms) and dL/dF against autograd of the composition. */
    edmLoss: { atol: 0, rtol: 1e-5, gradAtol: 1e-7, gradRtol: 1e-5 },
    /** edmLoss through a 3-block DiffusionViT against the unfused D composition: loss, parameter gradients. */
    edmModel: { atol: 0, rtol: 1e-5, gradAtol: 1e-6, gradRtol: 1e-3 },
    /** Parameter gradients of a loss whose upstream gradient is a device scalar (2.5) against 2.5× the unit ones. */
    gradScale: { atol: 1e-7, rtol: 1e-6, gradAtol: 1e-7, gradRtol: 1e-6 },
    /**
     * A sampler's images against the latents times its scalar float64 update factor (F ≡ 0), with
     * `scale` = |latents|: 18-50 steps of float32 updates.
     */
    sampler: { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
    /** Heun with 200 steps against the exact ODE solution: its discretisation error, not rounding. */
    samplerConvergence: { atol: 1e-5, rtol: 2e-3, gradAtol: 1e-5, gradRtol: 2e-3 },
    /** The fused float32 Heun sampler against the float64 reference sampler, with `scale` = max |reference|. */
    samplerReference: { atol: 0, rtol: 1e-4, gradAtol: 0, gradRtol: 1e-4 },
  },
  /**
   * GEMMs on bf16-rounded operands (8 significant bits: 2^-9 relative per operand) with float32
   * accumulation, against the exact float64 product of the unrounded operands; for unit-scale
   * operands and inner dimensions up to ~100 (the error of a k-term sum grows as sqrt(k)).
   */
  bf16: {
    default: { atol: 3e-2, rtol: 2e-2, gradAtol: 6e-2, gradRtol: 4e-2 },
    /**
     * One bf16 GEMM element against the exact float64 α·Σa·b + β·c, with `scale` = |alpha|·Σ|a·b|:
     * bf16's worst case per product (operands rounded to 2^-8 relative, alpha folded into A in fp32
     * first: 2·2^-8 + 2·2^-24), on top of float32.dot's bound for the fp32 accumulation.
     */
    dot: { atol: 0, rtol: 2 * 2 ** -8 + 2 * 2 ** -24, gradAtol: 0, gradRtol: 2 * 2 ** -8 + 2 * 2 ** -24 },
    /**
     * Gradients through a GEMM epilogue that bf16 rounds inside the op (linearGelu's dh = dout·gelu'(h))
     * against float32 on pre-rounded operands, with `scale` = the reference's max |value|.
     */
    epilogue: { atol: 0, rtol: 2 ** -6, gradAtol: 0, gradRtol: 2 ** -6 },
    /** bf16 GEMMs (vdpbf16ps: each k pair summed in its own order) against float32 ones on the same bf16-exact operands. */
    order: { atol: 1e-5, rtol: 1e-5, gradAtol: 1e-5, gradRtol: 1e-5 },
    /** A tiny model's train-step gradient norm at bf16 against float32's. */
    trainStep: { atol: 0, rtol: 1e-2, gradAtol: 0, gradRtol: 1e-2 },
  },
  /** float64 computations against each other (a reference against another, or against exact values). */
  float64: {
    default: { atol: 1e-12, rtol: 1e-10, gradAtol: 1e-8, gradRtol: 1e-6 },
    /** One closed form computed two ways in float64 (EDM's preconditioning against Table 1): a few ulp. */
    formula: { atol: 5e-15, rtol: 0, gradAtol: 5e-15, gradRtol: 0 },
    /** An identity of computed float64 coefficients (EDM's λ·c_out² = 1). */
    identity: { atol: 5e-13, rtol: 0, gradAtol: 5e-13, gradRtol: 0 },
  },
} as const satisfies Record<string, { default: Tolerance } & Record<string, Tolerance>>;

export type TolDType = keyof typeof TOLERANCES;
/** A kind of any row (a dtype that does not list it gives its 'default'). */
export type TolKind = { [D in TolDType]: keyof (typeof TOLERANCES)[D] }[TolDType];

export interface CloseOptions {
  /** The table row: the result's dtype or GEMM precision (default 'float32'). */
  dtype?: TolDType;
  /** The op kind within it (default 'default'; a kind the dtype does not list falls back to it). */
  kind?: TolKind;
  /** Compare with the gradient bounds of the row (gradAtol, gradRtol). */
  grad?: boolean;
  /** Overrides of the row's bounds for this one comparison. */
  atol?: number;
  rtol?: number;
  /**
   * Per-element magnitudes the rtol bound is relative to, in place of |expected|: for results whose
   * error scales with something other than their own size (a dot product's Σ|a·b|, which
   * cancellation does not shrink; a sampler's latents; a whole output's max).
   */
  scale?: ArrayLike<number>;
}

/** The table's row for dtype and kind (see TOLERANCES). */
export function tolerance(dtype: TolDType = 'float32', kind: TolKind = 'default'): Tolerance {
  const row = TOLERANCES[dtype] as Record<string, Tolerance>;
  return row[kind] ?? row.default;
}

/**
 * |actual - expected| <= atol + rtol*|expected| elementwise (|scale| in place of |expected| where
 * options.scale is given), atol and rtol from the tolerance table (options.dtype, options.kind,
 * options.grad) unless given; a NaN on either side fails.
 * Returns the max relative error seen (relative to max(|expected| or |scale|, atol / rtol)).
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: CloseOptions = {},
  label = '',
): number {
  const row = tolerance(options.dtype, options.kind);
  const atol = options.atol ?? (options.grad ? row.gradAtol : row.atol);
  const rtol = options.rtol ?? (options.grad ? row.gradRtol : row.rtol);
  const scale = options.scale;
  expect(actual.length, `${label}: length`).toBe(expected.length);
  if (scale) expect(scale.length, `${label}: length of scale`).toBe(expected.length);
  let worst = 0, worstAt = -1, maxRel = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i], mag = Math.abs(scale ? scale[i] : e);
    const err = Math.abs(a - e);
    const excess = err - (atol + rtol * mag);
    if (!(excess <= 0) && (worstAt < 0 || excess > worst || Number.isNaN(excess))) {
      worst = excess;
      worstAt = i;
    }
    if (err > 0) maxRel = Math.max(maxRel, err / Math.max(mag, rtol > 0 ? atol / rtol : 0, Number.MIN_VALUE));
  }
  if (worstAt >= 0) {
    const relTo = scale ? `, relative to scale ${scale[worstAt]}` : '';
    expect.fail(`${label}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (atol ${atol}, rtol ${rtol}${relTo})`);
  }
  return maxRel;
}

/** Deterministic float64 values in roughly N(0, scale) (never zeros). */
export function randomValues(n: number, seed: number, scale = 1): Float64Array {
  let s = (seed * 2654435761 + 0x9e3779b9) >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

/** Rounds through float32, so the float64 reference sees exactly what the kernel sees. */
export function toF32(values: Float64Array): Float64Array {
  return Float64Array.from(Float32Array.from(values));
}

/** The device of the running describeEachBackend suite (see testDevice). */
let currentDevice = 'cpu';

/** A float32 tensor of the values on `device` (default: the device of the running describeEachBackend suite, else 'cpu'). */
export function fromValues(values: ArrayLike<number>, shape: readonly number[], requiresGrad = false,
  device: string = currentDevice): dv.Tensor {
  const t = dv.tensor(Float32Array.from(values), shape, { device });
  t.requiresGrad = requiresGrad;
  return t;
}

/**
 * A float32 buffer of the values on `device` (default: the running suite's), from that device's
 * backend: for tests that call one kernel of the table directly (runKernel). Free it with dispose().
 */
export function deviceBuffer(values: ArrayLike<number>, device: string = currentDevice): DeviceBuffer {
  const { device: canonical, backend } = dv.resolveDevice(device);
  const buffer = backend.alloc(canonical, 'float32', values.length);
  backend.write(buffer, 0, Float32Array.from(values));
  return buffer;
}

/** Every element of a float32 buffer, read back to the host through its backend. */
export function readBuffer(buffer: DeviceBuffer): Float32Array {
  return dv.resolveDevice(buffer.device).backend.read(buffer, 0, buffer.numel) as Float32Array;
}

export interface GradInput {
  values: Float64Array;
  shape: number[];
  /** Skip the gradient check for this input (e.g. integer-like or not differentiable). */
  noGrad?: boolean;
}

/**
 * Checks an op against its float64 reference: forward values, then every input's gradient
 * against central finite differences of the *reference* (float64, h = 1e-6) for the loss
 * sum(w * f(inputs)) with random weights w. Returns the worst relative errors.
 */
export function checkOp(
  name: string,
  op: (...xs: dv.Tensor[]) => dv.Tensor,
  reference: (...xs: Float64Array[]) => Float64Array,
  inputs: GradInput[],
  tol: CloseOptions & { gradAtol?: number; gradRtol?: number } = {},
): { forward: number; backward: number } {
  const { dtype, kind } = tol;
  const xs = inputs.map((i) => toF32(i.values));
  const expected = reference(...xs);
  return dv.scope(() => {
    const ts = inputs.map((inp, k) => fromValues(xs[k], inp.shape, !inp.noGrad));
    const out = op(...ts);
    const forward = expectClose(out.data(), expected, { dtype, kind, atol: tol.atol, rtol: tol.rtol }, `${name} forward`);
    const weights = toF32(randomValues(out.size, 4242));
    out.backward({ grad: fromValues(weights, out.shape) });
    let backward = 0;
    const loss = (...a: Float64Array[]) => {
      const y = reference(...a);
      let s = 0;
      for (let i = 0; i < y.length; i++) s += weights[i] * y[i];
      return s;
    };
    inputs.forEach((inp, k) => {
      if (inp.noGrad) return;
      const numeric = new Float64Array(xs[k].length);
      const h = 1e-6;
      for (let i = 0; i < xs[k].length; i++) {
        const saved = xs[k][i];
        xs[k][i] = saved + h;
        const up = loss(...xs);
        xs[k][i] = saved - h;
        const down = loss(...xs);
        xs[k][i] = saved;
        numeric[i] = (up - down) / (2 * h);
      }
      const grad = ts[k].grad;
      expect(grad, `${name}: input ${k} got no gradient`).not.toBeNull();
      backward = Math.max(backward, expectClose(grad!.data(), numeric,
        { dtype, kind, grad: true, atol: tol.gradAtol, rtol: tol.gradRtol }, `${name} d/dinput${k}`));
    });
    recordError(name, forward, backward);
    return { forward, backward };
  });
}

const errors = new Map<string, { forward: number; backward: number }>();
/** Keeps the worst error per op for the summary printed after each test file. */
export function recordError(name: string, forward: number, backward = 0): void {
  const e = errors.get(name) ?? { forward: 0, backward: 0 };
  errors.set(name, { forward: Math.max(e.forward, forward), backward: Math.max(e.backward, backward) });
}
afterAll(() => {
  if (!errors.size) return;
  const rows = [...errors].map(([op, e]) => `  ${op.padEnd(36)} fwd ${e.forward.toExponential(2)}  bwd ${e.backward.toExponential(2)}`);
  console.log(`max relative error vs float64 (worst over every cpu level run):\n${rows.join('\n')}`);
  errors.clear();
});

// ---------------------------------------------------------------------------------------------
// Backends and CPU levels
// ---------------------------------------------------------------------------------------------

export type CpuLevel = 'avx512' | 'avx2' | 'scalar';

/** The CPU kernel levels this machine can run, best first. */
export function cpuLevels(): CpuLevel[] {
  const all = ['avx512', 'avx2', 'scalar'] as const;
  const best = dv.runtimeInfo().cpuBestLevel;
  return all.slice(all.indexOf(best));
}

/** Runs the same tests once per CPU kernel level (the "backends" of the CPU). */
export function describeEachLevel(title: string, body: (level: 'avx512' | 'avx2' | 'scalar') => void): void {
  for (const level of cpuLevels()) {
    describe(`${title} [cpu ${level}]`, () => {
      // Levels are switched when the block's first test runs, and restored after its last.
      let previous: 'avx512' | 'avx2' | 'scalar';
      beforeAll(() => {
        previous = dv.runtimeInfo().cpuLevel;
        dv.setCpuLevel(level);
      });
      afterAll(() => dv.setCpuLevel(previous));
      body(level);
    });
  }
}

/** Where a describeEachBackend suite runs. */
export interface BackendCase {
  /** The canonical device its tensors go on: 'cpu', 'cuda:0', 'toy'... (fromValues and checkOp default to it). */
  device: string;
  /** The registered backend's name. */
  backend: string;
  /** The CPU kernel level, for the cpu backend; null for the others. */
  level: CpuLevel | null;
}

/** The device of the describeEachBackend suite running now ('cpu' outside one). */
export function testDevice(): string {
  return currentDevice;
}

/**
 * Runs the same tests once per backend registered when the file is collected — the cpu once per
 * kernel level this machine has (avx512, avx2, scalar) — each in a suite titled
 * `${title} [cpu avx2]`, `${title} [cuda:0]`... The body gets the suite's device; fromValues and
 * checkOp put their tensors there by default. Without a CUDA backend a skipped `${title} [cuda]`
 * suite records why (the addon's cudaStatus), so the report shows what did not run.
 */
export function describeEachBackend(title: string, body: (c: BackendCase) => void): void {
  const suite = (name: string, c: BackendCase) => describe(name, () => {
    // Device and level are switched when the block's first test runs, and restored after its last.
    let previousDevice = 'cpu', previousLevel: CpuLevel | null = null;
    beforeAll(() => {
      previousDevice = currentDevice;
      currentDevice = c.device;
      if (c.level) {
        previousLevel = dv.runtimeInfo().cpuLevel;
        dv.setCpuLevel(c.level);
      }
    });
    afterAll(() => {
      currentDevice = previousDevice;
      if (previousLevel) dv.setCpuLevel(previousLevel);
    });
    body(c);
  });
  const backends = dv.registeredBackends();
  // DIFFVIT_TEST_BACKENDS=cuda (the emulated run of npm test) runs only the listed backends' suites.
  const only = process.env.DIFFVIT_TEST_BACKENDS?.split(',').map((b) => b.trim()).filter(Boolean);
  for (const backend of backends) {
    if (only && !only.includes(backend)) continue;
    if (backend === 'cpu') {
      for (const level of cpuLevels()) suite(`${title} [cpu ${level}]`, { device: 'cpu', backend, level });
    } else {
      const { device } = dv.resolveDevice(backend);
      suite(`${title} [${device}]`, { device, backend, level: null });
    }
  }
  if (!backends.includes('cuda') && !only) {
    const reason = dv.runtimeInfo().cudaStatus;
    describe.skip(`${title} [cuda]`, () => {
      test(`no CUDA backend: ${reason}`, () => {});
    });
  }
}

/** Awkward sizes every op is tried on. */
export const ODD_SIZES = [1, 3, 17, 65, 257];

/** Row statistics of (rows, cols) x: mean and 1/sqrt(biased var + eps). */
export function refStats(x: Float64Array, rows: number, cols: number, eps: number) {
  const mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[r * cols + j];
    const mu = s / cols;
    let q = 0;
    for (let j = 0; j < cols; j++) q += (x[r * cols + j] - mu) ** 2;
    mean[r] = mu;
    rstd[r] = 1 / Math.sqrt(q / cols + eps);
  }
  return { mean, rstd };
}
