/**
 * Native entry points of the attention kernel family (native/addon/bind_attention.cpp,
 * native/cpu/simd/attention.cpp).
 *
 * Each (B, H, N, D) operand is passed as (buffer, offset, strides) with strides = [batch, head,
 * token] in elements; the head dim has stride 1. Input strides may be 0 (e.g. keys shared by every
 * head); outputs must not overlap themselves. 1 <= D <= 256, Nk >= 1.
 */
import type { DeviceBuffer } from './core.js';
import type { MatmulPrecision } from './gemm.js';

/** Element strides of the batch, head and token dims of a (B, H, N, D) view. */
export type AttentionStrides = [number, number, number];

export interface AttentionKernels {
  /**
   * out = softmax(q kᵀ · scale) v for every (batch, head), computed blockwise with an online
   * softmax (nothing N×N is stored). lse (B, H, Nq), contiguous, receives each query row's
   * log-sum-exp of q kᵀ · scale for the backward; pass null to skip it.
   */
  attentionForward(args: {
    q: DeviceBuffer; qOffset: number; qStrides: AttentionStrides; k: DeviceBuffer; kOffset: number;
    kStrides: AttentionStrides; v: DeviceBuffer; vOffset: number; vStrides: AttentionStrides;
    out: DeviceBuffer; outOffset: number; outStrides: AttentionStrides; lse: DeviceBuffer | null;
    lseOffset: number; batch: number; heads: number; nq: number; nk: number; d: number; scale: number;
    /** 'bf16': the CUDA backend multiplies on tensor cores (bf16 operands, fp32 accumulation); the CPU always computes in fp32. */
    precision: MatmulPrecision;
  }): void;

  /**
   * FlashAttention-2 backward: overwrites dq, dk, dv with the gradients of sum(dout ∘ out), where
   * out and lse are what attentionForward produced for the same q, k, v and scale. Deterministic:
   * the result does not depend on the thread count.
   */
  attentionBackward(args: {
    q: DeviceBuffer; qOffset: number; qStrides: AttentionStrides; k: DeviceBuffer; kOffset: number;
    kStrides: AttentionStrides; v: DeviceBuffer; vOffset: number; vStrides: AttentionStrides;
    out: DeviceBuffer; outOffset: number; outStrides: AttentionStrides; dout: DeviceBuffer; doutOffset: number;
    doutStrides: AttentionStrides; lse: DeviceBuffer; lseOffset: number; dq: DeviceBuffer; dqOffset: number;
    dqStrides: AttentionStrides; dk: DeviceBuffer; dkOffset: number; dkStrides: AttentionStrides;
    dv: DeviceBuffer; dvOffset: number; dvStrides: AttentionStrides; batch: number; heads: number; nq: number;
    nk: number; d: number; scale: number; precision: MatmulPrecision;
  }): void;
}
