// Profiler ranges from JS (core/trace.h): phases such as a training step, its forward and backward,
// pushed in the same "diffvit" NVTX domain as the kernel ranges they enclose.
#include "addon/args.h"
#include "addon/registry.h"
#include "core/trace.h"

namespace dv::addon {

// profilerRangePush(name): opens a range on the calling thread. A no-op (the name unread) without
// an attached tool.
DV_BINDING(profilerRangePush) {
  Args a(info, "profilerRangePush", {"name"});
  if (!info[0].IsString()) a.fail(0, "a string", describe(info[0]));
  if (!trace::enabled()) return info.Env().Undefined();
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  trace::Name registered;
  if (trace::intern(name, &registered)) {
    trace::push(registered);
  } else {
    trace::push(name.c_str());
  }
  return info.Env().Undefined();
}

// profilerRangePop(): closes the calling thread's innermost range.
DV_BINDING(profilerRangePop) {
  Args a(info, "profilerRangePop", {});
  trace::pop();
  return info.Env().Undefined();
}

// profilerInfo(): { nvtx: NVTX compiled in, attached: a tool takes the ranges }.
DV_BINDING(profilerInfo) {
  Args a(info, "profilerInfo", {});
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("nvtx", trace::compiled());
  out.Set("attached", trace::enabled());
  return out;
}

}  // namespace dv::addon
