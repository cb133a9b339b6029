/**
 * Model configurations. Keys are the twin's (shared/reference/diffvit_torch.py), snake_case, so a
 * config round-trips through checkpoints of either implementation.
 */

export interface ModelConfig {
  arch: 'iuvit' | 'ascend';
  img_size: number; // square images, pixels
  in_chans: number;
  patch: number; // patch side (tokens = (img_size/patch)^2)
  dim: number; // width (encoder and decoder unless enc_dim/dec_dim say otherwise)
  heads: number;
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
}

/** Every key a model config may have (config files are checked against it); the type keeps it complete. */
const MODEL_KEYS: Record<keyof ModelConfig, true> = {
  arch: true, img_size: true, in_chans: true, patch: true, dim: true, heads: true, depth: true, enc_depth: true, dec_depth: true,
  mlp_ratio: true, qkv_bias: true, time_cond: true, num_classes: true, context_dim: true, context_len: true, final_conv: true,
  freq_dim: true, enc_dim: true, dec_dim: true,
};
export const MODEL_CONFIG_KEYS: readonly string[] = Object.keys(MODEL_KEYS);

export type FullModelConfig = Required<Omit<ModelConfig, 'depth' | 'enc_dim' | 'dec_dim'>> & {
  depth?: number;
  enc_dim: number;
  dec_dim: number;
};

export const DEFAULTS = {
  mlp_ratio: 4.0,
  qkv_bias: false,
  time_cond: 'adaln',
  num_classes: 0,
  context_dim: 0,
  context_len: 0,
  final_conv: true,
  freq_dim: 256,
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
};

function fail(key: string, expected: string, received: unknown): never {
  throw new Error(`diffvit.modelConfig: '${key}' expected ${expected}, received ${JSON.stringify(received)}`);
}

function positiveInt(c: Record<string, unknown>, key: string, allowZero = false): void {
  const v = c[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1)) fail(key, allowZero ? 'an integer >= 0' : 'an integer >= 1', v);
}

/** Fills defaults and derived depths/widths, checking every key (the twin's full_config). */
export function fullConfig(config: ModelConfig | string): FullModelConfig {
  const base = typeof config === 'string' ? PRESETS[config] : config;
  if (!base) throw new Error(`diffvit.modelConfig: unknown preset '${config}'; presets: ${Object.keys(PRESETS).join(', ')}`);
  const c: Record<string, unknown> = { ...DEFAULTS, ...base };
  if (c.arch !== 'iuvit' && c.arch !== 'ascend') fail('arch', "'iuvit' or 'ascend'", c.arch);
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
  return c as FullModelConfig;
}
