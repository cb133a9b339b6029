/**
 * The U-Net baseline (config `arch: 'unet'`, preset `unet-xs`): the convolutional backbone IU-ViT
 * is compared with in the paper, an ADM-style U-Net (Dhariwal & Nichol 2021) trained and sampled by
 * the same EDM code. Same F(x_in, c_noise, labels) interface and the same time/label embedding as
 * IU-ViT (EDM positional features of c_noise -> Linear -> SiLU -> Linear, plus the label
 * embedding with its null row for guidance); no text context.
 *
 *   x (B, C, S, S) -> conv_in (3×3)
 *   -> encoder, per resolution: `res_blocks` residual blocks (each followed by self-attention
 *      where the resolution is in attn_res), then a stride-2 3×3 conv down (not after the last)
 *   -> decoder, lowest resolution first: `res_blocks` residual blocks, block j on
 *      concat(h, output of encoder block res_blocks-1-j of the same resolution) (+ attention), then
 *      a nearest 2× upsample (not after the last); the next block's first conv, over the upsampled
 *      map and the skip, does the smoothing that ADM's conv after the upsample does (that conv, at
 *      the higher resolution and the wider width, would cost 18 % of the network's FLOPs)
 *   -> GroupNorm, SiLU, conv_out (3×3) to C channels.
 * The lowest resolution's encoder and decoder blocks are the bottleneck (no separate middle
 * block): unet-xs has 2.59 M parameters (4 classes), the size the issue asks of its baseline.
 *
 * Residual block: GN+SiLU -> conv 3×3 -> GN modulated by (1 + scale, shift) from
 * Linear(SiLU(embedding)) + SiLU -> conv 3×3 (zero-init) -> + skip (1×1 conv when the channels
 * change). Attention block: GN -> qkv -> multi-head attention over the pixels -> proj (zero-init)
 * -> + x. conv_out is zero-init, so the network starts at F = 0 (D = c_skip · x).
 */
import { resolveDevice, type Device } from '../backend/backend.js';
import { add, addScalar, silu } from '../ops/elementwise.js';
import { groupNormAct } from '../ops/group_norm.js';
import { chunk, concat, reshape, transpose } from '../ops/shape.js';
import { selfAttention } from '../ops/attention.js';
import { upsampleNearest2d } from '../ops/upsample.js';
import { Conv2d, Embedding, GroupNorm, Linear } from '../nn/layers.js';
import { fillConstant } from '../nn/init.js';
import { Module, ModuleList } from '../nn/module.js';
import { TimestepEmbed } from '../nn/timestep.js';
import { LogVariance } from '../nn/log_variance.js';
import { Generator } from '../tensor/random.js';
import { formatShape, type Tensor } from '../tensor/tensor.js';
import { type FullUNetConfig, fullConfig, type ModelConfig } from './configs.js';

/** Residual block with the embedding's adaptive scale/shift on its second norm. */
export class ResBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly emb: Linear; // SiLU(embedding) -> (scale, shift) for norm2, 2 · cout
  readonly norm2: GroupNorm; // no affine of its own: the embedding's scale/shift is its affine
  readonly conv2: Conv2d;
  readonly skip: Conv2d | null; // 1×1 when cin != cout
  constructor(readonly cin: number, readonly cout: number, embDim: number, groups: number, g: Generator) {
    super();
    this.norm1 = this.child('norm1', new GroupNorm(groups, cin));
    this.conv1 = this.child('conv1', new Conv2d(cin, cout, 3, g, 1, 1));
    this.emb = this.child('emb', new Linear(embDim, 2 * cout, g));
    this.norm2 = this.child('norm2', new GroupNorm(groups, cout, false));
    this.conv2 = this.child('conv2', new Conv2d(cout, cout, 3, g, 1, 1));
    this.skip = cin !== cout ? this.child('skip', new Conv2d(cin, cout, 1, g)) : null;
  }

  // x: (B, cin, H, W), e: SiLU(embedding) (B, embDim) -> (B, cout, H, W)
  forward(x: Tensor, e: Tensor): Tensor {
    let h = this.conv1.forward(this.norm1.forward(x, { silu: true }));
    const [scale, shift] = chunk(this.emb.forward(e), 2, 1); // two (B, cout) column views
    h = groupNormAct(h, this.norm2.groups, { scale: addScalar(scale, 1), shift, silu: true, eps: this.norm2.eps });
    h = this.conv2.forward(h);
    return add(this.skip ? this.skip.forward(x) : x, h);
  }
}

