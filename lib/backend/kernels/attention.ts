/** Native entry points of the attention kernel family (native/addon/bind_attention.cpp). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AttentionKernels {}
