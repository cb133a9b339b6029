/**
 * IU-ViT (symmetric encoder/decoder with long skips) and ASCEND (asymmetric: deeper/wider encoder),
 * the network F(x_in, c_noise, labels, context) of the twin's DiffusionViT — same parameter names,
 * shapes and maths — and `DiffusionViT`, the model type every entry point takes (trainer, samplers,
 * guidance, checkpoints): an IU-ViT/ASCEND or the U-Net baseline (./unet.ts), built from a config
 * by `new DiffusionViT(config)`.
 */
import { type Device, resolveDevice } from '../backend/backend.js';
import { add, silu } from '../ops/elementwise.js';
import { assign_ } from '../ops/inplace.js';
import { concat, flatten, slice, transpose, unsqueeze } from '../ops/shape.js';
import { Conv2d, Embedding, Linear } from '../nn/layers.js';
import { Block, FinalLayer } from '../nn/block.js';
import { fillConstant, sinCos2d, truncNormal, xavierUniform } from '../nn/init.js';
import { Module, ModuleList } from '../nn/module.js';
import { RopeTables } from '../nn/rope_tables.js';
import { TimestepEmbed } from '../nn/timestep.js';
import { LogVariance } from '../nn/log_variance.js';
import { dropTokens, restoreTokens, type TokenMask } from './token_mask.js';
import { unpatchify } from './patches.js';
import { Generator } from '../tensor/random.js';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { type FullViTConfig, fullConfig, type ModelConfig } from './configs.js';
import { UNet } from './unet.js';

/** IU-ViT / ASCEND (config arch 'iuvit' or 'ascend'). */
export class IUViT extends Module {
  readonly config: FullViTConfig;
  readonly adaln: boolean;
  readonly nPatches: number;
  /** Tokens before the patches: [time] [label] [context...] ("token" mode has time/label; label_token the label). */
  readonly nExtra: number;
  readonly skipFrom: number[];
  /** config.conv_width > 0: the 3x3 conv before the patch embedding (pixels -> conv_width channels). */
  readonly stem: Conv2d | null;
  readonly patch_embed: Conv2d;
  readonly pos_embed: Tensor; // (1, nExtra + nPatches, enc_dim)
  readonly time_embed: TimestepEmbed;
  readonly label_embed: Embedding | null;
  readonly context_embed: Linear | null;
  readonly enc_blocks: ModuleList<Block>;
  readonly mid_block: Block;
  readonly bridge: Linear | null;
  readonly dec_blocks: ModuleList<Block>;
  readonly final: FinalLayer;
  readonly final_conv: Conv2d | null;
  /** config.learned_weighting: u(σ) of the training loss (EDM2); else null. */
  readonly logvar: LogVariance | null;
  /** config.rope: the cos/sin tables of every attention, per device (not parameters); else null. */
  readonly ropeTables: RopeTables | null;

  /**
   * options.seed: the initialisation's seed (default 0); options.device: where the parameters live
   * (default 'cpu'). The weights are initialised on the host and then moved (Module.to), so a seed
   * gives the same initial values on every device.
   */
  constructor(config: ModelConfig | string, options: ModelOptions = {}) {
    super();
    const c = fullConfig(config);
    if (c.arch === 'unet') throw new Error("diffvit.IUViT: argument 'config' expected arch 'iuvit' or 'ascend', received 'unet' (build it with DiffusionViT or UNet)");
    this.config = c;
    // Checked before anything is allocated.
    const device = options.device === undefined ? null : resolveDevice(options.device, 'DiffusionViT').device;
    const g = new Generator(options.seed ?? 0);
    const { patch: p, in_chans: C, enc_dim: de, dec_dim: dd } = c;
    this.adaln = c.time_cond === 'adaln';
    this.nPatches = (c.img_size / p) ** 2;
    this.nExtra = (this.adaln ? 0 : 1) + (c.num_classes && (!this.adaln || c.label_token) ? 1 : 0) + c.context_len;
    // With a conv stem and head the patches carry conv_width channels in and out instead of the pixels'.
    const pixelChans = c.conv_width || C;
    this.stem = c.conv_width ? this.child('stem', new Conv2d(C, c.conv_width, 3, g, 1, 1)) : null;
    this.patch_embed = this.child('patch_embed', new Conv2d(pixelChans, de, p, g, p));
    this.pos_embed = this.param('pos_embed', Tensor.empty([1, this.nExtra + this.nPatches, de]));
    this.time_embed = this.child('time_embed', new TimestepEmbed(c.freq_dim, de, g));
    this.label_embed = c.num_classes ? this.child('label_embed', new Embedding(c.num_classes + 1, de, g)) : null;
    this.context_embed = c.context_dim ? this.child('context_embed', new Linear(c.context_dim, de, g)) : null;
    // The conditioning vector (time [+ label] embedding) has the encoder width de.
    const block = (dim: number, skipDim = 0) =>
      new Block({ dim, heads: c.heads, mlpRatio: c.mlp_ratio, qkvBias: c.qkv_bias, adaln: this.adaln, skipDim, condDim: de, qkNorm: c.qk_norm, mlp: c.mlp }, g);
    this.enc_blocks = this.child('enc_blocks', new ModuleList(Array.from({ length: c.enc_depth }, () => block(de))));
    this.mid_block = this.child('mid_block', block(de));
    this.bridge = de !== dd ? this.child('bridge', new Linear(de, dd, g)) : null;
    this.dec_blocks = this.child('dec_blocks', new ModuleList(Array.from({ length: c.dec_depth }, () => block(dd, de))));
    // Decoder block j takes its skip from encoder block enc_depth-1-floor(j*enc_depth/dec_depth).
    this.skipFrom = Array.from({ length: c.dec_depth }, (_, j) => c.enc_depth - 1 - Math.floor((j * c.enc_depth) / c.dec_depth));
    this.final = this.child('final', new FinalLayer(dd, p * p * pixelChans, this.adaln, de, g));
    this.final_conv = c.final_conv ? this.child('final_conv', new Conv2d(pixelChans, C, 3, g, 1, 1)) : null;
    this.ropeTables = c.rope ? new RopeTables(c.img_size / p, this.nExtra) : null;
    this.initializeWeights(g);
    // After the initialisation, so every other parameter draws what it draws without it.
    this.logvar = c.learned_weighting ? this.child('logvar', new LogVariance(c.freq_dim, g)) : null;
    if (device) this.to(device);
  }

