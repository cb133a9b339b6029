// Lists of tensors for the multi-tensor kernels (adamwMany, axpbyMany): per list an array of
// buffers and one of offsets, item t holding counts[t] elements.
#pragma once
#include <cstdint>
#include <vector>

#include "addon/args.h"

namespace dv::addon {

struct TensorList {
  int arg;       // the buffers' argument; the offsets' is arg + 1
  bool written;  // the kernel writes its items (no other item may share their memory)
  std::vector<float*> data;  // filled by read_tensor_lists: item t's first element
};

// Reads the counts at `counts_arg` and each list: as many buffers and offsets as counts, each item
// holding its count after its offset, and no item a kernel writes sharing memory with another item
// (items only read may share). Returns the counts.
std::vector<int64_t> read_tensor_lists(Args& a, const std::vector<TensorList*>& lists, int counts_arg);

}  // namespace dv::addon
