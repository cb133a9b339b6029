/**
 * Inception-v3 as the standard FID code runs it — TensorFlow's 2015-12-05 graph in pytorch-fid's
 * port (`pt_inception-2015-12-05-6726825d.pth`, the FIDInceptionA/C/E_1/E_2 blocks), whose
 * 2048-d pool3 features EDM, pytorch-fid and most papers compute FID on — built from diffvit's
 * own ops. Weights come from the user (see scripts/convert_inception.py); nothing is downloaded.
 *
 *   const net = loadInception('inception.safetensors');
 *   const f = net.features(images);        // images (N, 3, H, W) in [-1, 1] -> (N, 2048)
 *   net.dispose();
 *
 * Each BasicConv2d (conv without bias -> BatchNorm(eps 1e-3) -> ReLU) is folded at load time into
 * one conv with bias: w' = w·γ/√(var + eps), b' = β − mean·γ/√(var + eps), computed in float64.
 */
import { conv2d } from '../ops/conv.js';
import { tensor } from '../ops/creation.js';
import { relu } from '../ops/elementwise.js';
import { avgPool2d, maxPool2d, resizeBilinear } from '../ops/pool.js';
import { mean } from '../ops/reduce.js';
import { concat, slice } from '../ops/shape.js';
import { argError, checkRank, checkTensor, describe } from '../ops/util.js';
import { readSafetensors } from '../models/safetensors.js';
import { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { scope } from '../tensor/scope.js';
import { formatShape, Tensor } from '../tensor/tensor.js';

/** Width of the pool3 features. */
export const INCEPTION_FEATURES = 2048;
/** The input resolution the network was trained at; inputs are resized to it (bilinear). */
export const INCEPTION_SIZE = 299;
/** BatchNorm epsilon of torchvision's BasicConv2d (and the TF graph). */
const BN_EPS = 1e-3;

/** pytorch-fid's state_dict, by name (float32 tensors). */
export type InceptionWeights = Map<string, Tensor>;

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

/**
 * pytorch-fid's BasicConv2d with its BatchNorm folded in: relu(conv2d(x, w', b')). Parameters are
 * the folded values (no gradient: the extractor is inference only).
 */
export class ConvBN extends Module {
  readonly weight: Tensor; // (out, in, kh, kw), BN scale folded in
  readonly bias: Tensor; // (out), BN shift
  readonly stride: [number, number];
  readonly padding: [number, number];

  /** Reads `<prefix>.conv.weight` and `<prefix>.bn.{weight,bias,running_mean,running_var}` from `weights`. */
  constructor(weights: InceptionWeights, readonly prefix: string, inChannels: number, outChannels: number,
    kernel: Pair, options: { stride?: Pair; padding?: Pair } = {}) {
    super();
    const [kh, kw] = pair(kernel);
    this.stride = pair(options.stride ?? 1);
    this.padding = pair(options.padding ?? 0);
    const w = take(weights, `${prefix}.conv.weight`, [outChannels, inChannels, kh, kw]);
    const gamma = take(weights, `${prefix}.bn.weight`, [outChannels]);
    const beta = take(weights, `${prefix}.bn.bias`, [outChannels]);
    const runningMean = take(weights, `${prefix}.bn.running_mean`, [outChannels]);
    const runningVar = take(weights, `${prefix}.bn.running_var`, [outChannels]);
    const perOut = inChannels * kh * kw;
    const folded = new Float32Array(w.length), shift = new Float32Array(outChannels);
    for (let o = 0; o < outChannels; o++) {
      if (!(runningVar[o] + BN_EPS > 0)) {
        throw new Error(`diffvit.loadInception: '${prefix}.bn.running_var' has ${runningVar[o]} at channel ${o} (a variance, >= 0)`);
      }
      const scale = gamma[o] / Math.sqrt(runningVar[o] + BN_EPS);
      for (let i = 0; i < perOut; i++) folded[o * perOut + i] = w[o * perOut + i] * scale;
      shift[o] = beta[o] - runningMean[o] * scale;
    }
    this.weight = this.frozen('weight', tensor(folded, [outChannels, inChannels, kh, kw]));
    this.bias = this.frozen('bias', tensor(shift, [outChannels]));
  }

  private frozen(name: string, t: Tensor): Tensor {
    this.param(name, t);
    t.requiresGrad = false;
    return t;
  }

  forward(x: Tensor): Tensor {
    const y = conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
    const out = relu(y);
    y.dispose();
    return out;
  }
}

/** The float64 values of weights[name], checked to have `shape`. */
function take(weights: InceptionWeights, name: string, shape: number[]): Float64Array {
  const t = weights.get(name);
  if (!t) throw new Error(`diffvit.loadInception: missing tensor '${name}' (expected shape ${formatShape(shape)})`);
  if (t.dtype !== 'float32') throw new Error(`diffvit.loadInception: tensor '${name}' expected dtype float32, received ${t.dtype}`);
  if (t.rank !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
    throw new Error(`diffvit.loadInception: tensor '${name}' expected shape ${formatShape(shape)}, received ${formatShape(t.shape)}`);
  }
  const values = Float64Array.from(t.data());
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`diffvit.loadInception: tensor '${name}' has ${values[bad]} at element ${bad} (corrupt weights)`);
  return values;
}

