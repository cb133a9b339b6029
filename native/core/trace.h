// NVTX3 ranges for profilers (Nsight Systems, or native/tools/nvtx_recorder.cpp): one range per
// kernel call (module.cpp), phase ranges pushed from JS (bind_trace.cpp), named pool threads.
//
// Header-only NVTX3 is compiled in when CMake finds nvtx3/nvToolsExt.h (DV_NVTX=1; DIFFVIT_NVTX=
// AUTO|ON|OFF); without it every function here is an inline no-op and enabled() is a constant
// false. With it, whether a tool is attached is decided once, by init() when the addon loads: NVTX
// loads the injection library named by NVTX_INJECTION64_PATH (nsys sets it), and a tool is
// attached when that library accepts the "diffvit" domain. Until then and without a tool,
// enabled() is false and a Range costs one predictable branch; callers build range messages only
// when enabled() is true.
//
// Every range is pushed in the "diffvit" domain. Its text is "<name>" or "<name> <message>" (what
// nsys shows, e.g. "gemm m=64 n=128 k=32"). A Name (a kernel's, or an interned phase name) is
// also an NVTX registered string and an NVTX category of the domain named after it: ranges pushed
// by Name carry that category, so a tool can split the text back into name and message.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

namespace dv::trace {

// A range name registered with the tool (see name()). `text` must outlive the Name.
struct Name {
  const char* text = "";
  const void* handle = nullptr;  // nvtxStringHandle_t, or null (no tool, or not registered)
  uint32_t category = 0;         // the domain's category named `text`, or 0
};

#ifdef DV_NVTX

namespace detail {
extern std::atomic<bool> g_enabled;
}

// NVTX compiled into this build.
constexpr bool compiled() { return true; }
// Decides once whether a tool is attached (idempotent, thread-safe). The addon calls it on load.
void init();
// A tool is attached: ranges reach it. False before init().
inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }

// Registers `text` (a string that lives as long as the process, e.g. a kernel's name) as a range
// name; without a tool, a Name holding only the text.
Name name(const char* text);
// As name(), for a name that is not static (a phase name from JS): registered once per distinct
// text and kept for the process. False once kMaxInterned texts are kept: push the text instead.
constexpr size_t kMaxInterned = 4096;
bool intern(const std::string& text, Name* out);

// Opens a range on the calling thread: "<name>" or "<name> <message>" (message may be null or
// empty). No-ops when !enabled().
void push(const char* name, const char* message = nullptr);
void push(const Name& name, const char* message = nullptr);
// Closes the calling thread's innermost range.
void pop();

#else

constexpr bool compiled() { return false; }
inline void init() {}
constexpr bool enabled() { return false; }
inline Name name(const char* text) { return Name{text}; }
inline bool intern(const std::string&, Name*) { return false; }
inline void push(const char*, const char* = nullptr) {}
inline void push(const Name&, const char* = nullptr) {}
inline void pop() {}

#endif

// Names the calling OS thread (pthread_setname_np; at most 15 characters are kept) and, when a
// tool is attached, names it for the tool (nvtxNameOsThreadA).
void name_thread(const char* name);

// A range open for the scope; opened only if a tool is attached when it is constructed.
class Range {
 public:
  explicit Range(const char* name, const char* message = nullptr) : active_(enabled()) {
    if (active_) push(name, message);
  }
  explicit Range(const Name& name, const char* message = nullptr) : active_(enabled()) {
    if (active_) push(name, message);
  }
  ~Range() {
    if (active_) pop();
  }
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

 private:
  bool active_;
};

}  // namespace dv::trace