  /** The twin's reset_parameters (xavier Linear weights, zero biases, adaLN-Zero), but sin-cos patch positions. */
  private initializeWeights(g: Generator): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof Linear) {
        xavierUniform(m.weight, g);
        if (m.bias) fillConstant(m.bias, 0);
      }
    }
    truncNormal(this.pos_embed, 0.02, g);
    // Patch tokens start from DiT's 2-D sin-cos features instead (still learned; extra tokens keep
    // the twin's N(0, 0.02²)): with 0.02-sized positions the tokens barely know where they are, so
    // short runs learned each patch's colour but not connected shapes (see docs/training-notes.md).
    const grid = Math.round(Math.sqrt(this.nPatches));
    assign_(this.pos_embed, sinCos2d(grid, this.pos_embed.shape[2]), this.nExtra * this.pos_embed.shape[2]);
    for (const [, m] of this.namedModules()) {
      // zero-init adaLN modulation: every block starts as the identity
      if ((m instanceof Block || m instanceof FinalLayer) && m.ada) {
        fillConstant(m.ada.weight, 0);
        fillConstant(m.ada.bias!, 0);
      }
    }
    if (this.adaln) {
      fillConstant(this.final.linear.weight, 0);
      fillConstant(this.final.linear.bias!, 0);
    }
  }

  /**
   * x: (B, C, H, W) network input (already scaled by c_in), cNoise: (B), labels: int32 (B) or null
   * (the null class is num_classes), context: (B, context_len, context_dim) or null. Returns (B, C, H, W).
   * mask (masked-token training, ./token_mask.ts): the blocks see only the mask's kept patch tokens
   * (after their positions are added; extra tokens always stay), and the dropped patches' outputs
   * are zeros before final_conv — the loss is meant for the kept patches only. Not with rope.
   */
  forward(x: Tensor, cNoise: Tensor, labels: Tensor | null = null, context: Tensor | null = null, mask: TokenMask | null = null): Tensor {
    const c = this.config;
    const [B, C, H, W] = x.shape;
    if (x.rank !== 4 || C !== c.in_chans || H !== c.img_size || W !== c.img_size) {
      throw new Error(`diffvit.DiffusionViT: argument 'x' expected shape [B, ${c.in_chans}, ${c.img_size}, ${c.img_size}], received ${formatShape(x.shape)}`);
    }
    if (cNoise.rank !== 1 || cNoise.shape[0] !== B) throw new Error(`diffvit.DiffusionViT: argument 'cNoise' expected shape [${B}], received ${formatShape(cNoise.shape)}`);
    if (this.label_embed && !labels) throw new Error(`diffvit.DiffusionViT: argument 'labels' expected int32 labels of shape [${B}] (class-conditional model; the null class is ${c.num_classes}), received null`);
    if (this.context_embed && !context) throw new Error(`diffvit.DiffusionViT: argument 'context' expected shape [${B}, ${c.context_len}, ${c.context_dim}], received null`);
    const device = this.pos_embed.device;
    for (const [name, t] of [['x', x], ['cNoise', cNoise], ['labels', labels], ['context', context]] as const) {
      if (t && t.device !== device) {
        throw new Error(`diffvit.DiffusionViT: argument '${name}' is on device '${t.device}' but the model's parameters are on '${device}' (move the input with tensor.to('${device}'), or the model with model.to(device))`);
      }
    }
    if (mask && this.ropeTables) throw new Error("diffvit.DiffusionViT: argument 'mask' expected null for a rope model (its rotary tables follow the full token grid)");
    if (mask && (mask.tokens !== this.nPatches || mask.keep.shape[0] !== B || mask.keep.device !== device)) {
      throw new Error(`diffvit.DiffusionViT: argument 'mask' expected a mask of ${B} images of ${this.nPatches} patches on '${device}', received one of ${mask.keep.shape[0]} images of ${mask.tokens} on '${mask.keep.device}'`);
    }
    const p = c.patch;
    const pixels = this.stem ? silu(this.stem.forward(x)) : x;
    const tok = transpose(flatten(this.patch_embed.forward(pixels), 2), 1, 2); // (B, N, de)
    const temb = this.time_embed.forward(cNoise); // (B, de)
    const lemb = this.label_embed && labels ? this.label_embed.forward(labels) : null;
    const extra: Tensor[] = [];
    let cond: Tensor | null = null;
    if (this.adaln) {
      cond = lemb ? add(temb, lemb) : temb;
      if (lemb && c.label_token) extra.push(unsqueeze(lemb, 1));
    } else {
      extra.push(unsqueeze(temb, 1));
      if (lemb) extra.push(unsqueeze(lemb, 1));
    }
    if (this.context_embed && context) extra.push(this.context_embed.forward(context));
    let z = add(extra.length ? concat([...extra, tok], 1) : tok, this.pos_embed);
    if (mask) {
      const kept = dropTokens(this.nExtra ? slice(z, 1, this.nExtra, z.shape[1]) : z, mask);
      z = this.nExtra ? concat([slice(z, 1, 0, this.nExtra), kept], 1) : kept;
    }
    // RoPE turns q and k by each patch's row and column (extra tokens by 0); head dims differ in ASCEND.
    const encRope = this.ropeTables?.get(device, c.enc_dim / c.heads) ?? null;
    const decRope = this.ropeTables?.get(device, c.dec_dim / c.heads) ?? null;
    const skips: Tensor[] = [];
    for (const b of this.enc_blocks.items) {
      z = b.forward(z, cond, null, encRope);
      skips.push(z);
    }
    z = this.mid_block.forward(z, cond, null, encRope);
    if (this.bridge) z = this.bridge.forward(z);
    this.dec_blocks.items.forEach((b, j) => {
      z = b.forward(z, cond, skips[this.skipFrom[j]], decRope);
    });
    z = this.final.forward(z, cond);
    if (this.nExtra) z = slice(z, 1, this.nExtra, z.shape[1]);
    if (mask) z = restoreTokens(z, mask);
    const Cout = c.conv_width || C;
    const img = unpatchify(z, p, Cout, H);
    if (!this.final_conv) return img;
    return this.final_conv.forward(c.conv_width ? silu(img) : img);
  }

  /** Frees the parameters and the RoPE tables. */
  dispose(): void {
    this.ropeTables?.dispose();
    super.dispose();
  }
}