/** A block: a module with a forward. */
type Block = Module & { forward(x: Tensor): Tensor };

/**
 * Runs a constructor's body that registers children; if it throws (a missing or misshapen tensor),
 * frees what was registered so far, so a failed load leaks nothing.
 */
function building<T>(m: Module, body: () => T): T {
  try {
    return body();
  } catch (e) {
    m.dispose();
    throw e;
  }
}

/** Runs `f` in a scope and disposes `input` afterwards unless it is `keep` (the caller's tensor). */
function stage(input: Tensor, keep: Tensor, f: (x: Tensor) => Tensor): Tensor {
  const out = scope(() => f(input));
  if (input !== keep) input.dispose();
  return out;
}

const sameAvgPool = (x: Tensor) => avgPool2d(x, 3, { stride: 1, padding: 1, countIncludePad: false });

/** FIDInceptionA (Mixed_5b/c/d): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg pool (padding not counted)→1×1. */
class InceptionA extends Module {
  private readonly convs: Record<string, ConvBN>;
  constructor(w: InceptionWeights, p: string, inC: number, poolFeatures: number) {
    super();
    const c = (name: string, i: number, o: number, k: Pair, opt = {}) => this.child(name, new ConvBN(w, `${p}.${name}`, i, o, k, opt));
    this.convs = building(this, () => ({
      branch1x1: c('branch1x1', inC, 64, 1),
      branch5x5_1: c('branch5x5_1', inC, 48, 1),
      branch5x5_2: c('branch5x5_2', 48, 64, 5, { padding: 2 }),
      branch3x3dbl_1: c('branch3x3dbl_1', inC, 64, 1),
      branch3x3dbl_2: c('branch3x3dbl_2', 64, 96, 3, { padding: 1 }),
      branch3x3dbl_3: c('branch3x3dbl_3', 96, 96, 3, { padding: 1 }),
      branch_pool: c('branch_pool', inC, poolFeatures, 1),
    }));
  }
  forward(x: Tensor): Tensor {
    const m = this.convs;
    return concat([
      m.branch1x1.forward(x),
      m.branch5x5_2.forward(m.branch5x5_1.forward(x)),
      m.branch3x3dbl_3.forward(m.branch3x3dbl_2.forward(m.branch3x3dbl_1.forward(x))),
      m.branch_pool.forward(sameAvgPool(x)),
    ], 1);
  }
}

/** InceptionB (Mixed_6a), grid 35 -> 17: 3×3/2 | 1×1→3×3→3×3/2 | max pool 3/2. */
class InceptionB extends Module {
  private readonly convs: Record<string, ConvBN>;
  constructor(w: InceptionWeights, p: string, inC: number) {
    super();
    const c = (name: string, i: number, o: number, k: Pair, opt = {}) => this.child(name, new ConvBN(w, `${p}.${name}`, i, o, k, opt));
    this.convs = building(this, () => ({
      branch3x3: c('branch3x3', inC, 384, 3, { stride: 2 }),
      branch3x3dbl_1: c('branch3x3dbl_1', inC, 64, 1),
      branch3x3dbl_2: c('branch3x3dbl_2', 64, 96, 3, { padding: 1 }),
      branch3x3dbl_3: c('branch3x3dbl_3', 96, 96, 3, { stride: 2 }),
    }));
  }
  forward(x: Tensor): Tensor {
    const m = this.convs;
    return concat([
      m.branch3x3.forward(x),
      m.branch3x3dbl_3.forward(m.branch3x3dbl_2.forward(m.branch3x3dbl_1.forward(x))),
      maxPool2d(x, 3, { stride: 2 }),
    ], 1);
  }
}

