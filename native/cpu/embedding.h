// Embedding lookup (row gather) and its gradient (row scatter-add) for int32 indices.
#pragma once
#include <cstdint>

namespace dv::cpu {

// The flat position of the first index outside [0, rows), or -1 when every index is valid. Callers
// check this before any write, so a bad index never leaves a half-written output behind.
int64_t first_invalid_index(const int32_t* indices, int64_t n, int64_t rows);

// out (n, dim): out[k, :] = table[indices[k], :]. Indices must be valid.
void embedding_gather(const float* table, int64_t dim, const int32_t* indices, int64_t n, float* out);

// dtable (rows, dim) = 0, then dtable[indices[k], :] += dy[k, :] for k = 0 .. n-1 in order.
// Threads split the dim columns, so every element sums its contributions in index order and the
// result is bitwise the same for any thread count. Indices must be valid.
void embedding_scatter_add(const float* dy, int64_t dim, const int32_t* indices, int64_t n, float* dtable,
                           int64_t rows);

}  // namespace dv::cpu
