#include "addon/args.h"

#include <cmath>
#include <cstdint>

#include "addon/buffer_object.h"
#include "addon/extent.h"
#include "addon/kernel_table.h"
#include "core/errors.h"
#include "cpu/elementwise.h"

namespace dv::addon {

Args::Args(const Napi::CallbackInfo& info, const char* op, std::initializer_list<const char*> names)
    : info_(info), op_(op), own_names_(names), names_(&own_names_) {
  if (info.Length() != names_->size()) {
    std::string list;
    for (size_t k = 0; k < names_->size(); ++k) list += (k ? ", " : "") + std::string((*names_)[k]);
    fail_arg(op_, "(arguments)", std::to_string(names_->size()) + " arguments (" + list + ")",
             std::to_string(info.Length()));
  }
  values_.reserve(info.Length());
  for (size_t k = 0; k < info.Length(); ++k) values_.push_back(info[k]);
}

Args::Args(const Napi::CallbackInfo& info, const KernelDecl& k, Call call)
    : info_(info), op_(k.name), names_(&k.args), types_(&k.types), kernel_(&k) {
  const std::vector<const char*>& names = k.args;
  if (call == Call::positional) {
    if (info.Length() != names.size())
      fail_arg(op_, "(arguments)", std::to_string(names.size()) + " positional arguments", std::to_string(info.Length()));
    values_.reserve(info.Length());
    for (size_t i = 0; i < info.Length(); ++i) values_.push_back(info[i]);
  } else {
    read_named(info, names);
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (k.types[i].kind != ArgKind::value) buffers_[i] = check_declared(static_cast<int>(i), k.types[i]);
}

void Args::check_extents() {
  if (extents_read_ || !kernel_) return;
  extents_read_ = true;
  const KernelDecl& k = *kernel_;
  for (int i = 0; i < static_cast<int>(k.args.size()); ++i) {
    if (k.offset_arg[i] >= 0) offsets_[i] = integer(k.offset_arg[i]);
    if (k.extents[i].dims.empty()) continue;
    if (buffers_[i]) {
      const int64_t extent = evaluate_extent(k.extents[i], *this);
      require_extent(i, *buffers_[i], offsets_[i], extent);
    }
    extent_checked_ |= uint64_t(1) << i;  // an absent optional buffer too: data() gives nullptr
  }
}

void Args::require_extent(int i, int64_t extent) {
  check_extents();
  const ArgKind kind = types_ ? (*types_)[i].kind : ArgKind::value;
  if (kind == ArgKind::value || kind == ArgKind::buffer_list)
    throw Error(std::string("diffvit.") + op_ + ": internal error: argument '" + name(i) +
                "' is not a buffer kernels.def declares (an extent is checked for one buffer)");
  if (Buffer* b = buffers_[i]) require_extent(i, *b, offsets_[i], extent);
  extent_checked_ |= uint64_t(1) << i;
}

Buffer* Args::checked(int i) {
  check_extents();
  if (!types_ || !((extent_checked_ >> i) & 1))
    throw Error(std::string("diffvit.") + op_ + ": internal error: the binding reads argument '" + name(i) +
                "' before its extent is checked");
  return buffers_[i];
}

void Args::read_named(const Napi::CallbackInfo& info, const std::vector<const char*>& names) {
  if (info.Length() != 1 || !info[0].IsObject() || info[0].IsArray() || BufferObject::From(info[0])) {
    std::string list;
    for (size_t k = 0; k < names.size(); ++k) list += (k ? ", " : "") + std::string(names[k]);
    fail_arg(op_, "(arguments)", "one object { " + list + " }",
             std::to_string(info.Length()) + " arguments" + (info.Length() ? ", the first " + describe(info[0]) : ""));
  }
  Napi::Object object = info[0].As<Napi::Object>();
  values_.reserve(names.size());
  for (const char* name : names) {
    Napi::Value v = object.Get(name);
    if (v.IsUndefined() && !object.Has(name)) fail_arg(op_, name, "a value (the argument is missing)", "no such key");
    values_.push_back(v);
  }
  Napi::Array keys = object.GetPropertyNames();
  if (keys.Length() != names.size()) {
    for (uint32_t k = 0; k < keys.Length(); ++k) {
      std::string key = keys.Get(k).ToString().Utf8Value();
      bool known = false;
      for (const char* name : names) known = known || key == name;
      if (!known) fail_arg(op_, key.c_str(), "no such argument (this kernel takes only the keys of kernels.def)", "a value");
    }
  }
}

std::string describe(Napi::Value v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: {
      double d = v.As<Napi::Number>().DoubleValue();
      if (std::isnan(d)) return "NaN";
      if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
      char buf[64];
      snprintf(buf, sizeof buf, "%.17g", d);
      return buf;
    }
    case napi_string: return "a string";
    case napi_bigint: return "a bigint";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_object: {
      if (v.IsArray()) return "an array of length " + std::to_string(v.As<Napi::Array>().Length());
      if (v.IsTypedArray()) return "a typed array";
      if (Buffer* b = BufferObject::From(v)) {
        if (!b->alive()) return "a disposed NativeBuffer";
        return std::string("a ") + dtype_name(b->dtype()) + " NativeBuffer of " + std::to_string(b->numel()) +
               " elements on " + device_name(b->device());
      }
      return "an object";
    }
    default: return "an unknown value";
  }
}

void Args::fail(int i, const std::string& expected, const std::string& received) const {
  fail_arg(op_, name(i), expected, received);
}
void Args::fail(const char* arg, const std::string& expected, const std::string& received) const {
  fail_arg(op_, arg, expected, received);
}

Buffer* Args::live_buffer(int i, int element, Napi::Value v, ArgType t) {
  const std::string arg = arg_name(i, element);
  const bool any = t.kind == ArgKind::any_buffer;
  Buffer* b = BufferObject::From(v);
  if (!b) fail(arg.c_str(), any ? "a NativeBuffer" : std::string("a ") + dtype_name(t.dtype) + " NativeBuffer", describe(v));
  if (!b->alive()) fail(arg.c_str(), "a live NativeBuffer (not disposed)", "a disposed NativeBuffer");
  if (!any && b->dtype() != t.dtype) fail(arg.c_str(), std::string("dtype ") + dtype_name(t.dtype), dtype_name(b->dtype()));
  return &on_device(i, element, *b);
}

Buffer* Args::check_declared(int i, ArgType t) {
  Napi::Value v = at(i);
  switch (t.kind) {
    case ArgKind::value: return nullptr;
    case ArgKind::optional_buffer: return v.IsNull() || v.IsUndefined() ? nullptr : live_buffer(i, -1, v, t);
    case ArgKind::buffer:
    case ArgKind::any_buffer: return live_buffer(i, -1, v, t);
    case ArgKind::buffer_list: {
      if (!v.IsArray()) fail(i, std::string("an array of ") + dtype_name(t.dtype) + " NativeBuffers", describe(v));
      Napi::Array list = v.As<Napi::Array>();
      std::vector<Buffer*>& items = lists_.emplace_back(i, std::vector<Buffer*>()).second;
      for (uint32_t k = 0; k < list.Length(); ++k) items.push_back(live_buffer(i, static_cast<int>(k), list.Get(k), t));
      return nullptr;
    }
  }
  return nullptr;
}

Buffer* Args::declared(int i, ArgKind kind) const {
  // A binding reading an argument as kernels.def does not declare it is a bug in the addon.
  if (!types_ || (*types_)[i].kind != kind)
    throw Error(std::string("diffvit.") + op_ + ": internal error: kernels.def does not declare argument '" + name(i) +
                "' as the binding reads it");
  return buffers_[i];
}

Buffer& Args::buffer(int i) { return *declared(i, ArgKind::buffer); }
Buffer& Args::any_buffer(int i) { return *declared(i, ArgKind::any_buffer); }
Buffer* Args::optional_buffer(int i) { return declared(i, ArgKind::optional_buffer); }

std::vector<Buffer*> Args::buffers(int i) {
  declared(i, ArgKind::buffer_list);
  for (const auto& [arg, items] : lists_)
    if (arg == i) return items;  // as read once by the check (an array's getters are not run again)
  return {};
}

std::string Args::arg_name(int i, int element) const {
  return element < 0 ? std::string(name(i)) : std::string(name(i)) + "[" + std::to_string(element) + "]";
}

Buffer& Args::on_device(int i, int element, Buffer& b) {
  if (device_arg_ < 0) {
    device_ = b.device();
    device_arg_ = i;
    device_element_ = element;
  } else if (b.device() != device_) {
    fail(arg_name(i, element).c_str(), std::string("a buffer on ") + device_name(device_) + " like '" + arg_name(device_arg_, device_element_) + "'",
         std::string("one on ") + device_name(b.device()));
  }
  return b;
}

bool Args::read_number(int i, double* d) {
  const bool cached = i < kMaxKernelArgs;
  if (cached && ((number_read_ >> i) & 1)) {
    *d = numbers_[i];
    return true;
  }
  Napi::Value v = at(i);
  if (!v.IsNumber()) return false;
  *d = v.As<Napi::Number>().DoubleValue();
  if (cached) {
    numbers_[i] = *d;
    number_read_ |= uint64_t(1) << i;
  }
  return true;
}

int64_t Args::integer(int i, int64_t lo, int64_t hi) {
  double d;
  if (!read_number(i, &d) || !std::isfinite(d) || d != std::floor(d)) fail(i, "an integer", describe(at(i)));
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
    fail(i, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", describe(at(i)));
  return static_cast<int64_t>(d);
}

double Args::number(int i, bool allow_nonfinite) {
  double d;
  if (!read_number(i, &d)) fail(i, "a number", describe(at(i)));
  if (!allow_nonfinite && !std::isfinite(d)) fail(i, "a finite number", describe(at(i)));
  return d;
}

float Args::positive_float32(int i) {
  double d = number(i);
  float f = static_cast<float>(d);
  if (!(d > 0) || !(f > 0) || !std::isfinite(f)) {
    fail(i, "a finite number > 0 (as float32: in [1.4e-45, 3.4e38])", describe(at(i)));
  }
  return f;
}

bool Args::boolean(int i) {
  Napi::Value v = at(i);
  if (!v.IsBoolean()) fail(i, "a boolean", describe(v));
  return v.As<Napi::Boolean>().Value();
}

int Args::choice(int i, std::initializer_list<const char*> choices) {
  std::string list;
  for (const char* c : choices) list += (list.empty() ? "'" : ", '") + std::string(c) + "'";
  Napi::Value v = at(i);
  if (!v.IsString()) fail(i, "one of " + list, describe(v));
  std::string s = v.As<Napi::String>().Utf8Value();
  int k = 0;
  for (const char* c : choices) {
    if (s == c) return k;
    ++k;
  }
  fail(i, "one of " + list, "'" + s + "'");
}

std::vector<int64_t> Args::integers(int i, int max_len, int64_t lo, int64_t hi) {
  Napi::Value v = at(i);
  if (!v.IsArray()) fail(i, "an array of integers", describe(v));
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > static_cast<uint32_t>(max_len))
    fail(i, "an array of at most " + std::to_string(max_len) + " integers", describe(v));
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi))
      fail(i, "integers in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
           describe(e) + " at index " + std::to_string(k));
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

