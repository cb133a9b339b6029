// The CUDA runtime API subset the backend uses, for the emulator. Names, enum values and signatures
// follow the CUDA 13 headers (driver_types.h, cuda_runtime_api.h, cuda_runtime.h) so that host code
// is portable between the two builds. Implemented in runtime.cpp (errors, device, memory) and
// streams.cpp (streams, events, graphs, capture).
// (Part of cuda_emu.h, which includes it; include that.)
#pragma once
#include <cstddef>

// Every cudaError value of CUDA 13, for the enum and for cudaGetErrorName.
#define DV_EMU_CUDA_ERRORS(X) \
  X(cudaSuccess, 0) \
  X(cudaErrorInvalidValue, 1) \
  X(cudaErrorMemoryAllocation, 2) \
  X(cudaErrorInitializationError, 3) \
  X(cudaErrorCudartUnloading, 4) \
  X(cudaErrorProfilerDisabled, 5) \
  X(cudaErrorProfilerNotInitialized, 6) \
  X(cudaErrorProfilerAlreadyStarted, 7) \
  X(cudaErrorProfilerAlreadyStopped, 8) \
  X(cudaErrorInvalidConfiguration, 9) \
  X(cudaErrorInvalidPitchValue, 12) \
  X(cudaErrorInvalidSymbol, 13) \
  X(cudaErrorInvalidHostPointer, 16) \
  X(cudaErrorInvalidDevicePointer, 17) \
  X(cudaErrorInvalidTexture, 18) \
  X(cudaErrorInvalidTextureBinding, 19) \
  X(cudaErrorInvalidChannelDescriptor, 20) \
  X(cudaErrorInvalidMemcpyDirection, 21) \
  X(cudaErrorAddressOfConstant, 22) \
  X(cudaErrorTextureFetchFailed, 23) \
  X(cudaErrorTextureNotBound, 24) \
  X(cudaErrorSynchronizationError, 25) \
  X(cudaErrorInvalidFilterSetting, 26) \
  X(cudaErrorInvalidNormSetting, 27) \
  X(cudaErrorMixedDeviceExecution, 28) \
  X(cudaErrorNotYetImplemented, 31) \
  X(cudaErrorMemoryValueTooLarge, 32) \
  X(cudaErrorStubLibrary, 34) \
  X(cudaErrorInsufficientDriver, 35) \
  X(cudaErrorCallRequiresNewerDriver, 36) \
  X(cudaErrorInvalidSurface, 37) \
  X(cudaErrorDuplicateVariableName, 43) \
  X(cudaErrorDuplicateTextureName, 44) \
  X(cudaErrorDuplicateSurfaceName, 45) \
  X(cudaErrorDevicesUnavailable, 46) \
  X(cudaErrorIncompatibleDriverContext, 49) \
  X(cudaErrorMissingConfiguration, 52) \
  X(cudaErrorPriorLaunchFailure, 53) \
  X(cudaErrorLaunchMaxDepthExceeded, 65) \
  X(cudaErrorLaunchFileScopedTex, 66) \
  X(cudaErrorLaunchFileScopedSurf, 67) \
  X(cudaErrorSyncDepthExceeded, 68) \
  X(cudaErrorLaunchPendingCountExceeded, 69) \
  X(cudaErrorInvalidDeviceFunction, 98) \
  X(cudaErrorNoDevice, 100) \
  X(cudaErrorInvalidDevice, 101) \
  X(cudaErrorDeviceNotLicensed, 102) \
  X(cudaErrorSoftwareValidityNotEstablished, 103) \
  X(cudaErrorStartupFailure, 127) \
  X(cudaErrorInvalidKernelImage, 200) \
  X(cudaErrorDeviceUninitialized, 201) \
  X(cudaErrorMapBufferObjectFailed, 205) \
  X(cudaErrorUnmapBufferObjectFailed, 206) \
  X(cudaErrorArrayIsMapped, 207) \
  X(cudaErrorAlreadyMapped, 208) \
  X(cudaErrorNoKernelImageForDevice, 209) \
  X(cudaErrorAlreadyAcquired, 210) \
  X(cudaErrorNotMapped, 211) \
  X(cudaErrorNotMappedAsArray, 212) \
  X(cudaErrorNotMappedAsPointer, 213) \
  X(cudaErrorECCUncorrectable, 214) \
  X(cudaErrorUnsupportedLimit, 215) \
  X(cudaErrorDeviceAlreadyInUse, 216) \
  X(cudaErrorPeerAccessUnsupported, 217) \
  X(cudaErrorInvalidPtx, 218) \
  X(cudaErrorInvalidGraphicsContext, 219) \
  X(cudaErrorNvlinkUncorrectable, 220) \
  X(cudaErrorJitCompilerNotFound, 221) \
  X(cudaErrorUnsupportedPtxVersion, 222) \
  X(cudaErrorJitCompilationDisabled, 223) \
  X(cudaErrorUnsupportedExecAffinity, 224) \
  X(cudaErrorUnsupportedDevSideSync, 225) \
  X(cudaErrorContained, 226) \
  X(cudaErrorInvalidSource, 300) \
  X(cudaErrorFileNotFound, 301) \
  X(cudaErrorSharedObjectSymbolNotFound, 302) \
  X(cudaErrorSharedObjectInitFailed, 303) \
  X(cudaErrorOperatingSystem, 304) \
  X(cudaErrorInvalidResourceHandle, 400) \
  X(cudaErrorIllegalState, 401) \
  X(cudaErrorLossyQuery, 402) \
  X(cudaErrorSymbolNotFound, 500) \
  X(cudaErrorNotReady, 600) \
  X(cudaErrorIllegalAddress, 700) \
  X(cudaErrorLaunchOutOfResources, 701) \
  X(cudaErrorLaunchTimeout, 702) \
  X(cudaErrorLaunchIncompatibleTexturing, 703) \
  X(cudaErrorPeerAccessAlreadyEnabled, 704) \
  X(cudaErrorPeerAccessNotEnabled, 705) \
  X(cudaErrorSetOnActiveProcess, 708) \
  X(cudaErrorContextIsDestroyed, 709) \
  X(cudaErrorAssert, 710) \
  X(cudaErrorTooManyPeers, 711) \
  X(cudaErrorHostMemoryAlreadyRegistered, 712) \
  X(cudaErrorHostMemoryNotRegistered, 713) \
  X(cudaErrorHardwareStackError, 714) \
  X(cudaErrorIllegalInstruction, 715) \
  X(cudaErrorMisalignedAddress, 716) \
  X(cudaErrorInvalidAddressSpace, 717) \
  X(cudaErrorInvalidPc, 718) \
  X(cudaErrorLaunchFailure, 719) \
  X(cudaErrorCooperativeLaunchTooLarge, 720) \
  X(cudaErrorTensorMemoryLeak, 721) \
  X(cudaErrorNotPermitted, 800) \
  X(cudaErrorNotSupported, 801) \
  X(cudaErrorSystemNotReady, 802) \
  X(cudaErrorSystemDriverMismatch, 803) \
  X(cudaErrorCompatNotSupportedOnDevice, 804) \
  X(cudaErrorMpsConnectionFailed, 805) \
  X(cudaErrorMpsRpcFailure, 806) \
  X(cudaErrorMpsServerNotReady, 807) \
  X(cudaErrorMpsMaxClientsReached, 808) \
  X(cudaErrorMpsMaxConnectionsReached, 809) \
  X(cudaErrorMpsClientTerminated, 810) \
  X(cudaErrorCdpNotSupported, 811) \
  X(cudaErrorCdpVersionMismatch, 812) \
  X(cudaErrorStreamCaptureUnsupported, 900) \
  X(cudaErrorStreamCaptureInvalidated, 901) \
  X(cudaErrorStreamCaptureMerge, 902) \
  X(cudaErrorStreamCaptureUnmatched, 903) \
  X(cudaErrorStreamCaptureUnjoined, 904) \
  X(cudaErrorStreamCaptureIsolation, 905) \
  X(cudaErrorStreamCaptureImplicit, 906) \
  X(cudaErrorCapturedEvent, 907) \
  X(cudaErrorStreamCaptureWrongThread, 908) \
  X(cudaErrorTimeout, 909) \
  X(cudaErrorGraphExecUpdateFailure, 910) \
  X(cudaErrorExternalDevice, 911) \
  X(cudaErrorInvalidClusterSize, 912) \
  X(cudaErrorFunctionNotLoaded, 913) \
  X(cudaErrorInvalidResourceType, 914) \
  X(cudaErrorInvalidResourceConfiguration, 915) \
  X(cudaErrorUnknown, 999) \
  X(cudaErrorApiFailureBase, 10000)

