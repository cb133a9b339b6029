/** Native entry points of the gemm kernel family (native/addon/bind_gemm.cpp). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface GemmKernels {}
