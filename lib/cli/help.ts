/** Help texts of the heavier commands, kept free of native imports so --help works without the addon. */
import { SAMPLERS } from '../diffusion/samplers/names.js';
import { PRESETS } from '../models/configs.js';
import { DEFAULT_TRAIN_CONFIG } from '../train/config.js';
import { COOLDOWN_FRACTION } from '../train/schedule.js';
import { RESIZE_EVERY } from '../train/step_budget.js';
import { DEFAULT_GUIDANCE, DEFAULT_MASK_RATIO, DEFAULT_PRESET, DEFAULT_TRAIN_MINUTES } from './defaults.js';

export const TRAIN_HELP = `diffvit train [options]

Trains an IU-ViT/ASCEND diffusion model with EDM. With no options: preset ${DEFAULT_PRESET},
class-conditional, on the built-in 'shapes' data.

Options:
  --preset NAME            model preset (${Object.keys(PRESETS).join(', ')}) (default ${DEFAULT_PRESET})
  --config FILE            JSON file with { model?, data?, ...training options } (flags override it);
                           a model there without num_classes (or context_dim) takes the data's
  --data SPEC              the training data (default shapes): shapes (generated in code),
                           folder:PATH (class per sub-folder, PNG/JPEG; centre crop + resize),
                           cifar10:DIR (binary batches), mnist:DIR (idx files), cache:FILE (made
                           by diffvit prepare; memory-mapped, no decoding per epoch),
                           captions:INDEX.jsonl (images + text embeddings: a text-to-image model;
                           see diffvit make-captions)
  --image-size N           resize folder images to N (default: the preset's size)
  --unconditional          ignore the data's labels (and captions)
  --steps N                optimiser steps (default: as many as fit --minutes; a config
                           file's steps)
  --minutes M              without --steps (or a config file's steps): size the run to M
                           minutes of wall time on this machine (default ${DEFAULT_TRAIN_MINUTES}): the step
                           count is re-estimated from the run's own rate every ${RESIZE_EVERY} steps
                           to the end (a cosine decay: until half of it; a cooldown that has
                           begun keeps its first step), the sample grids and checkpoints timed
                           apart; config.json and the checkpoints keep the count
  --batch N                batch size (default ${DEFAULT_TRAIN_CONFIG.batchSize})
  --lr X                   learning rate (default ${DEFAULT_TRAIN_CONFIG.lr})
  --lr-schedule S          after the warm-up: constant (EDM), cosine (to 0 at the last
                           step) or cooldown (constant, then linear to 0 over the last
                           ${100 * COOLDOWN_FRACTION} % of the steps) (default ${DEFAULT_TRAIN_CONFIG.lrSchedule})
  --warmup N               warm-up steps (default ${DEFAULT_TRAIN_CONFIG.warmupSteps})
  --ema-halflife N         EMA half-life in images (default ${DEFAULT_TRAIN_CONFIG.emaHalfLifeImages})
  --ema-rampup R           the EMA half-life is at most R x images seen (default ${DEFAULT_TRAIN_CONFIG.emaRampup}; EDM: 0.05)
  --label-dropout P        label/caption dropout for guidance: the null label and the empty
                           (all-zero) context (default ${DEFAULT_TRAIN_CONFIG.labelDropout})
  --seed N                 run seed (default ${DEFAULT_TRAIN_CONFIG.seed})
  --mask-ratio R           masked-token training (IU-ViT/ASCEND without rope): each step drops
                           this fraction of every image's patch tokens at random, the blocks
                           see the rest and the loss covers the kept patches (a step costs
                           about 1 - R of a full one; 0 trains on every token) (default:
                           ${DEFAULT_MASK_RATIO} for a new IU-ViT/ASCEND run without rope, else 0)
  --mask-until F           mask only the first F of the run's steps; the rest see every token,
                           as sampling does (default ${DEFAULT_TRAIN_CONFIG.maskUntil})
  --model-guidance W       model guidance (Tang et al. 2025; class-conditional models): a
                           labelled image's target becomes y + W (D(x; c) - D(x; null)), so the
                           network learns guidance of scale 1/(1 - W) itself (W ramps in over
                           the first quarter; a step does one more forward pass) (default ${DEFAULT_TRAIN_CONFIG.modelGuidance})
  --precision P            matmul precision: float32, or bf16 (bfloat16 operands, fp32
                           accumulation; attention stays fp32). Default: DIFFVIT_MATMUL_PRECISION,
                           else bf16 where the CPU has AMX or AVX512_BF16, else float32; a resumed run
                           keeps its own unless given
  --device D               where the run executes: cpu (default), cuda or cuda:N (diffvit info
                           lists this build's devices). The model, the optimiser state and the
                           EMA live there; each step writes its batch there once and reads back
                           the loss and gradient norm once. Not stored in checkpoints: a resumed
                           run executes where its --device says
  --cuda-graph             with --device cuda: capture the whole training step (forward, loss,
                           backward, clipping, AdamW, EMA) in a CUDA graph at the first step and
                           replay it every step (the step's EDM noise is drawn eagerly into the
                           captured inputs first, since a graph freezes seeds)
  --out DIR                the run's folder (default: runs/<preset>-<data kind>, the preset's '/'
                           as '_', e.g. runs/iuvit-xs_4-shapes, or runs/<config file name>-<data
                           kind> for a model from --config; -2, -3, ... appended while that
                           folder holds files; with --resume: the checkpoint's own folder). A
                           folder that holds files is refused unless --overwrite is given.
                           Nothing is written before the first step succeeds; then the folder
                           gets config.json (the run's full config), metrics.jsonl, loss.svg,
                           samples/ and checkpoint.safetensors
  --overwrite              replace the run in --out (its checkpoint, metrics, samples, config)
  --checkpoint-every N     steps between checkpoints (default 500)
  --sample-every N         steps between sample grids (default 800; 0 = only at the end)
  --no-samples             no sample grids at all (large models on a CPU)
  --guidance W             guidance scale of the sample grids (default ${DEFAULT_GUIDANCE})
  --resume FILE            continue the run saved in FILE (same data order and RNG) in FILE's
                           folder, up to --steps (which may be raised); its model and data stay
  --profile [FILE]         profile steps 3-12 of the run (steps 1-2 warm up; a run of 1-2 steps
                           is profiled whole) with the built-in profiler: a table of kernel and
                           phase times at the end, and a Chrome trace (chrome://tracing,
                           Perfetto) in FILE (default <out>/profile.trace.json). Under nsys
                           the same phases are NVTX ranges: docs/profiling.md
  -h, --help               this text`;

