// The extents of kernels.def: how many elements, from its offset, a buffer argument spans, written
// in the names of its kernel's other arguments, so that the dispatch checks every buffer against
// its extent before the binding runs (Args::check_extents) and no binding repeats that arithmetic.
//
// An extent is a list of dims, outermost first, separated by spaces; the buffer spans
// 1 + sum (size - 1) * stride over them (0 when a size is 0), like a strided tensor view:
//   "rows cols"                 a dense (rows, cols) block
//   "batch@shiftStride cols"    batch rows of cols floats, shiftStride apart
//   "batch@qStrides[0] heads@qStrides[1] nq@qStrides[2] d"   strides from an array argument
//   "shape[]@srcStrides[]"      one dim per entry of two array arguments (sizes, strides)
//   "indicesShape[] dim"        an array's entries as dense dims, then one more
//   "tokens dim/2"              an integer division
//   "transA?k:m@lda"            a size chosen by a boolean argument
//   "guided?2:1 batch per"      literals
// A dim without "@stride" is packed: its stride is the span of the dims after it.
#pragma once
#include <cstdint>
#include <vector>

namespace dv::addon {

class Args;

// One number: an integer argument, an entry of an integer-array argument ("qStrides[1]"), or a
// literal; optionally divided by a literal ("dim/2").
struct ExtentTerm {
  int arg = -1;  // -1: the literal
  int index = -1;
  int64_t literal = 0;
  int64_t divisor = 1;
};

// A term, or a choice between two by a boolean argument ("transA?k:m").
struct ExtentAtom {
  int cond = -1;
  ExtentTerm then, otherwise;
};

struct ExtentDim {
  ExtentAtom size;
  bool strided = false;  // "@stride" given
  ExtentAtom stride;
  bool array = false;    // "sizes[]" or "sizes[]@strides[]": one dim per entry
};

struct Extent {
  std::vector<ExtentDim> dims;  // empty: not declared (the binding checks the buffer itself)
};

// Parses kernels.def's extent text against the kernel's argument names. A malformed extent is a bug
// in kernels.def: it throws, naming the kernel, the buffer and the text, when the table is built.
Extent parse_extent(const char* kernel, const char* buffer, const char* text, const std::vector<const char*>& names);

// The elements the extent spans in this call (0 when a size is 0; INT64_MAX on overflow, which then
// fails the extent check). Reads (and so checks) the arguments it names: sizes and strides are
// integers in [0, 2^40], conditions booleans, and an array of strides has one entry per size.
int64_t evaluate_extent(const Extent& e, Args& a);

}  // namespace dv::addon
