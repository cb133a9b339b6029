// User-level execution contexts for the emulator's CUDA threads: a stack plus saved registers, and a
// switch between two contexts of the same OS thread. x86-64 uses a hand-written switch (callee-saved
// registers, MXCSR and the x87 control word); other architectures use ucontext. Under ThreadSanitizer
// each context is a TSan fiber, switched without implied synchronisation; under AddressSanitizer the
// stack switches are announced to ASan.
#pragma once
#include <cstddef>

#if defined(__x86_64__) && !defined(DV_EMU_FORCE_UCONTEXT)  // (the macro: test the fallback)
#define DV_EMU_ASM_SWITCH 1
#else
#define DV_EMU_ASM_SWITCH 0
#include <ucontext.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define DV_EMU_TSAN 1
#else
#define DV_EMU_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DV_EMU_ASAN 1
#else
#define DV_EMU_ASAN 0
#endif

namespace dv_emu::detail {

struct Context {
#if DV_EMU_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  char* stack = nullptr;  // mmap'ed region: guard page, then stack_size usable bytes
  size_t stack_size = 0;
  void* tsan_fiber = nullptr;
  void* asan_fake_stack = nullptr;
  const void* asan_bottom = nullptr;  // stack bounds as ASan wants them
  size_t asan_size = 0;
};

// Makes `ctx` describe the calling OS thread itself (the worker's scheduler context).
void context_adopt_thread(Context& ctx);
// (Re)starts `ctx` so that switching to it runs entry(arg) from the top of its stack; allocates the
// stack on first use (reused afterwards). entry must never return.
void context_start(Context& ctx, void (*entry)(void*), void* arg);
// Saves the current state into `from` and resumes `to`. Returns when something switches back to `from`.
void context_switch(Context& from, Context& to);
// Releases the stack (and TSan fiber) of a context made by context_start.
void context_free(Context& ctx);

// Under TSan, the emulator's own bookkeeping runs on fibers that TSan sees as unordered (switches
// carry no synchronisation), so it is hidden from TSan: emulator code runs inside an ignore region,
// which run_threads (scheduler.cpp) lifts only around the kernel body. Only kernel accesses count.
#if DV_EMU_TSAN
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
inline void tsan_ignore_begin() { __tsan_ignore_thread_begin(); }
inline void tsan_ignore_end() { __tsan_ignore_thread_end(); }
#else
inline void tsan_ignore_begin() {}
inline void tsan_ignore_end() {}
#endif
struct TsanIgnore {
  TsanIgnore() { tsan_ignore_begin(); }
  ~TsanIgnore() { tsan_ignore_end(); }
  TsanIgnore(const TsanIgnore&) = delete;
  TsanIgnore& operator=(const TsanIgnore&) = delete;
};

// Stack bytes per CUDA thread (env DIFFVIT_EMU_STACK_KB; default 256 KiB, 1 MiB under sanitizers).
size_t fiber_stack_bytes();

}  // namespace dv_emu::detail