enum cudaError {
#define DV_EMU_ENUM_ITEM(name, value) name = value,
  DV_EMU_CUDA_ERRORS(DV_EMU_ENUM_ITEM)
#undef DV_EMU_ENUM_ITEM
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};

enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};

enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
  cudaFuncAttributeClusterDimMustBeSet = 10,
  cudaFuncAttributeRequiredClusterWidth = 11,
  cudaFuncAttributeRequiredClusterHeight = 12,
  cudaFuncAttributeRequiredClusterDepth = 13,
  cudaFuncAttributeNonPortableClusterSizeAllowed = 14,
  cudaFuncAttributeClusterSchedulingPolicyPreference = 15,
  cudaFuncAttributeMax
};

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
typedef struct CUgraph_st* cudaGraph_t;
typedef struct CUgraphNode_st* cudaGraphNode_t;
typedef struct CUgraphExec_st* cudaGraphExec_t;

#define cudaHostAllocDefault 0x00
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaEventInterprocess 0x04
#define cudaGraphInstantiateFlagAutoFreeOnLaunch 1

// The emulator's own device description: the fields have CUDA's names and types, but the struct is
// not layout-compatible with the real one (code only reads fields).
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  size_t memPitch;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  size_t totalConstMem;
  int major;
  int minor;
  int multiProcessorCount;
  int integrated;
  int canMapHostMemory;
  int concurrentKernels;
  int ECCEnabled;
  int pciBusID;
  int pciDeviceID;
  int pciDomainID;
  int asyncEngineCount;
  int unifiedAddressing;
  int memoryBusWidth;
  int l2CacheSize;
  int persistingL2CacheMaxSize;
  int maxThreadsPerMultiProcessor;
  size_t sharedMemPerMultiprocessor;
  int regsPerMultiprocessor;
  int managedMemory;
  int cooperativeLaunch;
  size_t sharedMemPerBlockOptin;
  int maxBlocksPerMultiProcessor;
  size_t reservedSharedMemPerBlock;
};

extern "C" {
// Errors. The "last error" is per host thread and not sticky (nothing in the emulator is).
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);

// Device: exactly one, device 0.
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device);
cudaError_t cudaDriverGetVersion(int* driverVersion);
cudaError_t cudaRuntimeGetVersion(int* runtimeVersion);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);

// Memory: device memory is host memory, counted against the emulated capacity.
cudaError_t cudaMalloc(void** devPtr, size_t size);
cudaError_t cudaFree(void* devPtr);
cudaError_t cudaMallocHost(void** ptr, size_t size);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemset(void* devPtr, int value, size_t count);
cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream = 0);

// Streams and events. Work runs when it is issued, so every stream is always idle.
cudaError_t cudaStreamCreate(cudaStream_t* pStream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);

// Kernel attributes: only the dynamic shared memory limit is enforced.
cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value);

// Stream capture and graphs: a graph is the list of captured operations, replayed in order.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* pCaptureStatus);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* pGraphExec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* numNodes);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec);
}  // extern "C"

// The C++ overload of cuda_runtime.h, taking the kernel itself.
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* func, enum cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}
