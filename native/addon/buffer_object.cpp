#include "addon/buffer_object.h"

#include <cstring>

#include "addon/args.h"
#include "core/errors.h"
#if DV_CUDA
#include "cuda/runtime.h"
#endif

namespace dv::addon {
namespace {
// Set on every object the NativeBuffer constructor initialises. `instanceof` can be forged from JS
// (Object.create(NativeBuffer.prototype), a Proxy, Symbol.hasInstance); a type tag cannot, and
// only tagged objects are ever unwrapped.
constexpr napi_type_tag kBufferTag = {0x6469666676697442ULL, 0x7566666572546167ULL};

BufferObject* unwrap_tagged(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  bool tagged = false;
  if (napi_check_object_type_tag(value.Env(), value, &kBufferTag, &tagged) != napi_ok || !tagged) return nullptr;
  void* raw = nullptr;
  if (napi_unwrap(value.Env(), value, &raw) != napi_ok) return nullptr;
  return static_cast<BufferObject*>(raw);
}

// The receiver of an accessor, or a JS error naming it.
BufferObject& self_of(const Napi::CallbackInfo& info, const char* accessor) {
  BufferObject* self = unwrap_tagged(info.This());
  if (!self)
    throw Napi::Error::New(info.Env(), std::string("diffvit.NativeBuffer.") + accessor +
                                           ": argument 'this' expected a NativeBuffer, received " + describe(info.This()));
  return *self;
}
}  // namespace

void BufferObject::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeBuffer",
                                   {
                                       InstanceMethod<&BufferObject::Dispose>("dispose"),
                                       InstanceMethod<&BufferObject::Read>("read"),
                                       InstanceMethod<&BufferObject::Write>("write"),
                                   });
  cls.Get("prototype").As<Napi::Object>().DefineProperties({
      Napi::PropertyDescriptor::Accessor<&BufferObject::Disposed>("disposed"),
      Napi::PropertyDescriptor::Accessor<&BufferObject::Numel>("numel"),
      Napi::PropertyDescriptor::Accessor<&BufferObject::DTypeName>("dtype"),
      Napi::PropertyDescriptor::Accessor<&BufferObject::DeviceName>("device"),
  });
  // Per env (the addon loads once per JS thread: the main one and each worker_thread), never a
  // global: each env's reference is freed with that env.
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(cls)));
  exports.Set("NativeBuffer", cls);
}

Buffer* BufferObject::From(Napi::Value value) {
  BufferObject* self = unwrap_tagged(value);
  return self && self->buffer_ ? self->buffer_.get() : nullptr;
}

// new NativeBuffer(device: 'cpu', dtype: 'float32'|'int32', numel)
BufferObject::BufferObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BufferObject>(info) {
  try {
    Args a(info, "NativeBuffer", {"device", "dtype", "numel"});
    const bool cuda = a.choice(0, {"cpu", "cuda"}) == 1;
    DType dtype = a.choice(1, {"float32", "int32"}) == 0 ? DType::f32 : DType::i32;
    int64_t numel = a.integer(2, 0, int64_t(1) << 40);
#if DV_CUDA
    Allocator& allocator = cuda ? cuda::device_allocator() : cpu_allocator();
#else
    if (cuda) a.fail(0, "'cpu' (this build has no CUDA backend)", "'cuda'");
    Allocator& allocator = cpu_allocator();
#endif
    buffer_ = std::make_unique<Buffer>(allocator, dtype, numel);
    CountExternal(info.Env(), static_cast<int64_t>(buffer_->bytes()));
    Napi::Object self = info.This().As<Napi::Object>();
    self.TypeTag(&kBufferTag);
    // An own data property (the prototype's accessor serves foreign receivers): the kernel
    // dispatch in lib/backend reads every argument's device, and a plain property costs no call.
    self.DefineProperty(Napi::PropertyDescriptor::Value("device", Napi::String::New(info.Env(), cuda ? "cuda:0" : "cpu"), napi_enumerable));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

namespace {
// V8 is told about native memory so that tensors nobody disposed are still collected when memory
// grows: it collects once the figure it is given has grown by 64 MB since its last full
// collection. Telling it of every allocation and disposal made it collect every training step (a
// step allocates and disposes hundreds of MB): with iuvit-t/4 that cost 40 ms of a 320 ms bf16
// step, incremental marking run from the allocations and collector threads competing with the
// kernels for the cores. The figure for this thread's (this isolate's) NativeBuffers is instead
// the high-water mark of their live bytes plus all the bytes the collector has freed: it never
// falls. Disposed churn below the mark leaves it alone; every byte that leaks raises it once, so a
// leak still brings a collection every 64 MB, as before.
thread_local int64_t t_live_bytes = 0, t_collected_bytes = 0, t_reported_bytes = 0;
}  // namespace

BufferObject::~BufferObject() {
  // Collected without dispose() (runs without a usable env: the next CountExternal reports it).
  t_live_bytes -= counted_bytes_;
  t_collected_bytes += counted_bytes_;
  buffer_.reset();
}

void BufferObject::CountExternal(Napi::Env env, int64_t delta) {
  counted_bytes_ += delta;
  t_live_bytes += delta;
  const int64_t figure = t_live_bytes + t_collected_bytes;
  if (figure > t_reported_bytes) {
    Napi::MemoryManagement::AdjustExternalMemory(env, figure - t_reported_bytes);
    t_reported_bytes = figure;
  }
}

Napi::Value BufferObject::Dispose(const Napi::CallbackInfo& info) {
  if (buffer_->alive()) {
    CountExternal(info.Env(), -counted_bytes_);
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
    const char* src = static_cast<const char*>(buffer_->data()) + offset * dtype_size(buffer_->dtype());
#if DV_CUDA
    if (buffer_->device() == Device::cuda)
      cuda::copy_to_host(ab.Data(), src, bytes, "NativeBuffer.read");
    else
#endif
      std::memcpy(ab.Data(), src, bytes);
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
    // napi_get_typedarray_info gives the data pointer for every backing store (a SharedArrayBuffer
    // too, where TypedArray::ArrayBuffer().Data() fails).
    napi_typedarray_type t;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(info.Env(), v, &t, &length, &data, nullptr, nullptr) != napi_ok)
      a.fail(1, want, describe(v));
    if ((f32 && t != napi_float32_array) || (!f32 && t != napi_int32_array)) a.fail(1, want, "another typed array");
    int64_t count = static_cast<int64_t>(length);
    a.require_extent(0, *buffer_, offset, count);
    if (count == 0) return info.Env().Undefined();
    const char* src = static_cast<const char*>(data);
    char* dst = static_cast<char*>(buffer_->data()) + offset * 4;
#if DV_CUDA
    if (buffer_->device() == Device::cuda)
      cuda::copy_from_host(dst, src, count * 4, "NativeBuffer.write");
    else
#endif
      std::memcpy(dst, src, count * 4);
    return info.Env().Undefined();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Value BufferObject::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !self_of(info, "disposed").buffer_->alive());
}
Napi::Value BufferObject::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(self_of(info, "numel").buffer_->numel()));
}
Napi::Value BufferObject::DTypeName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(self_of(info, "dtype").buffer_->dtype()));
}
Napi::Value BufferObject::DeviceName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(self_of(info, "device").buffer_->device()));
}

}  // namespace dv::addon
