// Embedding gather / scatter-add on the GPU (embedding.cu), as cpu/embedding.h.
#pragma once
#include "cpu/embedding.h"

namespace dv::cuda {
// Checked on the device; only the answer (one integer) comes back.
int64_t first_invalid_index(const int32_t* indices, int64_t n, int64_t rows);
// Also takes the table's `rows`: an index outside them (possible only in a CUDA graph replay, where
// the binding cannot check the indices first) gives a row of zeros instead of a stray read.
void embedding_gather(const float* table, int64_t dim, const int32_t* indices, int64_t n, float* out, int64_t rows);
void embedding_scatter_add(const float* dy, int64_t dim, const int32_t* indices, int64_t n, float* dtable,
                           int64_t rows);
}  // namespace dv::cuda