/** FIDInceptionC (Mixed_6b..e): factorised 7×7 branches (1×7 and 7×1) and an avg-pool branch. */
class InceptionC extends Module {
  private readonly convs: Record<string, ConvBN>;
  constructor(w: InceptionWeights, p: string, inC: number, c7: number) {
    super();
    const c = (name: string, i: number, o: number, k: Pair, opt = {}) => this.child(name, new ConvBN(w, `${p}.${name}`, i, o, k, opt));
    const row = { padding: [0, 3] as Pair }, col = { padding: [3, 0] as Pair };
    this.convs = building(this, () => ({
      branch1x1: c('branch1x1', inC, 192, 1),
      branch7x7_1: c('branch7x7_1', inC, c7, 1),
      branch7x7_2: c('branch7x7_2', c7, c7, [1, 7], row),
      branch7x7_3: c('branch7x7_3', c7, 192, [7, 1], col),
      branch7x7dbl_1: c('branch7x7dbl_1', inC, c7, 1),
      branch7x7dbl_2: c('branch7x7dbl_2', c7, c7, [7, 1], col),
      branch7x7dbl_3: c('branch7x7dbl_3', c7, c7, [1, 7], row),
      branch7x7dbl_4: c('branch7x7dbl_4', c7, c7, [7, 1], col),
      branch7x7dbl_5: c('branch7x7dbl_5', c7, 192, [1, 7], row),
      branch_pool: c('branch_pool', inC, 192, 1),
    }));
  }
  forward(x: Tensor): Tensor {
    const m = this.convs;
    let dbl = m.branch7x7dbl_1.forward(x);
    for (const k of ['branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5']) dbl = m[k].forward(dbl);
    return concat([
      m.branch1x1.forward(x),
      m.branch7x7_3.forward(m.branch7x7_2.forward(m.branch7x7_1.forward(x))),
      dbl,
      m.branch_pool.forward(sameAvgPool(x)),
    ], 1);
  }
}

/** InceptionD (Mixed_7a), grid 17 -> 8: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max pool 3/2. */
class InceptionD extends Module {
  private readonly convs: Record<string, ConvBN>;
  constructor(w: InceptionWeights, p: string, inC: number) {
    super();
    const c = (name: string, i: number, o: number, k: Pair, opt = {}) => this.child(name, new ConvBN(w, `${p}.${name}`, i, o, k, opt));
    this.convs = building(this, () => ({
      branch3x3_1: c('branch3x3_1', inC, 192, 1),
      branch3x3_2: c('branch3x3_2', 192, 320, 3, { stride: 2 }),
      branch7x7x3_1: c('branch7x7x3_1', inC, 192, 1),
      branch7x7x3_2: c('branch7x7x3_2', 192, 192, [1, 7], { padding: [0, 3] }),
      branch7x7x3_3: c('branch7x7x3_3', 192, 192, [7, 1], { padding: [3, 0] }),
      branch7x7x3_4: c('branch7x7x3_4', 192, 192, 3, { stride: 2 }),
    }));
  }
  forward(x: Tensor): Tensor {
    const m = this.convs;
    return concat([
      m.branch3x3_2.forward(m.branch3x3_1.forward(x)),
      m.branch7x7x3_4.forward(m.branch7x7x3_3.forward(m.branch7x7x3_2.forward(m.branch7x7x3_1.forward(x)))),
      maxPool2d(x, 3, { stride: 2 }),
    ], 1);
  }
}

/**
 * InceptionE (Mixed_7b/c), the expanded 8×8 blocks. The pool branch is pytorch-fid's quirk of the
 * TF graph: FIDInceptionE_1 (Mixed_7b) averages without counting the padding, FIDInceptionE_2
 * (Mixed_7c) takes the max.
 */
