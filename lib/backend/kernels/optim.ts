/** Native entry points of the optim kernel family (native/addon/bind_optim.cpp). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface OptimKernels {}
