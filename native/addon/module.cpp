// The addon's entry point: exports NativeBuffer and every DV_BINDING, each wrapped so that any C++
// exception (argument errors, bad_alloc, kernel errors) reaches JS as an Error and never aborts.
#include <napi.h>

#include <new>
#include <string>

#include "addon/buffer_object.h"
#include "addon/registry.h"
#include "core/errors.h"

namespace dv::addon {

std::vector<Binding>& bindings() {
  static std::vector<Binding> list;
  return list;
}

namespace {

Napi::Value call_guarded(const Binding& b, const Napi::CallbackInfo& info) {
  try {
    return b.fn(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), std::string("diffvit.") + b.name + ": out of memory");
  } catch (const dv::Error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("diffvit.") + b.name + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), std::string("diffvit.") + b.name + ": unknown native error");
  }
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  BufferObject::Init(env, exports);
  for (const Binding& b : bindings()) {
    Binding copy = b;
    exports.Set(b.name, Napi::Function::New(
                            env, [copy](const Napi::CallbackInfo& info) { return call_guarded(copy, info); }, b.name));
  }
  return exports;
}

}  // namespace dv::addon

static Napi::Object InitDiffvit(Napi::Env env, Napi::Object exports) { return dv::addon::Init(env, exports); }
NODE_API_MODULE(diffvit, InitDiffvit)
