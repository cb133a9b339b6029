// Streams, events, stream capture and graphs for the emulator. Work runs when it is issued, so
// streams are always idle and events are timestamps of the host's steady clock. A capture collects
// the operations issued on the stream; a graph replays them in order. Capture rules follow CUDA:
// synchronising a capturing stream, or a call that a capture mode prohibits (cudaMalloc, cudaFree,
// synchronous cudaMemcpy/cudaMemset, cudaDeviceSynchronize), fails with
// cudaErrorStreamCaptureUnsupported and invalidates the capture, whose cudaStreamEndCapture then fails
// with cudaErrorStreamCaptureInvalidated.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "cuda/emu/internal.h"

struct CUgraphNode_st {
  size_t index;
};
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
  std::vector<std::unique_ptr<CUgraphNode_st>> nodes;
};
struct CUgraphExec_st {
  std::shared_ptr<const std::vector<std::function<void()>>> ops;
};
struct CUstream_st {
  unsigned flags = 0;
  bool capturing = false, invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id owner;
  CUgraph_st* graph = nullptr;
};
struct CUevent_st {
  unsigned flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point time;
};

namespace {

using dv_emu::detail::record_error;

std::mutex g_mutex;  // guards streams, capture state and g_capturing
std::unordered_set<CUstream_st*> g_streams;
std::vector<CUstream_st*> g_capturing;
std::atomic<int> g_capture_count{0};  // lock-free "no capture anywhere" fast path

// cudaStreamLegacy / the NULL stream, and cudaStreamPerThread: never capturing here.
bool is_builtin(cudaStream_t s) { return reinterpret_cast<uintptr_t>(s) <= 2; }
bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy; }

// Legacy-stream work waits for every blocking stream: a capturing one is invalidated. (g_mutex held)
bool legacy_meets_capture() {
  bool hit = false;
  for (CUstream_st* s : g_capturing) {
    if (!(s->flags & cudaStreamNonBlocking)) {
      s->invalidated = true;
      hit = true;
    }
  }
  return hit;
}

void end_capture_locked(CUstream_st* s) {
  s->capturing = false;
  g_capturing.erase(std::remove(g_capturing.begin(), g_capturing.end(), s), g_capturing.end());
  g_capture_count.fetch_sub(1, std::memory_order_release);
}

