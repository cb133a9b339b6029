// Argument checking for bindings. Every failure throws dv::Error with the op, the argument name,
// what was expected and what came, e.g.
//   diffvit.gemm: argument 'b' expected at least 4096 float32 elements after offset 0, received 1024
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "core/buffer.h"

namespace dv::addon {

class Args {
 public:
  // `names` lists the arguments in order; a call with another count is rejected.
  Args(const Napi::CallbackInfo& info, const char* op, std::initializer_list<const char*> names);
  // A kernel call (kernels.def's `names`): `named`, one object argument holding exactly `names`,
  // read by name and then addressed by index in that order (a missing or unknown key is
  // rejected); `positional`, the values themselves in that order (module.cpp's fast path).
  enum class Call { named, positional };
  Args(const Napi::CallbackInfo& info, const char* op, const std::vector<const char*>& names, Call call);

  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  const char* op() const { return op_; }
  Napi::Env env() const { return info_.Env(); }

  // A live NativeBuffer of the given dtype.
  Buffer& buffer(int i, DType dtype);
  // A live NativeBuffer of any dtype.
  Buffer& any_buffer(int i);
  // An array of live NativeBuffers of the given dtype.
  std::vector<Buffer*> buffers(int i, DType dtype);
  // As buffer(), or nullptr for null/undefined.
  Buffer* optional_buffer(int i, DType dtype);
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

  // The buffer of argument i must hold elements [offset, offset + extent).
  void require_extent(int i, const Buffer& b, int64_t offset, int64_t extent);
  // Arguments i and j (na and nb elements from their offsets) must not share memory, for kernels
  // whose threads write one while others still read the other.
  void require_disjoint(int i, const Buffer& a, int64_t ao, int64_t na, int j, const Buffer& b, int64_t bo, int64_t nb);
  // The buffers of arguments i and j must be on the same device.
  void require_same_device(int i, const Buffer& a, int j, const Buffer& b);
  // The one device of every buffer read so far (buffer(), buffers(), ...); a buffer on another
  // device than the first one read fails naming both arguments. 'cpu' when none was read.
  Device device() const { return device_; }

  [[noreturn]] void fail(int i, const std::string& expected, const std::string& received) const;
  [[noreturn]] void fail(const char* arg, const std::string& expected, const std::string& received) const;

 private:
  Napi::Value at(int i) const { return values_[i]; }
  // Records (first buffer) or checks the call's device; `element` >= 0 for an item of an array argument.
  Buffer& on_device(int i, int element, Buffer& b);
  std::string arg_name(int i, int element) const;
  Device device_ = Device::cpu;
  int device_arg_ = -1, device_element_ = -1;  // the argument (and array item) that set device_
  const char* name(int i) const { return (*names_)[i]; }
  const Napi::CallbackInfo& info_;
  const char* op_;
  std::vector<const char*> own_names_;  // positional calls: the names given to the constructor
  const std::vector<const char*>* names_;
  std::vector<Napi::Value> values_;
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