/** Multi-head self-attention over the pixels of a (B, C, H, W) map, residual. */
export class AttnBlock extends Module {
  readonly norm: GroupNorm;
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(readonly channels: number, readonly heads: number, groups: number, qkvBias: boolean, g: Generator) {
    super();
    this.norm = this.child('norm', new GroupNorm(groups, channels));
    this.qkv = this.child('qkv', new Linear(channels, 3 * channels, g, qkvBias));
    this.proj = this.child('proj', new Linear(channels, channels, g));
  }

  forward(x: Tensor): Tensor {
    const [B, C, H, W] = x.shape;
    const tokens = transpose(reshape(this.norm.forward(x), [B, C, H * W]), 1, 2); // (B, HW, C)
    const o = this.proj.forward(selfAttention(this.qkv.forward(tokens), this.heads)); // (B, HW, C)
    return add(x, reshape(transpose(o, 1, 2), [B, C, H, W]));
  }
}

/** One resolution of the encoder or decoder: residual blocks, their attention blocks, the encoder's downsample. */
class Level extends Module {
  readonly res: ModuleList<ResBlock>;
  readonly attn: ModuleList<AttnBlock> | null;
  readonly downsample: Conv2d | null; // encoder: the stride-2 3×3 conv to the next resolution
  constructor(res: ResBlock[], attn: AttnBlock[] | null, downsample: Conv2d | null) {
    super();
    this.res = this.child('res', new ModuleList(res));
    this.attn = attn ? this.child('attn', new ModuleList(attn)) : null;
    this.downsample = downsample ? this.child('downsample', downsample) : null;
  }
  /** Residual block i (then its attention block, if any). */
  block(i: number, h: Tensor, e: Tensor): Tensor {
    h = this.res.items[i].forward(h, e);
    return this.attn ? this.attn.items[i].forward(h) : h;
  }
}

export class UNet extends Module {
  readonly config: FullUNetConfig;
  readonly time_embed: TimestepEmbed;
  readonly label_embed: Embedding | null;
  readonly conv_in: Conv2d;
  readonly down: ModuleList<Level>; // down.0 at img_size
  readonly up: ModuleList<Level>; // up.0 at the lowest resolution
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  /** config.learned_weighting: u(σ) of the training loss (EDM2); else null. */
  readonly logvar: LogVariance | null;

  /**
   * options.seed: the initialisation's seed (default 0); options.device: where the parameters live
   * (default 'cpu'; initialised on the host, then moved, so a seed gives the same values anywhere).
   */
  constructor(config: ModelConfig | string, options: { seed?: number; device?: Device } = {}) {
    super();
    const c = fullConfig(config);
    if (c.arch !== 'unet') throw new Error(`diffvit.UNet: argument 'config' expected arch 'unet', received '${c.arch}' (build IU-ViT/ASCEND with DiffusionViT)`);
    this.config = c;
    const device = options.device === undefined ? null : resolveDevice(options.device, 'UNet').device;
    const g = new Generator(options.seed ?? 0);
    const { channels: ch, res_blocks: nRes, norm_groups: G, dim: E, heads, qkv_bias: qkvBias } = c;
    const levels = ch.length;
    const attn = (level: number) => (c.attn_res.includes(c.img_size / 2 ** level)
      ? Array.from({ length: nRes }, () => new AttnBlock(ch[level], heads, G, qkvBias, g)) : null);
    this.time_embed = this.child('time_embed', new TimestepEmbed(c.freq_dim, E, g));
    this.label_embed = c.num_classes ? this.child('label_embed', new Embedding(c.num_classes + 1, E, g)) : null;
    this.conv_in = this.child('conv_in', new Conv2d(c.in_chans, ch[0], 3, g, 1, 1));
    const down: Level[] = [];
    let cur = ch[0];
    for (let i = 0; i < levels; i++) {
      const res = Array.from({ length: nRes }, (_, j) => new ResBlock(j === 0 ? cur : ch[i], ch[i], E, G, g));
      cur = ch[i];
      down.push(new Level(res, attn(i), i === levels - 1 ? null : new Conv2d(cur, cur, 3, g, 2, 1)));
    }
    this.down = this.child('down', new ModuleList(down));
    const up: Level[] = [];
    for (let i = levels - 1; i >= 0; i--) {
      const res = Array.from({ length: nRes }, (_, j) => new ResBlock((j === 0 ? cur : ch[i]) + ch[i], ch[i], E, G, g));
      cur = ch[i];
      up.push(new Level(res, attn(i), null));
    }
    this.up = this.child('up', new ModuleList(up));
    this.norm_out = this.child('norm_out', new GroupNorm(G, cur));
    this.conv_out = this.child('conv_out', new Conv2d(cur, c.in_chans, 3, g, 1, 1));
    this.initializeWeights();
    // After the initialisation, so every other parameter draws what it draws without it.
    this.logvar = c.learned_weighting ? this.child('logvar', new LogVariance(c.freq_dim, g)) : null;
    if (device) this.to(device);
  }

