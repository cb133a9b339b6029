/**
 * Model configurations. Keys are the twin's (shared/reference/diffvit_torch.py), snake_case, so a
 * config round-trips through checkpoints of either implementation. `arch: 'unet'` (the U-Net
 * baseline, lib/models/unet.ts) has no twin; it shares the conditioning keys and adds its own.
 */
import { jsonErrorMessage } from '../json_message.js';

export interface ModelConfig {
  arch: 'iuvit' | 'ascend' | 'unet';
  img_size: number; // square images, pixels
  in_chans: number;
  patch?: number; // IU-ViT/ASCEND: patch side (tokens = (img_size/patch)^2); required there
  dim: number; // width (encoder and decoder unless enc_dim/dec_dim say otherwise); U-Net: the time/label embedding width
  heads: number; // attention heads (U-Net: in its attention blocks)
  depth?: number; // IU-ViT: depth//2 encoder blocks, 1 mid, depth//2 decoder blocks
  enc_depth?: number; // ASCEND
  dec_depth?: number; // ASCEND
  mlp_ratio?: number;
  qkv_bias?: boolean;
  time_cond?: 'adaln' | 'token';
  num_classes?: number; // 0: unconditional; else a label_embed with a last "null" row for CFG
  context_dim?: number; // text/context embedding width (0: none)
  context_len?: number; // context tokens per image
  final_conv?: boolean; // 3x3 conv after unpatchify
  freq_dim?: number; // positional features of c_noise
  enc_dim?: number | null; // ASCEND: encoder width (default dim)
  dec_dim?: number | null; // ASCEND: decoder width (default dim)
  channels?: number[]; // U-Net: channels at each resolution, the first at img_size, each next at half the size
  res_blocks?: number; // U-Net: residual blocks per resolution in the encoder (the decoder has one more)
  attn_res?: number[]; // U-Net: resolutions (pixels) with self-attention after each residual block
  norm_groups?: number; // U-Net: GroupNorm groups (divides every entry of channels)
  // IU-ViT/ASCEND: 2-D rotary position embedding of q and k in every attention (head dims multiples of 4).
  // The PyTorch twin ignores this key, so a rope model has no twin.
  rope?: boolean;
  // IU-ViT/ASCEND: 0, or the channels of a 3x3 conv stem (then SiLU) before the patch embedding and of
  // the unpatchified output (then SiLU) before final_conv, which it needs. No twin either.
  conv_width?: number;
  // IU-ViT/ASCEND with time_cond 'adaln' and classes: the label embedding also enters as a token before
  // the patches (the attention can read it, as in 'token' mode, besides modulating every block). No twin.
  label_token?: boolean;
  // IU-ViT/ASCEND: LayerNorm (with a learned scale, no shift) of each head's queries and keys before
  // the attention (and before RoPE). No twin.
  qk_norm?: boolean;
  // IU-ViT/ASCEND: 'gelu' (fc1 -> GELU -> fc2, the twin's) or 'swiglu' (fc1 to two halves of 2/3 the
  // width, SiLU(a) * b -> fc2: about the same parameters). No twin for 'swiglu'.
  mlp?: 'gelu' | 'swiglu';
  // Any arch: EDM2's learned loss weighting (lib/nn/log_variance.ts): a linear map of c_noise's features
  // to u(σ), and the training loss L/e^u + u per sample. Parameters logvar.*; sampling ignores them. No twin.
  learned_weighting?: boolean;
}

/** Every key a model config may have (config files are checked against it); the type keeps it complete. */
const MODEL_KEYS: Record<keyof ModelConfig, true> = {
  arch: true, img_size: true, in_chans: true, patch: true, dim: true, heads: true, depth: true, enc_depth: true, dec_depth: true,
  mlp_ratio: true, qkv_bias: true, time_cond: true, num_classes: true, context_dim: true, context_len: true, final_conv: true,
  freq_dim: true, enc_dim: true, dec_dim: true, channels: true, res_blocks: true, attn_res: true, norm_groups: true, rope: true,
  conv_width: true, label_token: true, qk_norm: true, mlp: true, learned_weighting: true,
};

