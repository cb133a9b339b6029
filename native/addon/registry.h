// Each binding file registers its entry points with DV_BINDING; module.cpp exports them all and
// turns every C++ exception into a JS Error, so a binding only validates and calls its kernel.
#pragma once
#include <napi.h>

#include <vector>

namespace dv::addon {

using BindingFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct Binding {
  const char* name;
  BindingFn fn;
};
std::vector<Binding>& bindings();

struct RegisterBinding {
  RegisterBinding(const char* name, BindingFn fn) { bindings().push_back({name, fn}); }
};

}  // namespace dv::addon

#define DV_BINDING(name)                                                                   \
  static Napi::Value binding_##name(const Napi::CallbackInfo& info);                       \
  static ::dv::addon::RegisterBinding register_##name(#name, &binding_##name);            \
  static Napi::Value binding_##name(const Napi::CallbackInfo& info)
