// The kernel table (kernels.def) turned into C++: one declaration per kernel binding, the list the
// addon registers, and each kernel's argument names. A kernel listed in kernels.def without a
// DV_KERNEL_IMPL fails to link; a DV_KERNEL_IMPL not listed there fails to compile.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <vector>

#include "addon/args.h"
#include "addon/extent.h"

namespace dv::addon {

// A kernel binding: `a` holds the call's named arguments in kernels.def order.
using KernelFn = Napi::Value (*)(const Napi::CallbackInfo& info, Args& a);

// One argument of kernels.def: a plain name is a value; F32("x", "extent") etc. (module.cpp) a buffer.
struct ArgDecl {
  ArgDecl(const char* n) : name(n) {}  // NOLINT: kernels.def writes values as bare names
  ArgDecl(ArgKind kind, DType dtype, const char* n, const char* e = nullptr) : name(n), type{kind, dtype}, extent(e) {}
  const char* name;
  ArgType type;
  const char* extent = nullptr;  // extent.h's text; null: the binding checks the extent
};

struct KernelDecl {
  KernelDecl(const char* name, std::initializer_list<ArgDecl> decls, KernelFn fn);
  const char* name;
  std::vector<const char*> args;  // the names, in order
  std::vector<ArgType> types;     // what each one is
  std::vector<Extent> extents;    // a buffer's declared extent (empty dims: none declared)
  std::vector<int> offset_arg;    // a buffer's offset argument ("<name>Offset" or "offset" after it), or -1
  KernelFn fn;
};

#define DV_KERNEL(name, ...) Napi::Value kernel_##name(const Napi::CallbackInfo& info, Args& a);
#include "addon/kernels.def"
#undef DV_KERNEL

// Every kernel of kernels.def, in its order.
const std::vector<KernelDecl>& kernel_table();

}  // namespace dv::addon

// Defines the binding of a kernel declared in kernels.def; `info` and `a` (its Args) are in scope.
#define DV_KERNEL_IMPL(name) Napi::Value kernel_##name(const Napi::CallbackInfo& info, Args& a)
