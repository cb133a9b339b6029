// JS class `NativeBuffer`: owns one dv::Buffer. Tensors in lib/tensor are views over it.
#pragma once
#include <napi.h>

#include <memory>

#include "core/buffer.h"

namespace dv::addon {

class BufferObject : public Napi::ObjectWrap<BufferObject> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // The Buffer behind `value`, or nullptr when it is not a NativeBuffer.
  static Buffer* From(Napi::Value value);

  explicit BufferObject(const Napi::CallbackInfo& info);
  ~BufferObject() override;
  Buffer& buffer() { return *buffer_; }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  // Accessors are plain functions on the prototype (not InstanceAccessor, whose wrapper throws a
  // bare "Invalid argument" for a foreign `this`): each checks its receiver itself.
  static Napi::Value Disposed(const Napi::CallbackInfo& info);
  static Napi::Value Numel(const Napi::CallbackInfo& info);
  static Napi::Value DTypeName(const Napi::CallbackInfo& info);
  static Napi::Value DeviceName(const Napi::CallbackInfo& info);
  // Counts this buffer's bytes in (delta > 0) or out of (-counted_bytes_, on dispose) its thread's
  // live total, and tells V8 when that sets a new mark (see the .cpp).
  void CountExternal(Napi::Env env, int64_t delta);

  std::unique_ptr<Buffer> buffer_;
  int64_t counted_bytes_ = 0;
};

}  // namespace dv::addon