class InceptionE extends Module {
  private readonly convs: Record<string, ConvBN>;
  constructor(w: InceptionWeights, p: string, inC: number, readonly pool: 'avg' | 'max') {
    super();
    const c = (name: string, i: number, o: number, k: Pair, opt = {}) => this.child(name, new ConvBN(w, `${p}.${name}`, i, o, k, opt));
    const row = { padding: [0, 1] as Pair }, col = { padding: [1, 0] as Pair };
    this.convs = building(this, () => ({
      branch1x1: c('branch1x1', inC, 320, 1),
      branch3x3_1: c('branch3x3_1', inC, 384, 1),
      branch3x3_2a: c('branch3x3_2a', 384, 384, [1, 3], row),
      branch3x3_2b: c('branch3x3_2b', 384, 384, [3, 1], col),
      branch3x3dbl_1: c('branch3x3dbl_1', inC, 448, 1),
      branch3x3dbl_2: c('branch3x3dbl_2', 448, 384, 3, { padding: 1 }),
      branch3x3dbl_3a: c('branch3x3dbl_3a', 384, 384, [1, 3], row),
      branch3x3dbl_3b: c('branch3x3dbl_3b', 384, 384, [3, 1], col),
      branch_pool: c('branch_pool', inC, 192, 1),
    }));
  }
  forward(x: Tensor): Tensor {
    const m = this.convs;
    const b3 = m.branch3x3_1.forward(x);
    const dbl = m.branch3x3dbl_2.forward(m.branch3x3dbl_1.forward(x));
    const pooled = this.pool === 'avg' ? sameAvgPool(x) : maxPool2d(x, 3, { stride: 1, padding: 1 });
    return concat([
      m.branch1x1.forward(x),
      m.branch3x3_2a.forward(b3), m.branch3x3_2b.forward(b3),
      m.branch3x3dbl_3a.forward(dbl), m.branch3x3dbl_3b.forward(dbl),
      m.branch_pool.forward(pooled),
    ], 1);
  }
}

export interface FeatureOptions {
  /** Images per forward pass (default 16): bounds the activation memory (~25 MB per image). */
  batchSize?: number;
  /** Called after each batch with the number of images done. */
  onBatch?: (done: number, total: number) => void;
}

/**
 * The FID Inception-v3 up to its 2048-d pool3 features (pytorch-fid's InceptionV3 with
 * output_blocks [3]); parameter names are pytorch-fid's module paths (Mixed_5b.branch1x1.weight
 * holds the folded Mixed_5b.branch1x1.conv.weight).
 */
export class InceptionV3 extends Module {
  private readonly stem: ConvBN[];
  private readonly stem2: ConvBN[];
  private readonly mixed: Block[];

  /** Builds the network from pytorch-fid's state_dict (BatchNorms folded; `weights` is left to the caller). */
  constructor(weights: InceptionWeights) {
    super();
    const conv = (name: string, i: number, o: number, k: Pair, opt = {}) => this.child(name, new ConvBN(weights, name, i, o, k, opt));
    const block = <M extends Block>(name: string, m: M) => this.child(name, m);
    const parts = building(this, () => ({
      stem: [
        conv('Conv2d_1a_3x3', 3, 32, 3, { stride: 2 }), // 299 -> 149
        conv('Conv2d_2a_3x3', 32, 32, 3), // -> 147
        conv('Conv2d_2b_3x3', 32, 64, 3, { padding: 1 }), // -> 147, then max pool -> 73
      ],
      stem2: [
        conv('Conv2d_3b_1x1', 64, 80, 1), // 73
        conv('Conv2d_4a_3x3', 80, 192, 3), // -> 71, then max pool -> 35
      ],
      mixed: [
        block('Mixed_5b', new InceptionA(weights, 'Mixed_5b', 192, 32)), // 35×35×256
        block('Mixed_5c', new InceptionA(weights, 'Mixed_5c', 256, 64)), // 35×35×288
        block('Mixed_5d', new InceptionA(weights, 'Mixed_5d', 288, 64)), // 35×35×288
        block('Mixed_6a', new InceptionB(weights, 'Mixed_6a', 288)), // 17×17×768
        block('Mixed_6b', new InceptionC(weights, 'Mixed_6b', 768, 128)),
        block('Mixed_6c', new InceptionC(weights, 'Mixed_6c', 768, 160)),
        block('Mixed_6d', new InceptionC(weights, 'Mixed_6d', 768, 160)),
        block('Mixed_6e', new InceptionC(weights, 'Mixed_6e', 768, 192)), // 17×17×768
        block('Mixed_7a', new InceptionD(weights, 'Mixed_7a', 768)), // 8×8×1280
        block('Mixed_7b', new InceptionE(weights, 'Mixed_7b', 1280, 'avg')), // 8×8×2048
        block('Mixed_7c', new InceptionE(weights, 'Mixed_7c', 2048, 'max')), // 8×8×2048
      ],
    }));
    this.stem = parts.stem;
    this.stem2 = parts.stem2;
    this.mixed = parts.mixed;
  }

