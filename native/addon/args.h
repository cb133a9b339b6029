// Argument checking for bindings. Every failure throws dv::Error with the op, the argument name,
// what was expected and what came, e.g.
//   diffvit.gemm: argument 'b' expected at least 4096 float32 elements (offset 0 + 4096), received a buffer of 1024
#pragma once
#include <napi.h>

#include <initializer_list>
#include <utility>
#include <string>
#include <vector>

#include "core/buffer.h"

namespace dv::addon {

struct KernelDecl;

// What kernels.def declares an argument to be (F32("x"), F32_OPT, F32_LIST, I32, ANY; a plain name
// is a value). Args checks every declared buffer (a live NativeBuffer of that dtype, on the call's
// one device) before the binding runs, so bindings name no dtype.
enum class ArgKind : unsigned char { value, buffer, optional_buffer, buffer_list, any_buffer };
struct ArgType {
  ArgKind kind = ArgKind::value;
  DType dtype = DType::f32;
};

class Args {
 public:
  // `names` lists the arguments in order; a call with another count is rejected.
  Args(const Napi::CallbackInfo& info, const char* op, std::initializer_list<const char*> names);
  // A call of kernel `k` (kernels.def): `named`, one object argument holding exactly its argument
  // names, read by name and then addressed by index in that order (a missing or unknown key is
  // rejected); `positional`, the values themselves in that order (module.cpp's fast path).
  // Every declared buffer is checked here, in order (a live NativeBuffer of its dtype, on the
  // call's one device). Every buffer with a declared extent (extent.h) is checked to hold it after
  // its offset when the binding first asks for a buffer's data or offset (check_extents): after
  // the binding has read and checked its values, so that a size out of range is reported as that,
  // not as a buffer too small for it; and before any memory is touched.
  enum class Call { named, positional };
  static constexpr int kMaxKernelArgs = 48;  // the most arguments a kernels.def entry may have
  Args(const Napi::CallbackInfo& info, const KernelDecl& k, Call call);

  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  const char* op() const { return op_; }
  Napi::Env env() const { return info_.Env(); }

  // The data of a declared buffer at its offset argument, as T (nullptr for an absent F32_OPT).
  // Only once its extent is checked: declared in kernels.def, or require_extent(i, n) for one
  // whose extent the binding works out (reading it earlier is an internal error).
  template <typename T>
  T* data(int i) {
    Buffer* b = checked(i);
    return b ? b->as<T>() + offsets_[i] : nullptr;
  }
  float* f32(int i) { return data<float>(i); }
  int64_t offset(int i) {
    check_extents();
    return offsets_[i];
  }
  // For a buffer kernels.def declares without an extent: it must hold `extent` elements after its offset.
  void require_extent(int i, int64_t extent);
  // Reads the offsets and checks the declared extents, once: at the binding's first data() or
  // offset(), or, for a call that touched no data (nothing to compute), when it returns (the
  // dispatch calls it), so that every call is checked the same way.
  void check_extents();

  // The buffers kernels.def declares, checked by the constructor: a buffer argument (F32, I32),
  // one of any dtype (ANY), an optional one (F32_OPT: nullptr for null/undefined), an array (F32_LIST).
  Buffer& buffer(int i);
  Buffer& any_buffer(int i);
  Buffer* optional_buffer(int i);
  std::vector<Buffer*> buffers(int i);
  // A finite integer in [lo, hi].
  int64_t integer(int i, int64_t lo = 0, int64_t hi = (int64_t(1) << 50));
  // A finite number (NaN and infinities rejected unless allow_nonfinite).
  double number(int i, bool allow_nonfinite = false);
  // A number that stays positive and finite once rounded to float32 (an epsilon added in float32).
  float positive_float32(int i);
  bool boolean(int i);
  // One of `choices`; returns its index.
  int choice(int i, std::initializer_list<const char*> choices);
  // An array of integers in [lo, hi], at most max_len long.
  std::vector<int64_t> integers(int i, int max_len, int64_t lo, int64_t hi);
  // An array of sizes or strides: at most 8 integers in [0, 2^40]. Read once per call: the
  // extents and the binding share it (attention's extents alone read its stride arrays 12 times).
  const std::vector<int64_t>& dims(int i);