export interface ModelOptions {
  /** The initialisation's seed (default 0). */
  seed?: number;
  /** Where the parameters live (default 'cpu'); initialised on the host, then moved. */
  device?: Device;
}

/** A diffusion backbone F(x_in, c_noise, labels, context): IU-ViT/ASCEND or the U-Net. */
export type DiffusionViT = IUViT | UNet;

interface DiffusionViTConstructor {
  /** The model of `config` (a preset name or a config object): an IUViT, or a UNet for arch 'unet'. */
  new (config: ModelConfig | string, options?: ModelOptions): DiffusionViT;
  /** `m instanceof DiffusionViT`: true for an IUViT or a UNet. */
  [Symbol.hasInstance](m: unknown): m is DiffusionViT;
}

/**
 * Builds the model of a config, whatever its arch: `new DiffusionViT('iuvit-xs/4')` is an IUViT,
 * `new DiffusionViT('unet-xs')` a UNet — what the trainer, loadCheckpoint and the workers call.
 */
export const DiffusionViT: DiffusionViTConstructor = (() => {
  function DiffusionViT(config: ModelConfig | string, options: ModelOptions = {}): DiffusionViT {
    const arch = typeof config === 'string' ? fullConfig(config).arch : config?.arch;
    return arch === 'unet' ? new UNet(config, options) : new IUViT(config, options);
  }
  Object.defineProperty(DiffusionViT, Symbol.hasInstance, { value: (m: unknown) => m instanceof IUViT || m instanceof UNet });
  return DiffusionViT as unknown as DiffusionViTConstructor;
})();