/** The U-Net's own keys, and the IU-ViT/ASCEND keys a U-Net config may not carry. */
const UNET_KEYS = ['channels', 'res_blocks', 'attn_res', 'norm_groups'] as const;
const VIT_ONLY_KEYS = ['patch', 'depth', 'enc_depth', 'dec_depth', 'mlp_ratio', 'final_conv', 'enc_dim', 'dec_dim', 'rope', 'conv_width', 'label_token', 'qk_norm', 'mlp'] as const;
type UNetKey = (typeof UNET_KEYS)[number];
export const MODEL_CONFIG_KEYS: readonly string[] = Object.keys(MODEL_KEYS);

/** An IU-ViT/ASCEND config with its defaults and derived depths/widths (the twin's full_config). */
export type FullViTConfig = Required<Omit<ModelConfig, 'arch' | 'depth' | 'enc_dim' | 'dec_dim' | UNetKey>> & {
  arch: 'iuvit' | 'ascend';
  depth?: number;
  enc_dim: number;
  dec_dim: number;
};

/** A U-Net config with its defaults: the shared keys (conditioning, embedding) and its own. */
export type FullUNetConfig = Required<Pick<ModelConfig, 'img_size' | 'in_chans' | 'dim' | 'heads' | 'qkv_bias' |
  'num_classes' | 'context_dim' | 'context_len' | 'freq_dim' | 'learned_weighting' | UNetKey>> & {
  arch: 'unet';
  time_cond: 'adaln';
};

export type FullModelConfig = FullViTConfig | FullUNetConfig;

export const DEFAULTS = {
  mlp_ratio: 4.0,
  qkv_bias: false,
  time_cond: 'adaln',
  num_classes: 0,
  context_dim: 0,
  context_len: 0,
  final_conv: true,
  freq_dim: 256,
  rope: false,
  conv_width: 0,
  label_token: false,
  qk_norm: false,
  mlp: 'gelu',
  learned_weighting: false,
} as const;

/** Named presets (DiT-style keys). ASCEND counterparts trade decoder depth for encoder depth. */
export const PRESETS: Record<string, ModelConfig> = {
  'iuvit-xs/4': { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 4, dim: 128, depth: 7, heads: 4 },
  'iuvit-t/8': { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 8, dim: 256, depth: 7, heads: 4 },
  'iuvit-t/4': { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 4, dim: 256, depth: 7, heads: 4 },
  'iuvit-s/2': { arch: 'iuvit', img_size: 32, in_chans: 3, patch: 2, dim: 512, depth: 13, heads: 8 },
  'iuvit-m/4': { arch: 'iuvit', img_size: 64, in_chans: 3, patch: 4, dim: 768, depth: 17, heads: 12 },
  'iuvit-l/8': { arch: 'iuvit', img_size: 256, in_chans: 3, patch: 8, dim: 1024, depth: 21, heads: 16 },
  'ascend-t/4': { arch: 'ascend', img_size: 32, in_chans: 3, patch: 4, dim: 256, enc_depth: 4, dec_depth: 2, heads: 4 },
  'ascend-s/2': { arch: 'ascend', img_size: 32, in_chans: 3, patch: 2, dim: 512, enc_depth: 8, dec_depth: 4, heads: 8 },
  'ascend-m/4': { arch: 'ascend', img_size: 64, in_chans: 3, patch: 4, dim: 768, enc_depth: 11, dec_depth: 5, heads: 12 },
  'ascend-l/8': { arch: 'ascend', img_size: 256, in_chans: 3, patch: 8, dim: 1024, enc_depth: 14, dec_depth: 6, heads: 16 },
  // The paper's point of comparison: a small ADM-style U-Net (2.59 M parameters with 4 classes; lib/models/unet.ts).
  'unet-xs': { arch: 'unet', img_size: 32, in_chans: 3, dim: 128, heads: 4, channels: [32, 64, 128], res_blocks: 2, attn_res: [8], norm_groups: 8 },
};

