#include "addon/buffer_object.h"

#include <cstring>

#include "addon/args.h"
#include "core/errors.h"

namespace dv::addon {
namespace {
Napi::FunctionReference* g_constructor = nullptr;  // owned by the env's instance data
}

void BufferObject::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeBuffer",
                                   {
                                       InstanceMethod<&BufferObject::Dispose>("dispose"),
                                       InstanceMethod<&BufferObject::Read>("read"),
                                       InstanceMethod<&BufferObject::Write>("write"),
                                       InstanceAccessor<&BufferObject::Disposed>("disposed"),
                                       InstanceAccessor<&BufferObject::Numel>("numel"),
                                       InstanceAccessor<&BufferObject::DTypeName>("dtype"),
                                       InstanceAccessor<&BufferObject::DeviceName>("device"),
                                   });
  g_constructor = new Napi::FunctionReference(Napi::Persistent(cls));
  env.SetInstanceData<Napi::FunctionReference>(g_constructor);
  exports.Set("NativeBuffer", cls);
}

Buffer* BufferObject::From(Napi::Value value) {
  if (!g_constructor || !value.IsObject()) return nullptr;
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.InstanceOf(g_constructor->Value())) return nullptr;
  BufferObject* self = Unwrap(obj);
  return self && self->buffer_ ? self->buffer_.get() : nullptr;
}

// new NativeBuffer(device: 'cpu', dtype: 'float32'|'int32', numel)
BufferObject::BufferObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BufferObject>(info) {
  try {
    Args a(info, "NativeBuffer", {"device", "dtype", "numel"});
    a.choice(0, {"cpu"});
    DType dtype = a.choice(1, {"float32", "int32"}) == 0 ? DType::f32 : DType::i32;
    int64_t numel = a.integer(2, 0, int64_t(1) << 40);
    buffer_ = std::make_unique<Buffer>(Device::cpu, dtype, numel);
    ReportExternal(info.Env(), static_cast<int64_t>(buffer_->bytes()));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

BufferObject::~BufferObject() {
  // The finaliser may run without a usable env; V8's external-memory count is only advisory.
  buffer_.reset();
}

void BufferObject::ReportExternal(Napi::Env env, int64_t delta) {
  reported_bytes_ += delta;
  Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

Napi::Value BufferObject::Dispose(const Napi::CallbackInfo& info) {
  if (buffer_->alive()) {
    ReportExternal(info.Env(), -reported_bytes_);
    buffer_->release();
  }
  return info.Env().Undefined();
}

// read(offset, count) -> Float32Array | Int32Array (a copy)
Napi::Value BufferObject::Read(const Napi::CallbackInfo& info) {
  try {
    Args a(info, "NativeBuffer.read", {"offset", "count"});
    if (!buffer_->alive()) a.fail("this", "a live NativeBuffer (not disposed)", "a disposed NativeBuffer");
    int64_t offset = a.integer(0), count = a.integer(1);
    a.require_extent(0, *buffer_, offset, count);
    size_t bytes = count * dtype_size(buffer_->dtype());
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), bytes);
    std::memcpy(ab.Data(), static_cast<char*>(buffer_->data()) + offset * dtype_size(buffer_->dtype()), bytes);
    if (buffer_->dtype() == DType::i32) return Napi::Int32Array::New(info.Env(), count, ab, 0);
    return Napi::Float32Array::New(info.Env(), count, ab, 0);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// write(offset, data: Float32Array | Int32Array matching the dtype)
Napi::Value BufferObject::Write(const Napi::CallbackInfo& info) {
  try {
    Args a(info, "NativeBuffer.write", {"offset", "data"});
    if (!buffer_->alive()) a.fail("this", "a live NativeBuffer (not disposed)", "a disposed NativeBuffer");
    int64_t offset = a.integer(0);
    Napi::Value v = info[1];
    bool f32 = buffer_->dtype() == DType::f32;
    const char* want = f32 ? "a Float32Array" : "an Int32Array";
    if (!v.IsTypedArray()) a.fail(1, want, describe(v));
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    napi_typedarray_type t = ta.TypedArrayType();
    if ((f32 && t != napi_float32_array) || (!f32 && t != napi_int32_array)) a.fail(1, want, "another typed array");
    int64_t count = static_cast<int64_t>(ta.ElementLength());
    a.require_extent(0, *buffer_, offset, count);
    const char* src = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    std::memcpy(static_cast<char*>(buffer_->data()) + offset * 4, src, count * 4);
    return info.Env().Undefined();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Value BufferObject::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !buffer_->alive());
}
Napi::Value BufferObject::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(buffer_->numel()));
}
Napi::Value BufferObject::DTypeName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(buffer_->dtype()));
}
Napi::Value BufferObject::DeviceName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(buffer_->device()));
}

}  // namespace dv::addon