export const SAMPLE_HELP = `diffvit sample --checkpoint FILE [options]

Options:
  --checkpoint FILE     a diffvit (or twin-exported) checkpoint
  --out PATH            a .png grid (default samples.png) or, with --folder, a directory of PNGs
  --folder              write one PNG per image into --out
  -n, --count N         images (default 16; with --labels: one per label; with --captions or
                        --context: images per caption, default 1)
  --labels L            class labels, e.g. 0,1,2,3 or 'all' (every class, --count per class)
  --captions FILE       text-to-image: one caption per line (blank lines skipped), embedded by
                        the built-in hash text embedder (for models trained on data written by
                        diffvit make-captions); with -n > 1 one grid row per caption
  --context FILE        text-to-image: your own embeddings, a safetensors file with a float
                        tensor 'context' (or its only tensor) of shape (B, L, C) or (L, C)
  --sampler NAME        ${SAMPLERS.join(' | ')} (default heun)
  --steps N             sampler steps (default 18; ddim 50)
  --guidance W          classifier-free guidance scale (default ${DEFAULT_GUIDANCE}; 1 = none); the
                        unconditional half uses the null label and the empty (all-zero) context
  --guidance-interval LO,HI
                        guide only at noise levels LO < sigma <= HI, e.g. 1,inf (default:
                        every level; outside it one conditional pass per step, half the cost)
  --guide FILE          autoguidance (Karras et al. 2024): guide away from this weaker checkpoint
                        of the same kind (e.g. one of the same run, taken earlier) with the same
                        labels, instead of from the unconditional model; --guidance W scales it
  --churn S             Heun's S_churn (default 0)
  --seed N              latent seed (default 0)
  --device D            where the sampling runs: cpu (default), cuda or cuda:N (the model is
                        loaded there; the images come back to the host once, at the end)
  --batch N             images per sampling batch (default: all in one; the latents do not
                        depend on it)
  --cuda-graph          with --device cuda: sample the first batch eagerly, capture its whole
                        sampling loop in a CUDA graph and replay it for every further batch of
                        --batch images (new noise and labels written into the captured inputs);
                        deterministic samplers only (--churn 0)
  --columns N           grid columns
  --profile [FILE]      profile the sampling with the built-in profiler: a table of kernel and
                        step times, and a Chrome trace (chrome://tracing, Perfetto) in FILE
                        (default: beside --out, samples.png -> samples.trace.json; with
                        --folder, <out>/profile.trace.json)
  -h, --help            this text`;

export const MAKE_CAPTIONS_HELP = `diffvit make-captions --out DIR [options]

Writes a synthetic text-to-image dataset: coloured shapes (circle, square, triangle, cross in
red, green, blue, yellow, white, black) with template captions ("a red circle on a blue
background") embedded by the built-in deterministic hash text embedder — a stand-in for a real
text encoder, so the text-to-image path runs without downloading one. Layout:
DIR/images/NNNNNN.png, DIR/embeddings.safetensors (tensor 'context', (N, L, C) float32),
DIR/index.jsonl (train with --data captions:DIR/index.jsonl), DIR/sample-captions.txt.

Options:
  --out DIR             output folder (required)
  -n, --count N         images (default 2000)
  --size S              image side in pixels (default 32)
  --context-len L       tokens per caption (default 8)
  --context-dim C       features per token (default 32)
  --seed N              data seed (default 0)
  -h, --help            this text`;

