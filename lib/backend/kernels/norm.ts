/** Native entry points of the norm kernel family (native/addon/bind_norm.cpp). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface NormKernels {}