// The synchronising part of cudaStreamSynchronize / cudaStreamQuery.
cudaError_t sync_stream(cudaStream_t stream) {
  if (g_capture_count.load(std::memory_order_acquire) == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lk(g_mutex);
  if (is_builtin(stream)) return is_legacy(stream) && legacy_meets_capture() ? cudaErrorStreamCaptureImplicit : cudaSuccess;
  if (!g_streams.count(stream)) return cudaErrorInvalidResourceHandle;
  if (stream->capturing) {
    stream->invalidated = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  return cudaSuccess;
}

}  // namespace

namespace dv_emu::detail {

cudaError_t issue_async(cudaStream_t stream, bool* recorded, std::function<void()> (*make_op)(const void*),
                        const void* ctx) {
  *recorded = false;
  if (g_capture_count.load(std::memory_order_acquire) == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lk(g_mutex);
  if (is_builtin(stream)) return is_legacy(stream) && legacy_meets_capture() ? cudaErrorStreamCaptureImplicit : cudaSuccess;
  if (!stream->capturing) return cudaSuccess;
  if (stream->invalidated) return cudaErrorStreamCaptureInvalidated;
  CUgraph_st* g = stream->graph;
  g->ops.push_back(make_op(ctx));
  g->nodes.push_back(std::make_unique<CUgraphNode_st>(CUgraphNode_st{g->ops.size() - 1}));
  *recorded = true;
  return cudaSuccess;
}

void invalidate_capture(cudaStream_t stream) {
  if (is_builtin(stream) || g_capture_count.load(std::memory_order_acquire) == 0) return;
  std::lock_guard<std::mutex> lk(g_mutex);
  if (stream->capturing) stream->invalidated = true;
}

cudaError_t check_capture_prohibits(bool legacy_stream) {
  if (g_capture_count.load(std::memory_order_acquire) == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lk(g_mutex);
  // Global-mode captures prohibit unsafe calls on every thread, thread-local ones on their own thread.
  bool prohibited = false;
  for (CUstream_st* s : g_capturing) {
    if (s->mode == cudaStreamCaptureModeGlobal ||
        (s->mode == cudaStreamCaptureModeThreadLocal && s->owner == std::this_thread::get_id())) {
      s->invalidated = true;
      prohibited = true;
    }
  }
  if (prohibited) return cudaErrorStreamCaptureUnsupported;
  if (legacy_stream && legacy_meets_capture()) return cudaErrorStreamCaptureImplicit;
  return cudaSuccess;
}

}  // namespace dv_emu::detail

extern "C" {

// ---- streams ----
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags) {
  if (!pStream || (flags & ~unsigned{cudaStreamNonBlocking})) return record_error(cudaErrorInvalidValue);
  auto* s = new CUstream_st();
  s->flags = flags;
  std::lock_guard<std::mutex> lk(g_mutex);
  g_streams.insert(s);
  *pStream = s;
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* pStream) { return cudaStreamCreateWithFlags(pStream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (is_builtin(stream)) return record_error(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lk(g_mutex);
  if (!g_streams.erase(stream)) return record_error(cudaErrorInvalidResourceHandle);
  if (stream->capturing) {
    end_capture_locked(stream);
    delete stream->graph;
  }
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) { return record_error(sync_stream(stream)); }
cudaError_t cudaStreamQuery(cudaStream_t stream) { return record_error(sync_stream(stream)); }

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  if (!event) return record_error(cudaErrorInvalidResourceHandle);
  (void)stream;
  (void)flags;
  return cudaSuccess;  // everything issued before has completed
}

cudaError_t cudaDeviceSynchronize(void) {
  if (g_capture_count.load(std::memory_order_acquire) == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lk(g_mutex);
  if (g_capturing.empty()) return cudaSuccess;
  for (CUstream_st* s : g_capturing) s->invalidated = true;  // it would wait for the capturing streams
  return record_error(cudaErrorStreamCaptureUnsupported);
}

// ---- capture ----
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return record_error(cudaErrorInvalidValue);
  if (is_builtin(stream)) return record_error(cudaErrorStreamCaptureUnsupported);
  std::lock_guard<std::mutex> lk(g_mutex);
  if (!g_streams.count(stream)) return record_error(cudaErrorInvalidResourceHandle);
  if (stream->capturing) return record_error(cudaErrorIllegalState);
  stream->capturing = true;
  stream->invalidated = false;
  stream->mode = mode;
  stream->owner = std::this_thread::get_id();
  stream->graph = new CUgraph_st();
  g_capturing.push_back(stream);
  g_capture_count.fetch_add(1, std::memory_order_release);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph) {
  if (!pGraph) return record_error(cudaErrorInvalidValue);
  if (is_builtin(stream)) return record_error(cudaErrorIllegalState);
  std::lock_guard<std::mutex> lk(g_mutex);
  if (!g_streams.count(stream)) return record_error(cudaErrorInvalidResourceHandle);
  if (!stream->capturing) return record_error(cudaErrorIllegalState);
  if (stream->mode != cudaStreamCaptureModeRelaxed && stream->owner != std::this_thread::get_id())
    return record_error(cudaErrorStreamCaptureWrongThread);
  end_capture_locked(stream);
  CUgraph_st* g = stream->graph;
  stream->graph = nullptr;
  if (stream->invalidated) {
    delete g;
    *pGraph = nullptr;
    return record_error(cudaErrorStreamCaptureInvalidated);
  }
  *pGraph = g;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* pCaptureStatus) {
  if (!pCaptureStatus) return record_error(cudaErrorInvalidValue);
  *pCaptureStatus = cudaStreamCaptureStatusNone;
  if (is_builtin(stream)) return cudaSuccess;
  std::lock_guard<std::mutex> lk(g_mutex);
  if (!g_streams.count(stream)) return record_error(cudaErrorInvalidResourceHandle);
  if (stream->capturing)
    *pCaptureStatus = stream->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

// ---- events ----
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (!event || (flags & ~unsigned{cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess}))
    return record_error(cudaErrorInvalidValue);
  auto* e = new CUevent_st();
  e->flags = flags;
  *event = e;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return record_error(cudaErrorInvalidResourceHandle);
  if (g_capture_count.load(std::memory_order_acquire) != 0) {
    std::lock_guard<std::mutex> lk(g_mutex);
    if (is_builtin(stream)) {
      if (is_legacy(stream) && legacy_meets_capture()) return record_error(cudaErrorStreamCaptureImplicit);
    } else if (stream->capturing) {
      // In a capture an event only orders streams (no graph node, no timestamp).
      return stream->invalidated ? record_error(cudaErrorStreamCaptureInvalidated) : cudaSuccess;
    }
  }
  event->time = std::chrono::steady_clock::now();  // all work issued before has completed
  event->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event ? cudaSuccess : record_error(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  return event ? cudaSuccess : record_error(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return record_error(cudaErrorInvalidValue);
  if (!start || !end) return record_error(cudaErrorInvalidResourceHandle);
  if ((start->flags | end->flags) & cudaEventDisableTiming) return record_error(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return record_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return record_error(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

// ---- graphs ----
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* pGraphExec, cudaGraph_t graph, unsigned long long flags) {
  (void)flags;
  if (!pGraphExec || !graph) return record_error(cudaErrorInvalidValue);
  auto* exec = new CUgraphExec_st();
  exec->ops = std::make_shared<const std::vector<std::function<void()>>>(graph->ops);
  *pGraphExec = exec;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
  if (!graphExec) return record_error(cudaErrorInvalidValue);
  auto ops = graphExec->ops;
  auto run_all = [ops] {
    for (const auto& op : *ops) op();
  };
  // Into a capture, the whole graph becomes one (child graph) node.
  bool recorded = false;
  cudaError_t e = dv_emu::detail::issue_async(
      stream, &recorded, [](const void* p) { return std::function<void()>(*static_cast<const decltype(run_all)*>(p)); },
      &run_all);
  if (e != cudaSuccess) return record_error(e);
  if (!recorded) run_all();
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* numNodes) {
  if (!graph || !numNodes) return record_error(cudaErrorInvalidValue);
  const size_t n = graph->nodes.size();
  if (nodes) {
    for (size_t i = 0; i < *numNodes; ++i) nodes[i] = i < n ? graph->nodes[i].get() : nullptr;
    *numNodes = std::min(*numNodes, n);
  } else {
    *numNodes = n;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (!graph) return record_error(cudaErrorInvalidValue);
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
  if (!graphExec) return record_error(cudaErrorInvalidValue);
  delete graphExec;
  return cudaSuccess;
}

}  // extern "C"