export const EVAL_HELP = `diffvit eval shapes --checkpoint FILE [options]
diffvit eval fid ...        (FID and KID with the FID Inception-v3: diffvit eval fid --help)

Scores class-conditional samples of a model trained on the built-in shapes data.
Options:
  --checkpoint FILE     the model to evaluate
  --per-class N         samples per class (default 64)
  --guidance W          guidance scale (default ${DEFAULT_GUIDANCE}; 1 = none)
  --guidance-interval LO,HI
                        guide only at noise levels LO < sigma <= HI (default: every level)
  --guide FILE          autoguidance: guide away from this weaker checkpoint instead of from
                        the unconditional model (see diffvit sample --help)
  --sampler NAME        ${SAMPLERS.join(' | ')} (default heun)
  --steps N             sampler steps (default 18; ddim 50)
  --churn S             Heun's S_churn: noise added back per step (default 0: deterministic)
  --real N              real images for the reference statistics (default 1000)
  --classifier FILE     classifier weights (trained and saved there if missing;
                        default ~/.cache/diffvit/shapes-classifier-v2.safetensors)
  --device D            where the sampling runs: cpu (default), cuda or cuda:N (the small
                        classifier stays on the host)
  --json                print the result as JSON
  -h, --help            this text`;

export const PREPARE_HELP = `diffvit prepare --data SPEC --out FILE [options]

Preprocesses a dataset once into a cache file: every image decoded, centre-cropped and resized,
stored as uint8 pixels (N, C, H, W) with int32 labels behind a small JSON header. Training
memory-maps it (diffvit train --data cache:FILE), so epochs do not decode images again and the
loader reads only the pages it needs. Pixels x in [-1, 1] are stored as round((x + 1) * 127.5):
data from 8-bit images comes back exactly. The file is written under a temporary name and
renamed when complete.

Options:
  --data SPEC           folder:PATH (class per sub-folder, or images at the top level =
                        unlabelled; e.g. the CIFAR-10 JPEG tar's test/, CUB's images/,
                        CelebA's img_align_celeba/), cifar10:DIR (binary batches), mnist:DIR,
                        shapes
  --out FILE            the cache file to write (e.g. cifar10-32.dvcache)
  --image-size N        folder: centre crop resized to N (required); mnist: pad to N (default 32)
  --split train|test    cifar10: and mnist: split (default train)
  --unlabelled          store no labels (numClasses 0), e.g. for an LSUN export's hashed folders
  -h, --help            this text`;

export const INFO_HELP = `diffvit info [--json]

Prints what the native addon was built with and what it is doing: diffvit and Node.js versions,
the CPU's features and the kernel level they dispatch to, the thread count, the matmul precision
'diffvit train' would run at, whether a CUDA backend was built (and why not), and the build flags.

Options:
  --json      print one JSON object instead of text
  -h, --help  show this help

Environment:
  DIFFVIT_THREADS   number of CPU threads (default: one per logical core)
  DIFFVIT_CPU       force a lower kernel level: avx512, avx2 or scalar
  DIFFVIT_ADDON     path of another diffvit.node build to load
  DIFFVIT_MATMUL_PRECISION
                    float32 or bf16: the matmul precision outside autocast scopes, and the
                    one 'diffvit train' runs at without --precision
  DIFFVIT_DEBUG     1: print the stack trace of an error (any command)`;

export const BENCH_HELP = `diffvit bench [gemm|attention|fused|random|optim|model|train-step|all ...] [--out file.json]

Runs the named benchmarks (default: all), prints one table (bench, case, value, baseline, ratio)
and writes the rows with a description of the machine to bench/results/<name>-<date>.json.

Options:
  --out FILE       write the JSON report here instead
  -h, --help       show this help`;

export const EXPORT_HELP = `diffvit export --checkpoint FILE --out FILE.safetensors [--ema | --raw]

Writes a weights-only safetensors file from a checkpoint: the model's parameters under the PyTorch
twin's names with the model config in __metadata__ (what 'diffvit sample', loadCheckpoint and the
twin load), without the optimiser state — a training checkpoint is 16 bytes a parameter, the export
4. Tensors are copied one at a time, so checkpoints of any size export in bounded memory.

Options:
  --checkpoint FILE     a diffvit checkpoint (a run's checkpoint.safetensors)
  --out FILE            the .safetensors file to write (written under a temporary name, then renamed)
  --ema                 the EMA weights (the default: what sampling uses)
  --raw                 the raw weights the optimiser updates
  --force               replace --out when it exists
  -h, --help            this text`;