export const UNET_DEFAULTS = { res_blocks: 2, attn_res: [] as number[], norm_groups: 8 } as const;

function fail(key: string, expected: string, received: unknown): never {
  throw new Error(`diffvit.modelConfig: '${key}' expected ${expected}, received ${JSON.stringify(received)}`);
}

function positiveInt(c: Record<string, unknown>, key: string, allowZero = false): void {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1)) fail(key, allowZero ? 'an integer >= 0' : 'an integer >= 1', v);
}

function learnedWeighting(c: Record<string, unknown>): void {
  c.learned_weighting ??= false;
  if (typeof c.learned_weighting !== 'boolean') fail('learned_weighting', 'a boolean', c.learned_weighting);
}

/** The U-Net's full config: shared keys checked as for IU-ViT, its own keys, no IU-ViT-only key. */
function fullUNetConfig(base: ModelConfig): FullUNetConfig {
  for (const k of VIT_ONLY_KEYS) if (base[k] !== undefined && base[k] !== null) fail(k, "no value for arch 'unet' (an IU-ViT/ASCEND key)", base[k]);
  const { mlp_ratio: _m, final_conv: _f, rope: _r, conv_width: _w, label_token: _l, qk_norm: _q, mlp: _p, ...shared } = DEFAULTS;
  const c: Record<string, unknown> = { ...shared, ...UNET_DEFAULTS, ...base };
  for (const k of ['img_size', 'in_chans', 'dim', 'heads', 'freq_dim', 'res_blocks', 'norm_groups']) positiveInt(c, k);
  for (const k of ['num_classes', 'context_dim', 'context_len']) positiveInt(c, k, true);
  if (c.time_cond !== 'adaln') fail('time_cond', "'adaln' for arch 'unet' (the embedding modulates every residual block)", c.time_cond);
  if (c.context_dim || c.context_len) fail('context_dim', "0 for arch 'unet' (no text context; use an IU-ViT for text-to-image)", c.context_dim);
  if (typeof c.qkv_bias !== 'boolean') fail('qkv_bias', 'a boolean', c.qkv_bias);
  learnedWeighting(c);
  if ((c.freq_dim as number) % 2 || (c.freq_dim as number) < 4) fail('freq_dim', 'an even number >= 4', c.freq_dim);
  const channels = c.channels, attnRes = c.attn_res;
  const isInt = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min;
  if (!Array.isArray(channels) || channels.length === 0 || !channels.every((v) => isInt(v, 1))) {
    fail('channels', 'a non-empty array of positive integers (channels at each resolution)', channels);
  }
  const levels = channels.length, size = c.img_size as number;
  if (size % 2 ** (levels - 1)) fail('img_size', `a multiple of 2^${levels - 1} (${levels} resolutions, each half the last)`, size);
  const groups = c.norm_groups as number;
  for (const ch of channels as number[]) if (ch % groups) fail('norm_groups', `a divisor of every entry of channels ${JSON.stringify(channels)}`, groups);
  const sizes = Array.from({ length: levels }, (_, i) => size / 2 ** i);
  if (!Array.isArray(attnRes) || !attnRes.every((r) => sizes.includes(r))) fail('attn_res', `an array of resolutions among ${JSON.stringify(sizes)}`, attnRes);
  for (const [i, r] of sizes.entries()) {
    if ((attnRes as number[]).includes(r) && (channels as number[])[i] % (c.heads as number)) fail('heads', `a divisor of the ${(channels as number[])[i]} channels at resolution ${r} (attention)`, c.heads);
  }
  return { ...c, channels: [...(channels as number[])], attn_res: [...(attnRes as number[])] } as FullUNetConfig;
}

