/** Defaults shared by several commands (native-free: help texts read them). */

/** The 15-minute CPU default: iuvit-t/4's widths with 8x8 patches (16 tokens), ~2.5x the img/s. */
export const DEFAULT_PRESET = 'iuvit-xs/4';

/**
 * Classifier-free guidance scale of the commands that draw a conditional model's samples to look
 * at or to score by class (train's grids, sample, eval shapes); unconditional models ignore it.
 * 4 rather than 2: higher class accuracy and a lower Fréchet distance in each of the four
 * 15-minute runs of docs/training-notes.md §11, §12 and §15 (DiT's sampling default is 4 too).
 */
export const DEFAULT_GUIDANCE = 4;

/**
 * eval fid's guidance scale: FID rewards the diversity that strong guidance trades away (DiT
 * scores FID at 1.5); it stays at the 2 every command used before.
 */
export const DEFAULT_FID_GUIDANCE = 2;

/**
 * Minutes of a `diffvit train` run given no step count (no --steps, no steps in its config file):
 * the run is sized to them on whatever machine it runs (lib/train/step_budget.ts), since the same
 * 15 minutes hold about 8 400 default steps on an AVX512_BF16 Zen 4 and about 3 600 on an AVX2 Zen 3.
 */
export const DEFAULT_TRAIN_MINUTES = 15;

/**
 * The fraction of patch tokens a new `diffvit train` run of an IU-ViT/ASCEND without rope drops in
 * its masked steps (TrainConfig.maskRatio; U-Net and rope runs: 0): at 15 minutes it scored above the
 * unmasked run at both seeds tried, +3.9 and +6.7 points at guidance 2, from 2.2-2.4x the images
 * (docs/training-notes.md §15). The Trainer's own default (DEFAULT_TRAIN_CONFIG) stays 0.
 */
export const DEFAULT_MASK_RATIO = 0.75;
