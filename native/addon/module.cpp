// The addon's entry point: exports NativeBuffer and every DV_BINDING, each wrapped so that any C++
// exception (argument errors, bad_alloc, kernel errors) reaches JS as an Error and never aborts.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon/buffer_object.h"
#include "addon/kernel_table.h"
#include "addon/registry.h"
#include "core/errors.h"
#include "core/trace.h"

namespace dv::addon {

std::vector<Binding>& bindings() {
  static std::vector<Binding> list;
  return list;
}

KernelDecl::KernelDecl(const char* kernel, std::initializer_list<ArgDecl> decls, KernelFn f) : name(kernel), fn(f) {
  if (decls.size() > Args::kMaxKernelArgs)
    throw std::logic_error(std::string("kernels.def: ") + kernel + ": more than " + std::to_string(Args::kMaxKernelArgs) + " arguments");
  for (const ArgDecl& d : decls) {
    args.push_back(d.name);
    types.push_back(d.type);
  }
  const std::vector<ArgDecl> list(decls);
  for (size_t i = 0; i < list.size(); ++i) {
    const bool buffer = list[i].type.kind != ArgKind::value;
    const bool has_offset = buffer && i + 1 < list.size() && list[i + 1].type.kind == ArgKind::value &&
                            (std::string(list[i + 1].name) == std::string(list[i].name) + "Offset" ||
                             std::strcmp(list[i + 1].name, "offset") == 0);
    offset_arg.push_back(has_offset ? static_cast<int>(i + 1) : -1);
    extents.push_back(list[i].extent ? parse_extent(kernel, list[i].name, list[i].extent, args) : Extent{});
  }
}

const std::vector<KernelDecl>& kernel_table() {
#define DV_KERNEL(name, ...) {#name, {__VA_ARGS__}, &kernel_##name},
#define F32(...) ArgDecl(ArgKind::buffer, DType::f32, __VA_ARGS__)
#define I32(...) ArgDecl(ArgKind::buffer, DType::i32, __VA_ARGS__)
#define F32_OPT(...) ArgDecl(ArgKind::optional_buffer, DType::f32, __VA_ARGS__)
#define F32_LIST(...) ArgDecl(ArgKind::buffer_list, DType::f32, __VA_ARGS__)
#define ANY(...) ArgDecl(ArgKind::any_buffer, DType::f32, __VA_ARGS__)
  static const std::vector<KernelDecl> table = {
#include "addon/kernels.def"
  };
#undef ANY
#undef F32_LIST
#undef F32_OPT
#undef I32
#undef F32
#undef DV_KERNEL
  return table;
}

namespace {

// Runs a binding; any C++ exception becomes a JS Error naming the op.
template <typename Call>
Napi::Value call_guarded(const char* name, const Napi::CallbackInfo& info, Call&& call) {
  try {
    return call();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), std::string("diffvit.") + name + ": out of memory");
  } catch (const dv::Error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("diffvit.") + name + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), std::string("diffvit.") + name + ": unknown native error");
  }
}

// kernelTable(): { [kernel]: argument names }, for the test that checks lib/backend/kernel_names.ts.
Napi::Value kernel_table_object(const Napi::CallbackInfo& info) {
  Args a(info, "kernelTable", {});
  Napi::Object out = Napi::Object::New(info.Env());
  for (const KernelDecl& k : kernel_table()) {
    Napi::Array args = Napi::Array::New(info.Env(), k.args.size());
    for (uint32_t i = 0; i < k.args.size(); ++i) args.Set(i, k.args[i]);
    out.Set(k.name, args);
  }
  return out;
}

// Argument names that are sizes, in any kernel: a kernel call's NVTX range carries those of its
// arguments with integer values (or arrays of integers) as its message, "m=64 n=128 k=32",
// "shape=[2,3,4]". One list for every kernel (no per-kernel code): a new kernel whose sizes have
// new names adds them here. Offsets, strides, leading dimensions, seeds and scalars stay out.
constexpr const char* kShapeArgs[] = {
    "batch", "heads", "nq", "nk", "d", "m", "n", "k", "rows", "cols", "dim", "tokens", "outer", "r", "inner",
    "channels", "height", "width", "planes", "per", "inFeatures", "outFeatures", "inH", "inW", "outH", "outW",
    "kernelH", "kernelW", "shape", "indicesShape", "counts",
};

// What a kernel's range needs: its registered name and which of its arguments are sizes.
struct KernelTrace {
  trace::Name name;
  std::vector<int> shape_args;
};

KernelTrace kernel_trace(const KernelDecl& k) {
  KernelTrace t{trace::name(k.name), {}};
  for (int i = 0; i < static_cast<int>(k.args.size()); ++i) {
    for (const char* s : kShapeArgs) {
      if (std::strcmp(k.args[i], s) == 0) t.shape_args.push_back(i);
    }
  }
  return t;
}

// Appends " name=<v>" for an integer value, " name=[a,b,...]" for an array of integers (the first
// 8, then the count); anything else (a buffer, a fraction) adds nothing.
void append_shape_arg(std::string& out, const char* name, Napi::Value v) {
  auto integer = [](Napi::Value x, long long* value) {
    if (!x.IsNumber()) return false;
    const double d = x.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::trunc(d) || std::fabs(d) > 9007199254740992.0) return false;
    *value = static_cast<long long>(d);
    return true;
  };
  long long value = 0;
  std::string text;
  if (integer(v, &value)) {
    text = std::to_string(value);
  } else if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    const uint32_t n = a.Length();
    text = "[";
    for (uint32_t i = 0; i < n && i < 8; ++i) {
      if (!integer(a.Get(i), &value)) return;
      text += (i ? "," : "") + std::to_string(value);
    }
    if (n > 8) text += ",... " + std::to_string(n) + " in all";
    text += "]";
  } else {
    return;
  }
  if (!out.empty()) out += ' ';
  out += name;
  out += '=';
  out += text;
}