/** Fills defaults and derived depths/widths, checking every key (the twin's full_config). */
export function fullConfig(config: ModelConfig | string): FullModelConfig {
  const base = typeof config === 'string' ? PRESETS[config] : config;
  if (!base) throw new Error(`diffvit.modelConfig: unknown preset '${config}'; presets: ${Object.keys(PRESETS).join(', ')}`);
  if (base.arch === 'unet') return fullUNetConfig(base);
  const c: Record<string, unknown> = { ...DEFAULTS, ...base };
  if (c.arch !== 'iuvit' && c.arch !== 'ascend') fail('arch', "'iuvit', 'ascend' or 'unet'", c.arch);
  for (const k of UNET_KEYS) if (c[k] !== undefined) fail(k, `no value for arch '${c.arch}' (a U-Net key)`, c[k]);
  for (const k of ['img_size', 'in_chans', 'patch', 'dim', 'heads', 'freq_dim']) positiveInt(c, k);
  for (const k of ['num_classes', 'context_dim', 'context_len']) positiveInt(c, k, true);
  if (c.time_cond !== 'adaln' && c.time_cond !== 'token') fail('time_cond', "'adaln' or 'token'", c.time_cond);
  if ((c.img_size as number) % (c.patch as number)) fail('patch', `a divisor of img_size ${c.img_size}`, c.patch);
  if ((c.freq_dim as number) % 2 || (c.freq_dim as number) < 4) fail('freq_dim', 'an even number >= 4', c.freq_dim);
  if (c.arch === 'iuvit') {
    positiveInt(c, 'depth');
    c.enc_depth = c.dec_depth = Math.floor((c.depth as number) / 2);
  } else {
    positiveInt(c, 'enc_depth');
    positiveInt(c, 'dec_depth');
  }
  if (((c.context_dim as number) > 0) !== ((c.context_len as number) > 0)) {
    fail('context_len', 'a positive length exactly when context_dim > 0', c.context_len);
  }
  c.enc_dim = c.enc_dim ?? c.dim;
  c.dec_dim = c.dec_dim ?? c.dim;
  for (const k of ['enc_dim', 'dec_dim']) {
    positiveInt(c, k);
    if ((c[k] as number) % (c.heads as number)) fail(k, `a multiple of heads ${c.heads}`, c[k]);
  }
  c.rope ??= false; // an explicit undefined, as if absent
  if (typeof c.rope !== 'boolean') fail('rope', 'a boolean', c.rope);
  for (const k of ['enc_dim', 'dec_dim']) {
    // 2-D RoPE splits each head's pairs in halves, one for the row and one for the column.
    if (c.rope && (c[k] as number) % (4 * (c.heads as number))) fail(k, `a multiple of 4 * heads = ${4 * (c.heads as number)} with rope (head dims a multiple of 4)`, c[k]);
  }
  c.conv_width ??= 0;
  positiveInt(c, 'conv_width', true);
  if ((c.conv_width as number) > 0 && c.final_conv !== true) fail('final_conv', 'true with conv_width > 0 (the conv head ends in final_conv)', c.final_conv);
  c.label_token ??= false;
  if (typeof c.label_token !== 'boolean') fail('label_token', 'a boolean', c.label_token);
  if (c.label_token && (c.time_cond !== 'adaln' || !c.num_classes)) {
    fail('label_token', "false unless time_cond is 'adaln' and num_classes > 0 (in 'token' mode the label is a token already)", c.label_token);
  }
  c.qk_norm ??= false;
  if (typeof c.qk_norm !== 'boolean') fail('qk_norm', 'a boolean', c.qk_norm);
  learnedWeighting(c);
  c.mlp ??= 'gelu';
  if (c.mlp !== 'gelu' && c.mlp !== 'swiglu') fail('mlp', "'gelu' or 'swiglu'", c.mlp);
  return c as FullViTConfig;
}

/**
 * The model config in a checkpoint's __metadata__ (as written, before fullConfig); errors start with
 * `where`, which names the caller and the file, when it is not a diffvit checkpoint.
 */
export function checkpointConfig(metadata: Record<string, string>, where: string): ModelConfig {
  if (!metadata.config) throw new Error(`${where}: no 'config' in __metadata__ (not a diffvit checkpoint)`);
  try {
    return JSON.parse(metadata.config) as ModelConfig;
  } catch (e) {
    throw new Error(`${where}: __metadata__.config is not valid JSON (${jsonErrorMessage(e)})`);
  }
}
