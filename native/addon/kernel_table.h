// The kernel table (kernels.def) turned into C++: one declaration per kernel binding, the list the
// addon registers, and each kernel's argument names. A kernel listed in kernels.def without a
// DV_KERNEL_IMPL fails to link; a DV_KERNEL_IMPL not listed there fails to compile.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <vector>

#include "addon/args.h"

namespace dv::addon {

// A kernel binding: `a` holds the call's named arguments in kernels.def order.
using KernelFn = Napi::Value (*)(const Napi::CallbackInfo& info, Args& a);

// One argument of kernels.def: a plain name is a value; F32("x") etc. (module.cpp) a buffer.
struct ArgDecl {
  ArgDecl(const char* n) : name(n) {}  // NOLINT: kernels.def writes values as bare names
  ArgDecl(const char* n, ArgKind kind, DType dtype) : name(n), type{kind, dtype} {}
  const char* name;
  ArgType type;
};

struct KernelDecl {
  KernelDecl(const char* name, std::initializer_list<ArgDecl> decls, KernelFn fn);
  const char* name;
  std::vector<const char*> args;  // the names, in order
  std::vector<ArgType> types;     // what each one is
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