  // The buffer of argument i must hold elements [offset, offset + extent).
  void require_extent(int i, const Buffer& b, int64_t offset, int64_t extent);
  // Arguments i and j (na and nb elements from their offsets) must not share memory, for kernels
  // whose threads write one while others still read the other.
  void require_disjoint(int i, const Buffer& a, int64_t ao, int64_t na, int j, const Buffer& b, int64_t bo, int64_t nb);
  // The one device of the call's declared buffers; a buffer on another device than the first one
  // fails naming both arguments. 'cpu' when the kernel has no buffer.
  Device device() const { return device_; }

  const char* name(int i) const { return (*names_)[i]; }
  [[noreturn]] void fail(int i, const std::string& expected, const std::string& received) const;
  [[noreturn]] void fail(const char* arg, const std::string& expected, const std::string& received) const;

 private:
  Napi::Value at(int i) const { return values_[i]; }
  void read_named(const Napi::CallbackInfo& info, const std::vector<const char*>& names);
  // Checks argument i against its declared type; returns the buffer (nullptr for an absent optional
  // one or a list).
  Buffer* check_declared(int i, ArgType t);
  // `v`, argument i (or its item `element` >= 0), as a live NativeBuffer of t's dtype (any for ANY)
  // on the call's device.
  Buffer* live_buffer(int i, int element, Napi::Value v, ArgType t);
  // The checked buffer of argument i, which kernels.def must declare with `kind`.
  Buffer* declared(int i, ArgKind kind) const;
  // Records (first buffer) or checks the call's device; `element` >= 0 for an item of an array argument.
  Buffer& on_device(int i, int element, Buffer& b);
  std::string arg_name(int i, int element) const;
  Device device_ = Device::cpu;
  int device_arg_ = -1, device_element_ = -1;  // the argument (and array item) that set device_
  // The declared buffer of argument i once its extent is checked (internal error before).
  Buffer* checked(int i);
  const Napi::CallbackInfo& info_;
  const char* op_;
  std::vector<const char*> own_names_;  // positional calls: the names given to the constructor
  const std::vector<const char*>* names_;
  const std::vector<ArgType>* types_ = nullptr;
  const KernelDecl* kernel_ = nullptr;  // a kernel call's declaration (null for other bindings)
  bool extents_read_ = false;
  std::vector<Napi::Value> values_;
  // Per argument of a kernel call: its checked buffer or nullptr, its offset (0 without an offset
  // argument), whether its extent is checked.
  Buffer* buffers_[kMaxKernelArgs] = {};
  int64_t offsets_[kMaxKernelArgs] = {};
  uint64_t extent_checked_ = 0;
  // Numbers read so far (integer() and number() of the extents, then of the binding, read each once).
  double numbers_[kMaxKernelArgs];
  uint64_t number_read_ = 0;
  // The JS number of argument i, or false when it is not a number.
  bool read_number(int i, double* d);
  struct DimsArg {
    int arg = -1;
    std::vector<int64_t> values;
  };
  static constexpr int kMaxDimsArgs = 10;
  DimsArg dims_[kMaxDimsArgs];
  int n_dims_ = 0;
  std::vector<std::pair<int, std::vector<Buffer*>>> lists_;  // each F32_LIST argument and its items
};

// An allocator's statistics as JS sees them (lib/backend/backend.ts MemoryStats).
Napi::Object memory_stats_object(Napi::Env env, const MemoryStats& s);

// Describes a JS value for error messages: "a string", "-3", "NaN", "a disposed NativeBuffer", ...
std::string describe(Napi::Value v);

// Elements spanned by a strided view: 1 + sum (shape[d]-1)*stride[d], or 0 when any extent is 0.
// Saturates at INT64_MAX on overflow so the extent check then fails cleanly.
int64_t strided_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides);
// Product of shape, INT64_MAX on overflow.
int64_t checked_numel(const std::vector<int64_t>& shape);

}  // namespace dv::addon
