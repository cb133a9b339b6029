/** Every op, re-exported; importing this also attaches the chainable Tensor methods. */
export * from './creation.js';
export * from './elementwise.js';
export * from './matmul.js';
export * from './norm.js';
export * from './group_norm.js';
export * from './upsample.js';
export * from './fused.js';
export * from './conv.js';
export * from './embedding.js';
export * from './optim.js';
export * from './attention.js';
export * from './rope.js';
export * from './pool.js';
export * from './reduce.js';
export * from './shape.js';
export * from './inplace.js';
export * from './device.js';
import './chain.js';
