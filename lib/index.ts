/** diffvit: vision-transformer diffusion models (IU-ViT, ASCEND, EDM) for Node.js. */
export { Tensor, type DType, type Device, type Shape, type GradNode, liveTensorCount } from './tensor/tensor.js';
export { scope, keep } from './tensor/scope.js';
export { noGrad, isGradEnabled } from './tensor/autograd.js';
export { backward, type BackwardOptions } from './ops/backward.js';
export { Generator, defaultGenerator, manualSeed } from './tensor/random.js';
export * from './ops/index.js';
export { runtimeInfo, memory, emptyCache, synchronize, setThreads, setCpuLevel, type RuntimeInfo } from './runtime.js';
export { autocast, matmulPrecision, setMatmulPrecision, getMatmulPrecision, type MatmulPrecision } from './tensor/autocast.js';
export { registerBackend, removeBackend, registeredBackends, resolveDevice, type Backend, type MemoryStats } from './backend/index.js';
export { Module, ModuleList } from './nn/module.js';
export { Linear, LayerNorm, Conv2d, Embedding } from './nn/layers.js';
export { Attention } from './nn/attention.js';
export { rope2dTables } from './nn/rope.js';
export { RopeTables, type RopeAngles } from './nn/rope_tables.js';
export { Mlp } from './nn/mlp.js';
export { Block, FinalLayer, type BlockOptions } from './nn/block.js';
export { TimestepEmbed, edmPositionalEmbedding } from './nn/timestep.js';
export { DiffusionViT, IUViT, type ModelOptions } from './models/diffusion_vit.js';
export { UNet } from './models/unet.js';
export { drawTokenMask, dropTokens, restoreTokens, keptPatches, keptTokens, disposeTokenMask, type TokenMask } from './models/token_mask.js';
export { PRESETS, fullConfig, type ModelConfig, type FullModelConfig, type FullViTConfig, type FullUNetConfig } from './models/configs.js';
export { loadCheckpoint, saveCheckpoint, type LoadedCheckpoint, type LoadCheckpointOptions } from './models/checkpoint.js';
export { exportWeights, type ExportWeightsOptions, type ExportedWeights } from './models/export.js';
export { readSafetensors, writeSafetensors, type SafetensorsFile } from './models/safetensors.js';
export { readSafetensorsHeader, readSafetensorsFloats, type SafetensorsHeader, type SafetensorsEntry } from './models/safetensors_header.js';
export { EDMDenoiser, edmLoss, edmNoisedLoss, learnedWeightingLoss, preconditioning, sampleTrainingSigmas, SIGMA_DATA } from './diffusion/edm.js';
export { generate, SAMPLERS, type SamplerName, type GenerateOptions } from './diffusion/sample.js';
export { GuidedNetwork, type Conditioning } from './diffusion/guidance.js';
export { edmSigmas } from './diffusion/samplers/common.js';
export { Trainer, DEFAULT_TRAIN_CONFIG, type TrainConfig, type StepResult } from './train/trainer.js';
export { StepBudget, RESIZE_EVERY } from './train/step_budget.js';
// Servers: sampling and training on a worker thread, off the event loop (lib/async).
export { generateAsync, SamplingWorker, type AsyncGenerateOptions, type GenerateAsyncOptions, type SamplingWorkerOptions } from './async/sampler.js';
export { TrainerWorker } from './async/trainer.js';
export { AdamW, type AdamWOptions as AdamWConfig } from './train/optim.js';
export { EMA } from './train/ema.js';
export { ShapesDataset, createDataset, type ImageDataset, type DatasetSpec, type Example } from './data/dataset.js';
export { ImageFolderDataset } from './data/image_folder.js';
export { Cifar10Dataset } from './data/cifar10.js';
export { MnistDataset } from './data/mnist.js';
export { CachedDataset, writeDatasetCache, quantise, dequantise, type CacheHeader, type WriteCacheOptions } from './data/cache.js';
export { CaptionDataset, type CaptionRecord } from './data/captions.js';
export { writeShapeCaptions, shapeCaptionExample, sampleShapeCaptions, CAPTION_COLOURS, type ShapeCaptionOptions } from './data/caption_shapes.js';
export { HashTextEmbedder, tokenizeCaption, HASH_EMBEDDER_ID } from './text/embedder.js';
export { BatchSampler, type Batch, type LoaderOptions } from './data/loader.js';
export { PrefetchLoader } from './data/prefetch.js';
export { featureStats, frechetDistance, kernelDistance, type FeatureStats } from './eval/frechet.js';
export { imageGridPNG } from './image/grid.js';
export { encodePNG } from './image/png.js';
export { decodeImage, type RGBImage } from './image/decode.js';
// The profiler: dv.profile(fn) -> { result, report } (report.table(), report.writeChromeTrace(path)),
// and dv.profiler.range(name, fn) for NVTX/trace ranges in your own code (lib/profiler).
export * as profiler from './profiler/index.js';
// The CUDA device and CUDA graphs: dv.cuda.isAvailable(), dv.cuda.info(), dv.cuda.graph(fn) (lib/cuda.ts).
export * as cuda from './cuda.js';
export { profile, Profiler, ProfileReport, type ProfileOptions, type ProfileResult, type KernelStats, type RangeStats, type GroupBy, type ChromeTrace } from './profiler/index.js';
