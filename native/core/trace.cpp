#include "core/trace.h"

#include <cstdio>

#if defined(__linux__) || defined(__APPLE__)
#include <pthread.h>
#endif

#ifdef DV_NVTX
#include <nvtx3/nvToolsExt.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace dv::trace {

#ifdef DV_NVTX

namespace detail {
std::atomic<bool> g_enabled{false};
}

namespace {

nvtxDomainHandle_t g_domain = nullptr;

// Registered names: the category counter and the interned texts (a Name points into its entry).
std::mutex g_names_mutex;
uint32_t g_next_category = 1;
struct Interned {
  std::string text;
  Name name;
};
std::unordered_map<std::string, std::unique_ptr<Interned>>& interned() {
  static auto* map = new std::unordered_map<std::string, std::unique_ptr<Interned>>();  // never freed: Names outlive exit
  return *map;
}

uint32_t os_thread_id() {
#if defined(__linux__)
  return static_cast<uint32_t>(syscall(SYS_gettid));
#elif defined(__APPLE__)
  uint64_t id = 0;
  pthread_threadid_np(nullptr, &id);
  return static_cast<uint32_t>(id);
#else
  return 0;
#endif
}

nvtxEventAttributes_t attributes(uint32_t category) {
  nvtxEventAttributes_t a;
  std::memset(&a, 0, sizeof a);
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.category = category;
  return a;
}

// Pushes the ASCII text "<name>" or "<name> <message>".
void push_text(const char* name, const char* message, uint32_t category) {
  nvtxEventAttributes_t a = attributes(category);
  a.messageType = NVTX_MESSAGE_TYPE_ASCII;
  if (message == nullptr || message[0] == '\0') {
    a.message.ascii = name;
    nvtxDomainRangePushEx(g_domain, &a);
    return;
  }
  char buf[512];
  const int len = std::snprintf(buf, sizeof buf, "%s %s", name, message);
  if (len >= 0 && static_cast<size_t>(len) < sizeof buf) {
    a.message.ascii = buf;
    nvtxDomainRangePushEx(g_domain, &a);
  } else {
    const std::string text = std::string(name) + " " + message;
    a.message.ascii = text.c_str();
    nvtxDomainRangePushEx(g_domain, &a);
  }
}

// A registered string and a category of the domain named `text`. Holds g_names_mutex.
Name register_locked(const char* text) {
  Name n{text};
  if (!enabled()) return n;
  n.handle = nvtxDomainRegisterStringA(g_domain, text);
  n.category = g_next_category++;
  nvtxDomainNameCategoryA(g_domain, n.category, text);
  return n;
}

}  // namespace

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    nvtxInitialize(nullptr);  // loads the injection library named by NVTX_INJECTION64_PATH, if any
    // A tool that takes domain ranges returns a handle; without one, NVTX's no-op returns null and
    // every range stays off.
    g_domain = nvtxDomainCreateA("diffvit");
    detail::g_enabled.store(g_domain != nullptr, std::memory_order_release);
  });
}

Name name(const char* text) {
  std::lock_guard<std::mutex> lk(g_names_mutex);
  return register_locked(text);
}

bool intern(const std::string& text, Name* out) {
  std::lock_guard<std::mutex> lk(g_names_mutex);
  auto& map = interned();
  auto it = map.find(text);
  if (it == map.end()) {
    if (map.size() >= kMaxInterned) return false;
    auto entry = std::make_unique<Interned>();
    entry->text = text;
    entry->name = register_locked(entry->text.c_str());
    it = map.emplace(text, std::move(entry)).first;
  }
  *out = it->second->name;
  return true;
}

void push(const char* name, const char* message) {
  if (!enabled()) return;
  push_text(name, message, 0);
}

void push(const Name& name, const char* message) {
  if (!enabled()) return;
  if (name.handle != nullptr && (message == nullptr || message[0] == '\0')) {
    nvtxEventAttributes_t a = attributes(name.category);
    a.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
    a.message.registered = static_cast<nvtxStringHandle_t>(const_cast<void*>(name.handle));
    nvtxDomainRangePushEx(g_domain, &a);
    return;
  }
  push_text(name.text, message, name.category);
}

void pop() {
  if (!enabled()) return;
  nvtxDomainRangePop(g_domain);
}

#endif  // DV_NVTX

void name_thread(const char* name) {
#if defined(__linux__)
  char buf[16];  // the kernel keeps 15 characters and the terminator
  std::snprintf(buf, sizeof buf, "%s", name);
  pthread_setname_np(pthread_self(), buf);
#elif defined(__APPLE__)
  pthread_setname_np(name);
#endif
#ifdef DV_NVTX
  if (enabled()) nvtxNameOsThreadA(os_thread_id(), name);
#endif
}

}  // namespace dv::trace