  /** PyTorch's default initialisation (drawn in the constructors), then ADM's zero-init of each residual branch's last layer and of conv_out. */
  private initializeWeights(): void {
    for (const [, m] of this.namedModules()) {
      // zero-init residual branches: every block starts as its skip path
      if (m instanceof ResBlock) zero(m.conv2);
      if (m instanceof AttnBlock) zero(m.proj);
    }
    zero(this.conv_out);
  }

  /**
   * x: (B, C, H, W) network input (already scaled by c_in), cNoise: (B), labels: int32 (B) or null
   * (the null class is num_classes), context: must be null (no text context). Returns (B, C, H, W).
   */
  forward(x: Tensor, cNoise: Tensor, labels: Tensor | null = null, context: Tensor | null = null): Tensor {
    const c = this.config;
    const [B, C, H, W] = x.shape;
    if (x.rank !== 4 || C !== c.in_chans || H !== c.img_size || W !== c.img_size) {
      throw new Error(`diffvit.UNet: argument 'x' expected shape [B, ${c.in_chans}, ${c.img_size}, ${c.img_size}], received ${formatShape(x.shape)}`);
    }
    if (cNoise.rank !== 1 || cNoise.shape[0] !== B) throw new Error(`diffvit.UNet: argument 'cNoise' expected shape [${B}], received ${formatShape(cNoise.shape)}`);
    if (this.label_embed && !labels) throw new Error(`diffvit.UNet: argument 'labels' expected int32 labels of shape [${B}] (class-conditional model; the null class is ${c.num_classes}), received null`);
    if (context) throw new Error(`diffvit.UNet: argument 'context' expected null (the U-Net takes no text context), received shape ${formatShape(context.shape)}`);
    const device = this.conv_in.weight.device;
    for (const [name, t] of [['x', x], ['cNoise', cNoise], ['labels', labels]] as const) {
      if (t && t.device !== device) {
        throw new Error(`diffvit.UNet: argument '${name}' is on device '${t.device}' but the model's parameters are on '${device}' (move the input with tensor.to('${device}'), or the model with model.to(device))`);
      }
    }
    const temb = this.time_embed.forward(cNoise); // (B, dim)
    const e = silu(this.label_embed && labels ? add(temb, this.label_embed.forward(labels)) : temb);
    let h = this.conv_in.forward(x);
    const skips: Tensor[] = []; // every encoder block's output, taken back last in, first out
    for (const level of this.down.items) {
      for (let j = 0; j < level.res.length; j++) skips.push((h = level.block(j, h, e)));
      if (level.downsample) h = level.downsample.forward(h);
    }
    this.up.items.forEach((level, i) => {
      if (i > 0) h = upsampleNearest2d(h, 2);
      for (let j = 0; j < level.res.length; j++) h = level.block(j, concat([h, skips.pop()!], 1), e);
    });
    return this.conv_out.forward(this.norm_out.forward(h, { silu: true }));
  }
}

function zero(m: Conv2d | Linear): void {
  fillConstant(m.weight, 0);
  if (m.bias) fillConstant(m.bias, 0);
}
