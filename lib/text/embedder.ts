/**
 * A small deterministic text embedder: a STAND-IN for a real text encoder (CLIP, T5), shipped so
 * the text-to-image path — caption data, context tokens, context dropout, classifier-free guidance
 * with the empty context — runs end to end without downloading anything.
 *
 *   caption -> lowercase words ([a-z0-9']+) -> the first L words -> token t = v(word_t) + pe(t)
 *
 * v(word) is a fixed pseudo-random vector of width C with N(0, 1) entries, drawn from a DataRng
 * stream keyed by (seed, FNV-1a hash of the word); pe(t) is the Transformer's sinusoidal position
 * signal. Positions past the caption's last word are zeros, so the empty caption embeds to the
 * all-zero context — exactly the null the trainer's context dropout and the sampler's guidance use.
 *
 * It knows no meaning: "crimson" and "red" are unrelated vectors. A model trained on its
 * embeddings can only follow captions built from the words it was trained on. For real captions,
 * embed them with a real encoder and write the index (examples/text-to-image/README.md).
 * Pure JS (no addon), so it runs on loader threads too.
 */
import { DataRng } from '../data/rng.js';

/** Version tag written into embedding files, so data and sampling can agree on the embedder. */
export const HASH_EMBEDDER_ID = 'diffvit-hash-words-v1';

/** FNV-1a over the UTF-16 code units of s (32-bit). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Lowercase words of a caption (letters, digits, apostrophes); punctuation separates. */
export function tokenizeCaption(caption: string): string[] {
  return caption.toLowerCase().match(/[a-z0-9']+/g) ?? [];
}

export class HashTextEmbedder {
  private readonly vectors = new Map<string, Float32Array>();

  constructor(
    /** L: tokens per caption (longer captions are truncated, shorter ones padded with zeros). */
    readonly contextLen: number,
    /** C: features per token. */
    readonly contextDim: number,
    /** Selects another fixed set of word vectors. */
    readonly seed = 0,
  ) {
    if (!Number.isInteger(contextLen) || contextLen < 1) throw new Error(`diffvit.HashTextEmbedder: argument 'contextLen' expected an integer >= 1, received ${contextLen}`);
    if (!Number.isInteger(contextDim) || contextDim < 2) throw new Error(`diffvit.HashTextEmbedder: argument 'contextDim' expected an integer >= 2, received ${contextDim}`);
  }

  /** v(word): C standard normal values (Box–Muller over the word's DataRng stream). */
  wordVector(word: string): Float32Array {
    let v = this.vectors.get(word);
    if (!v) {
      const rng = new DataRng(this.seed ^ 0x7e47, fnv1a(word));
      v = new Float32Array(this.contextDim);
      for (let i = 0; i < this.contextDim; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - rng.next())), a = 2 * Math.PI * rng.next();
        v[i] = r * Math.cos(a);
        if (i + 1 < this.contextDim) v[i + 1] = r * Math.sin(a);
      }
      this.vectors.set(word, v);
    }
    return v;
  }

  /** One caption as an (L, C) context, row-major. */
  embed(caption: string): Float32Array {
    const L = this.contextLen, C = this.contextDim;
    const out = new Float32Array(L * C);
    tokenizeCaption(caption).slice(0, L).forEach((word, t) => {
      const v = this.wordVector(word);
      for (let i = 0; i < C; i++) {
        // pe(t): sin for even features, cos for odd, frequencies 10000^(-2k/C) (Vaswani et al. 2017)
        const freq = 10000 ** (-(2 * Math.floor(i / 2)) / C);
        out[t * C + i] = v[i] + (i % 2 ? Math.cos(t * freq) : Math.sin(t * freq));
      }
    });
    return out;
  }

  /** Captions as a (B, L, C) batch, row-major. */
  embedBatch(captions: readonly string[]): Float32Array {
    const n = this.contextLen * this.contextDim;
    const out = new Float32Array(captions.length * n);
    captions.forEach((c, b) => out.set(this.embed(c), b * n));
    return out;
  }
}
