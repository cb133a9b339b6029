// CUDA graphs: everything queued on the backend's stream between capture begin and end becomes one
// graph, replayed with a single launch (no per-kernel launch cost, no JS in between).
#include <map>
#include <mutex>

#include "core/errors.h"
#include "cuda/allocator.h"
#include "cuda/runtime.h"

namespace dv::cuda {
namespace {
struct Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};
std::mutex g_mutex;
std::map<int64_t, Graph> g_graphs;
int64_t g_next_id = 1;
int64_t g_capturing = 0;  // the id being captured, 0 when none
}  // namespace

bool capturing() { return g_capturing != 0; }

int64_t graph_capture_begin() {
  require_device("cuda.graph");
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_capturing) fail("cuda.graph", "a graph is already being captured (graphs do not nest)");
  cudaStream_t s = stream();
  // Relaxed: the caching allocator may still call cudaMalloc while the graph is captured.
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), "cuda.graph");
  g_capturing = g_next_id++;
  detail::begin_graph_pool(g_capturing);
  return g_capturing;
}

int64_t graph_capture_end() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_capturing) fail("cuda.graph", "no graph is being captured");
  const int64_t id = g_capturing;
  g_capturing = 0;
  detail::end_graph_pool();
  Graph g;
  cudaError_t status = cudaStreamEndCapture(stream(), &g.graph);
  if (status != cudaSuccess) {
    detail::release_graph_pool(id);
    check(status, "cuda.graph");
  }
  status = cudaGraphInstantiate(&g.exec, g.graph, 0);
  if (status != cudaSuccess) {
    cudaGraphDestroy(g.graph);
    detail::release_graph_pool(id);
    check(status, "cuda.graph");
  }
  g_graphs[id] = g;
  return id;
}

void graph_replay(int64_t id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_graphs.find(id);
  if (it == g_graphs.end()) fail("cuda.graph", "graph " + std::to_string(id) + " does not exist (destroyed?)");
  if (g_capturing) fail("cuda.graph", "cannot replay a graph while another is being captured");
  check(cudaGraphLaunch(it->second.exec, stream()), "cuda.graph");
}

void graph_destroy(int64_t id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_graphs.find(id);
  if (it == g_graphs.end()) return;
  // Queued replays may still run: wait for them before the graph's memory goes back to the cache.
  cudaStreamSynchronize(stream());
  cudaGraphExecDestroy(it->second.exec);
  cudaGraphDestroy(it->second.graph);
  g_graphs.erase(it);
  detail::release_graph_pool(id);
}

int64_t graph_count() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return static_cast<int64_t>(g_graphs.size());
}

}  // namespace dv::cuda
