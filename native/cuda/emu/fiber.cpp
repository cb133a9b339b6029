// Context switching for the emulator's fibers (see fiber.h).
#include "cuda/emu/fiber.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#if DV_EMU_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#if DV_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if DV_EMU_ASM_SWITCH
// dv_emu_ctx_switch(void** save_sp, void* new_sp): pushes the callee-saved registers and the FP
// control state on the current stack, stores rsp in *save_sp, loads new_sp and pops the same frame
// from there. Everything else is caller-saved under the SysV ABI, so this is all a switch needs.
// dv_emu_ctx_boot is where a fresh stack's first switch "returns" to: it calls r13(r12).
asm(R"(
  .text
  .p2align 4
  .globl dv_emu_ctx_switch
  .hidden dv_emu_ctx_switch
  .type dv_emu_ctx_switch, @function
dv_emu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size dv_emu_ctx_switch, .-dv_emu_ctx_switch

  .p2align 4
  .globl dv_emu_ctx_boot
  .hidden dv_emu_ctx_boot
  .type dv_emu_ctx_boot, @function
dv_emu_ctx_boot:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size dv_emu_ctx_boot, .-dv_emu_ctx_boot
)");
extern "C" void dv_emu_ctx_switch(void** save_sp, void* new_sp);
extern "C" void dv_emu_ctx_boot();
#endif

namespace dv_emu::detail {
namespace {

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

struct Boot {  // what a fresh context runs
  void (*entry)(void*);
  void* arg;
};

// First code on a fresh stack: finish the sanitizer handshake, then run the entry (never returns).
[[noreturn]] void boot(Context* ctx) {
  tsan_ignore_begin();  // a fresh fiber starts in emulator code (see fiber.h)
#if DV_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  // The Boot record sits at the top of the context's own stack.
  Boot* b = reinterpret_cast<Boot*>(ctx->stack + page_size() + ctx->stack_size - sizeof(Boot) - 16);
  b->entry(b->arg);
  std::abort();  // entries loop forever; returning would fall off the stack
}
#if DV_EMU_ASM_SWITCH
void boot_thunk(void* ctx) { boot(static_cast<Context*>(ctx)); }
#else
void boot_ucontext(unsigned lo, unsigned hi) {
  boot(reinterpret_cast<Context*>((static_cast<uintptr_t>(hi) << 32) | lo));
}
#endif

}  // namespace

size_t fiber_stack_bytes() {
  static const size_t bytes = [] {
#if DV_EMU_TSAN || DV_EMU_ASAN
    size_t kb = 1024;
#else
    size_t kb = 256;
#endif
    if (const char* e = std::getenv("DIFFVIT_EMU_STACK_KB")) {
      long v = std::strtol(e, nullptr, 10);
      if (v >= 16) kb = static_cast<size_t>(v);
    }
    size_t p = page_size();
    return (kb * 1024 + p - 1) / p * p;
  }();
  return bytes;
}

void context_adopt_thread(Context& ctx) {
#if DV_EMU_TSAN
  ctx.tsan_fiber = __tsan_get_current_fiber();
#endif
#if DV_EMU_ASAN
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    size_t size = 0;
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    ctx.asan_bottom = addr;
    ctx.asan_size = size;
  }
#endif
  (void)ctx;
}

void context_start(Context& ctx, void (*entry)(void*), void* arg) {
  const size_t guard = page_size();
  if (!ctx.stack) {
    ctx.stack_size = fiber_stack_bytes();
    void* m = mmap(nullptr, guard + ctx.stack_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    mprotect(m, guard, PROT_NONE);  // overflow faults instead of corrupting the neighbour
    ctx.stack = static_cast<char*>(m);
  }
  char* top = ctx.stack + guard + ctx.stack_size;
#if DV_EMU_ASAN
  __asan_unpoison_memory_region(ctx.stack + guard, ctx.stack_size);  // frames of an abandoned run
  ctx.asan_bottom = ctx.stack + guard;
  ctx.asan_size = ctx.stack_size;
  ctx.asan_fake_stack = nullptr;
#endif
#if DV_EMU_TSAN
  // A context restarted after an abandoned run gets a fresh TSan identity (its shadow call stack
  // still holds the abandoned frames). The old one is not destroyed: it stopped inside emulator code,
  // in an ignore region, and TSan reports fibers destroyed with ignores enabled; the leak is small
  // and only follows failed launches. A new fiber inherits its creator's clock, so callers create
  // fibers from the worker's own context, before the block's threads run.
  ctx.tsan_fiber = __tsan_create_fiber(0);
#endif
  Boot* b = reinterpret_cast<Boot*>(top - sizeof(Boot) - 16);
  b->entry = entry;
  b->arg = arg;
  uintptr_t t = reinterpret_cast<uintptr_t>(b) & ~uintptr_t{15};  // 16-aligned, below the Boot record
#if DV_EMU_ASM_SWITCH
  // The frame dv_emu_ctx_switch pops: [mxcsr|fpucw][r15][r14][r13][r12][rbx][rbp][return address].
  // After its `ret` rsp == t (16-aligned), so dv_emu_ctx_boot's call enters boot_thunk ABI-aligned.
  uint64_t* f = reinterpret_cast<uint64_t*>(t) - 8;
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  f[0] = static_cast<uint64_t>(mxcsr) | (static_cast<uint64_t>(fpucw) << 32);
  f[1] = 0;                                          // r15
  f[2] = 0;                                          // r14
  f[3] = reinterpret_cast<uint64_t>(&boot_thunk);    // r13: function
  f[4] = reinterpret_cast<uint64_t>(&ctx);           // r12: argument
  f[5] = 0;                                          // rbx
  f[6] = 0;                                          // rbp
  f[7] = reinterpret_cast<uint64_t>(&dv_emu_ctx_boot);
  ctx.sp = f;
#else
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = ctx.stack + guard;
  ctx.uc.uc_stack.ss_size = static_cast<size_t>(reinterpret_cast<char*>(t) - (ctx.stack + guard));
  ctx.uc.uc_link = nullptr;
  uintptr_t p = reinterpret_cast<uintptr_t>(&ctx);
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&boot_ucontext), 2, static_cast<unsigned>(p & 0xffffffffu),
              static_cast<unsigned>(p >> 32));
#endif
}

void context_switch(Context& from, Context& to) {
#if DV_EMU_ASAN
  __sanitizer_start_switch_fiber(&from.asan_fake_stack, to.asan_bottom, to.asan_size);
#endif
#if DV_EMU_TSAN
  // CUDA's ordering is expressed explicitly (scheduler.cpp); a switch itself orders nothing.
  __tsan_switch_to_fiber(to.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#if DV_EMU_ASM_SWITCH
  dv_emu_ctx_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
#if DV_EMU_ASAN
  __sanitizer_finish_switch_fiber(from.asan_fake_stack, nullptr, nullptr);
#endif
}

void context_free(Context& ctx) {
  // (The TSan fiber is left alone: see context_start.)
  ctx.tsan_fiber = nullptr;
  if (ctx.stack) munmap(ctx.stack, page_size() + ctx.stack_size);
  ctx.stack = nullptr;
}

}  // namespace dv_emu::detail