// The message of a kernel call's range: its size arguments, read from the call itself (the values
// in order, or the one object of named arguments). Built only when a tool is attached.
std::string shape_message(const KernelDecl& k, const KernelTrace& t, const Napi::CallbackInfo& info, Args::Call call) {
  std::string out;
  const bool named = call == Args::Call::named && info.Length() == 1 && info[0].IsObject();
  for (int i : t.shape_args) {
    Napi::Value v;
    if (call == Args::Call::positional) {
      if (static_cast<size_t>(i) >= info.Length()) continue;
      v = info[i];
    } else if (named) {
      v = info[0].As<Napi::Object>().Get(k.args[i]);
    } else {
      break;
    }
    append_shape_arg(out, k.args[i], v);
  }
  return out;
}

// A kernel call inside its NVTX range (the range closes when the call returns or throws). Out of
// line, so that the untraced path stays as it was: one load and one branch more.
[[gnu::noinline]] Napi::Value traced_call(const KernelDecl& k, const KernelTrace& t, const Napi::CallbackInfo& info, Args::Call call) {
  trace::Range range(t.name, shape_message(k, t, info, call).c_str());
  Args a(info, k, call);
  Napi::Value result = k.fn(info, a);
  a.check_extents();
  return result;
}

// A kernel's JS function. The checked entry reads one object by name (Args::Call::named). Reading
// twenty keys through Node-API costs ~3 us a call (a string made and looked up per key, and the
// key list for the unknown-key check), 4 % of the default model's training step; so the exported
// function is a small JS wrapper, compiled here from kernels.def's names, that checks the keys
// in JS and passes the values in order to a positional entry, and hands every other call (an
// unknown or inherited key, a missing one, no object) to the checked entry for its error.
// Both entries open the call's NVTX range (trace.h) when a tool is attached: one branch otherwise.
Napi::Value kernel_function(Napi::Env env, const KernelDecl& k, const KernelTrace& t) {
  const KernelDecl* decl = &k;      // the table is static: the pointer outlives the addon
  const KernelTrace* tr = &t;       // so is the trace table (kernel_traces())
  auto entry = [decl, tr](Args::Call call) {
    return [decl, tr, call](const Napi::CallbackInfo& info) {
      return call_guarded(decl->name, info, [&] {
        if (__builtin_expect(trace::enabled(), 0)) return traced_call(*decl, *tr, info, call);
        Args a(info, *decl, call);
        Napi::Value result = decl->fn(info, a);
        a.check_extents();  // a call that computed nothing is still checked
        return result;
      });
    };
  };
  Napi::Function named = Napi::Function::New(env, entry(Args::Call::named), k.name);
  Napi::Function positional = Napi::Function::New(env, entry(Args::Call::positional), k.name);
  std::string known, values;
  for (const char* arg : k.args) {
    known += std::string(known.empty() ? "" : ", ") + arg + ": 1";
    values += std::string(values.empty() ? "" : ", ") + "args." + arg;
  }
  const std::string source = "(function (positional, named) {\n"
                             "  const known = { __proto__: null, " + known + " };\n"
                             "  return function " + std::string(k.name) + "(args) {\n"
                             "    if (arguments.length === 1 && typeof args === 'object' && args !== null) {\n"
                             "      let n = 0;\n"
                             "      for (const key in args) { if (known[key] !== 1) return named(args); n++; }\n"
                             "      if (n === " + std::to_string(k.args.size()) + ") return positional(" + values + ");\n"
                             "    }\n"
                             "    return named.apply(undefined, arguments);\n"
                             "  };\n"
                             "})";
  napi_value script = Napi::String::New(env, source), factory = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_run_script(env, script, &factory), Napi::Value());
  return Napi::Function(env, factory).Call({positional, named});
}

// One KernelTrace per kernel of kernel_table(), in its order; built once, after trace::init().
const std::vector<KernelTrace>& kernel_traces() {
  static const std::vector<KernelTrace> traces = [] {
    std::vector<KernelTrace> out;
    for (const KernelDecl& k : kernel_table()) out.push_back(kernel_trace(k));
    return out;
  }();
  return traces;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  trace::init();  // decides once whether a profiler is attached (before any kernel or pool thread)
  BufferObject::Init(env, exports);
  for (const Binding& b : bindings()) {
    Binding copy = b;
    exports.Set(b.name, Napi::Function::New(
                            env,
                            [copy](const Napi::CallbackInfo& info) {
                              return call_guarded(copy.name, info, [&] { return copy.fn(info); });
                            },
                            b.name));
  }
  const std::vector<KernelTrace>& traces = kernel_traces();
  for (size_t i = 0; i < kernel_table().size(); ++i) {
    const KernelDecl& k = kernel_table()[i];
    exports.Set(k.name, kernel_function(env, k, traces[i]));
  }
  exports.Set("kernelTable", Napi::Function::New(
                                 env,
                                 [](const Napi::CallbackInfo& info) {
                                   return call_guarded("kernelTable", info, [&] { return kernel_table_object(info); });
                                 },
                                 "kernelTable"));
  return exports;
}

}  // namespace dv::addon

static Napi::Object InitDiffvit(Napi::Env env, Napi::Object exports) { return dv::addon::Init(env, exports); }
NODE_API_MODULE(diffvit, InitDiffvit)
