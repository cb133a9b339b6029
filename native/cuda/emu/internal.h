// Internal: what the emulator's .cpp files call in each other (not for kernel or backend code).
#pragma once
#include <functional>

#include "cuda/emu/cuda_emu.h"

namespace dv_emu::detail {

// runtime.cpp: records `e` as the calling thread's last error when it is not cudaSuccess; returns it.
cudaError_t record_error(cudaError_t e);

// streams.cpp: how work issued asynchronously on `stream` proceeds. Returns cudaSuccess with
// *recorded == false when it must run now; cudaSuccess with *recorded == true when the stream is
// capturing and make_op(ctx) was appended to its graph; or the error when it must be dropped (the
// capture was invalidated, or the legacy stream was used while a blocking stream captures, which
// invalidates that capture). Does not record the error as the last error.
cudaError_t issue_async(cudaStream_t stream, bool* recorded, std::function<void()> (*make_op)(const void*),
                        const void* ctx);
// Invalidates the capture `stream` takes part in, if any (a failed launch into it).
void invalidate_capture(cudaStream_t stream);
// For calls that synchronise or may (cudaMalloc, cudaFree, cudaMemcpy, cudaMemset, ...): returns
// cudaErrorStreamCaptureUnsupported, and invalidates the captures concerned, when an ongoing capture
// prohibits it (global mode from any thread, thread-local mode from this one); with `legacy_stream`
// also cudaErrorStreamCaptureImplicit when a blocking stream is capturing. cudaSuccess otherwise.
cudaError_t check_capture_prohibits(bool legacy_stream);

// worker_pool.cpp: runs every block of the launch; throws dv::Error when a block fails.
void run_launch(const LaunchDesc& launch);

}  // namespace dv_emu::detail
