// The caching device allocator's hooks for CUDA graphs (graph.cpp); everything else uses
// dv::cuda::device_allocator() (runtime.h).
#pragma once
#include <cstdint>

namespace dv::cuda::detail {
// From now until end_graph_pool(), blocks allocated or freed belong to graph `id`'s pool: they are
// reused only by that graph's own allocations, never handed to other work while the graph lives.
void begin_graph_pool(int64_t id);
void end_graph_pool();
// The graph is gone: its free blocks go back to the shared cache, and its blocks still in use go
// there when freed.
void release_graph_pool(int64_t id);
}  // namespace dv::cuda::detail
