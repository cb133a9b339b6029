// The addon's entry point: exports NativeBuffer and every DV_BINDING, each wrapped so that any C++
// exception (argument errors, bad_alloc, kernel errors) reaches JS as an Error and never aborts.
#include <napi.h>

#include <new>
#include <string>

#include "addon/buffer_object.h"
#include "addon/kernel_table.h"
#include "addon/registry.h"
#include "core/errors.h"

namespace dv::addon {

std::vector<Binding>& bindings() {
  static std::vector<Binding> list;
  return list;
}

const std::vector<KernelDecl>& kernel_table() {
#define DV_KERNEL(name, ...) {#name, {__VA_ARGS__}, &kernel_##name},
  static const std::vector<KernelDecl> table = {
#include "addon/kernels.def"
  };
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

// A kernel's JS function. The checked entry reads one object by name (Args::Call::named). Reading
// twenty keys through Node-API costs ~3 us a call (a string made and looked up per key, and the
// key list for the unknown-key check), 4 % of the default model's training step; so the exported
// function is a small JS wrapper, compiled here from kernels.def's names, that checks the keys
// in JS and passes the values in order to a positional entry, and hands every other call (an
// unknown or inherited key, a missing one, no object) to the checked entry for its error.
Napi::Value kernel_function(Napi::Env env, const KernelDecl& k) {
  const KernelDecl* decl = &k;  // the table is static: the pointer outlives the addon
  auto entry = [decl](Args::Call call) {
    return [decl, call](const Napi::CallbackInfo& info) {
      return call_guarded(decl->name, info, [&] {
        Args a(info, decl->name, decl->args, call);
        return decl->fn(info, a);
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

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
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
  for (const KernelDecl& k : kernel_table()) exports.Set(k.name, kernel_function(env, k));
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