const std::vector<int64_t>& Args::dims(int i) {
  for (int k = 0; k < n_dims_; ++k)
    if (dims_[k].arg == i) return dims_[k].values;
  if (n_dims_ == kMaxDimsArgs)
    throw Error(std::string("diffvit.") + op_ + ": internal error: more than " + std::to_string(kMaxDimsArgs) +
                " array arguments in one call");
  DimsArg& d = dims_[n_dims_];
  d.values = integers(i, cpu::kMaxRank, 0, int64_t(1) << 40);
  d.arg = i;
  ++n_dims_;
  return d.values;
}

void Args::require_extent(int i, const Buffer& b, int64_t offset, int64_t extent) {
  if (extent == 0) return;
  if (offset < 0 || offset > b.numel() || extent > b.numel() - offset)
    fail(i, "at least " + std::to_string(offset + extent) + " " + dtype_name(b.dtype()) + " elements (offset " +
                std::to_string(offset) + " + " + std::to_string(extent) + ")",
         "a buffer of " + std::to_string(b.numel()));
}

void Args::require_disjoint(int i, const Buffer& a, int64_t ao, int64_t na, int j, const Buffer& b, int64_t bo,
                            int64_t nb) {
  if (&a != &b || na == 0 || nb == 0 || ao >= bo + nb || bo >= ao + na) return;
  fail(j, std::string("memory not overlapping '") + name(i) + "' (elements " + std::to_string(ao) + ".." +
              std::to_string(ao + na) + ")",
       "elements " + std::to_string(bo) + ".." + std::to_string(bo + nb) + " of the same buffer");
}

Napi::Object memory_stats_object(Napi::Env env, const MemoryStats& s) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("liveBuffers", static_cast<double>(s.live_buffers));
  out.Set("liveBytes", static_cast<double>(s.live_bytes));
  out.Set("peakBytes", static_cast<double>(s.peak_bytes));
  out.Set("totalAllocations", static_cast<double>(s.total_allocations));
  out.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  return out;
}

int64_t strided_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  for (int64_t s : shape)
    if (s == 0) return 0;
  int64_t extent = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t span;
    if (__builtin_mul_overflow(shape[d] - 1, strides[d], &span) || __builtin_add_overflow(extent, span, &extent))
      return INT64_MAX;
  }
  return extent;
}

int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, s, &n)) return INT64_MAX;
  return n;
}

}  // namespace dv::addon
