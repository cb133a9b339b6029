/** Help texts of the heavier commands, kept free of native imports so --help works without the addon. */
import { SAMPLERS } from '../diffusion/samplers/names.js';
import { PRESETS } from '../models/configs.js';
import { DEFAULT_TRAIN_CONFIG } from '../train/config.js';

// The 15-minute CPU default: iuvit-t/4's widths with 8x8 patches (16 tokens), ~2.5x the img/s.
export const DEFAULT_PRESET = 'iuvit-t/8';

export const TRAIN_HELP = `diffvit train [options]

Trains an IU-ViT/ASCEND diffusion model with EDM. With no options: preset ${DEFAULT_PRESET},
class-conditional, on the built-in 'shapes' data.

Options:
  --preset NAME            model preset (${Object.keys(PRESETS).join(', ')})
  --config FILE            JSON file with { model?, data?, ...training options } (flags override it)
  --data SPEC              shapes (generated in code; the default), folder:PATH (class per
                           sub-folder, PNG/JPEG; centre crop + resize), cifar10:DIR (binary
                           batches), mnist:DIR (idx files)
  --image-size N           resize folder images to N (default: the preset's size)
  --unconditional          ignore the data's labels
  --steps N                optimiser steps (default ${DEFAULT_TRAIN_CONFIG.steps})
  --batch N                batch size (default ${DEFAULT_TRAIN_CONFIG.batchSize})
  --lr X                   learning rate (default ${DEFAULT_TRAIN_CONFIG.lr})
  --warmup N               warm-up steps (default ${DEFAULT_TRAIN_CONFIG.warmupSteps})
  --ema-halflife N         EMA half-life in images (default ${DEFAULT_TRAIN_CONFIG.emaHalfLifeImages})
  --label-dropout P        label dropout for guidance (default ${DEFAULT_TRAIN_CONFIG.labelDropout})
  --seed N                 run seed (default 0)
  --precision P            matmul precision: float32, or bf16 (bfloat16 operands, fp32
                           accumulation; attention stays fp32). Default: DIFFVIT_MATMUL_PRECISION,
                           else float32; a resumed run keeps its own unless given
  --out DIR                output directory (default runs/<preset>-shapes)
  --checkpoint-every N     steps between checkpoints (default 500)
  --sample-every N         steps between sample grids (default 800; 0 = only at the end)
  --guidance W             guidance scale of the sample grids (default 2)
  --resume FILE            continue the run saved in FILE (same data order and RNG)
  -h, --help               this text`;

export const SAMPLE_HELP = `diffvit sample --checkpoint FILE [options]

Options:
  --checkpoint FILE     a diffvit (or twin-exported) checkpoint
  --out PATH            a .png grid (default samples.png) or, with --folder, a directory of PNGs
  --folder              write one PNG per image into --out
  -n, --count N         images (default 16; with --labels: one per label)
  --labels L            class labels, e.g. 0,1,2,3 or 'all' (every class, --count per class)
  --sampler NAME        ${SAMPLERS.join(' | ')} (default heun)
  --steps N             sampler steps (default 18; ddim 50)
  --guidance W          classifier-free guidance scale (default 1 = none)
  --churn S             Heun's S_churn (default 0)
  --seed N              latent seed (default 0)
  --columns N           grid columns
  -h, --help            this text`;

export const EVAL_HELP = `diffvit eval shapes --checkpoint FILE [options]
diffvit eval fid ...        (FID and KID with the FID Inception-v3: diffvit eval fid --help)

Scores class-conditional samples of a model trained on the built-in shapes data.
Options:
  --checkpoint FILE     the model to evaluate
  --per-class N         samples per class (default 64)
  --guidance W          guidance scale (default 2)
  --steps N             Heun steps (default 18)
  --real N              real images for the reference statistics (default 1000)
  --classifier FILE     classifier weights (trained and saved there if missing;
                        default ~/.cache/diffvit/shapes-classifier-v1.safetensors)
  --json                print the result as JSON
  -h, --help            this text`;
