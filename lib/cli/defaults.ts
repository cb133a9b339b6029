/** Defaults shared by several commands (native-free: help texts read them). */

/** The 15-minute CPU default: iuvit-t/4's widths with 8x8 patches (16 tokens), ~2.5x the img/s. */
export const DEFAULT_PRESET = 'iuvit-xs/4';

/**
 * Classifier-free guidance scale of every command that samples a conditional model (train's
 * grids, sample, eval shapes, eval fid); unconditional models ignore it.
 */
export const DEFAULT_GUIDANCE = 2;
