/** Native entry points of the conv kernel family (native/addon/bind_conv.cpp). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ConvKernels {}
