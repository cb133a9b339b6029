/** diffvit: vision-transformer diffusion models (IU-ViT, ASCEND, EDM) for Node.js. */
export { Tensor, type DType, type Device, type Shape, type GradNode, liveTensorCount } from './tensor/tensor.js';
export { scope, keep } from './tensor/scope.js';
export { backward, noGrad, isGradEnabled, type BackwardOptions } from './tensor/autograd.js';
export { Generator, defaultGenerator, manualSeed } from './tensor/random.js';
export * from './ops/index.js';
export { runtimeInfo, memory, emptyCache, setThreads, setCpuLevel, type RuntimeInfo } from './runtime.js';