  /**
   * Pool3 features of one batch, x (B, 3, H, W) in [-1, 1] -> (B, 2048). Inputs not already
   * 299×299 are resized bilinearly (align_corners=False) as pytorch-fid does. pytorch-fid resizes
   * [0, 1] images and then maps them to [-1, 1]; bilinear weights sum to one, so resizing the
   * [-1, 1] image directly is the same. Runs without the tape; every intermediate is freed as soon
   * as the next stage has used it.
   */
  forward(x: Tensor): Tensor {
    checkImages('InceptionV3.forward', x);
    return noGrad(() => {
      let h = stage(x, x, (t) => (t.shape[2] === INCEPTION_SIZE && t.shape[3] === INCEPTION_SIZE ? t.view(t.shape, t.strides, t.offset)
        : resizeBilinear(t, [INCEPTION_SIZE, INCEPTION_SIZE])));
      h = stage(h, x, (t) => maxPool2d(this.stem.reduce((a, m) => m.forward(a), t), 3, { stride: 2 }));
      h = stage(h, x, (t) => maxPool2d(this.stem2.reduce((a, m) => m.forward(a), t), 3, { stride: 2 }));
      for (const m of this.mixed) h = stage(h, x, (t) => m.forward(t));
      // adaptive average pool to 1×1: (B, 2048, 8, 8) -> (B, 2048)
      return stage(h, x, (t) => mean(t, [2, 3]));
    });
  }

  /**
   * Pool3 features of any number of images (N, 3, H, W) in [-1, 1] -> (N, 2048), in batches of
   * options.batchSize.
   */
  features(images: Tensor, options: FeatureOptions = {}): Tensor {
    checkImages('InceptionV3.features', images);
    const batch = options.batchSize ?? 16;
    if (!Number.isInteger(batch) || batch < 1) throw argError('InceptionV3.features', 'options.batchSize', 'an integer >= 1', describe(batch));
    const n = images.shape[0];
    const out = new Float32Array(n * INCEPTION_FEATURES);
    for (let start = 0; start < n; start += batch) {
      const count = Math.min(batch, n - start);
      scope(() => {
        const part = noGrad(() => slice(images, 0, start, start + count));
        out.set(this.forward(part).data(), start * INCEPTION_FEATURES);
      });
      options.onBatch?.(start + count, n);
    }
    return tensor(out, [n, INCEPTION_FEATURES]);
  }
}

function checkImages(op: string, x: Tensor): void {
  checkTensor(op, 'images', x);
  checkRank(op, 'images', x, 4);
  if (x.shape[1] !== 3 || x.shape[2] === 0 || x.shape[3] === 0) {
    throw argError(op, 'images', 'RGB images (N, 3, H, W) with H, W >= 1', `shape ${formatShape(x.shape)}`);
  }
}

/** Names a pytorch-fid state_dict may hold that the pool3 features do not use. */
const UNUSED = /^(fc\.|AuxLogits\.)|\.num_batches_tracked$/;

/**
 * Builds the network from a safetensors file with pytorch-fid's state_dict names (as written by
 * scripts/convert_inception.py). Every tensor the network needs must be present with its shape;
 * the classifier (fc.*), AuxLogits.* and num_batches_tracked are ignored; any other name is an
 * error (a different network's weights).
 */
export function loadInception(path: string): InceptionV3 {
  const { tensors } = readSafetensors(path);
  try {
    let net: InceptionV3;
    try {
      net = new InceptionV3(tensors);
    } catch (e) {
      throw new Error(`${(e as Error).message} (in ${path}; convert pytorch-fid's weights with scripts/convert_inception.py)`);
    }
    const used = new Set<string>();
    for (const [name] of net.namedParameters()) {
      const prefix = name.replace(/\.(weight|bias)$/, '');
      for (const k of ['conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']) used.add(`${prefix}.${k}`);
    }
    const unexpected = [...tensors.keys()].filter((k) => !used.has(k) && !UNUSED.test(k));
    if (unexpected.length) {
      net.dispose();
      throw new Error(`diffvit.loadInception: ${path}: unexpected tensors ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` (+${unexpected.length - 5} more)` : ''} (not pytorch-fid's FID Inception-v3)`);
    }
    return net.eval();
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
