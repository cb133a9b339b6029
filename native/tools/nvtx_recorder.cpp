// diffvit's NVTX tool: an NVTX injection library that writes every range, mark and thread name of
// the process to a file as JSON lines, so tests (test/nvtx.test.ts) and users without Nsight can
// see what diffvit's NVTX ranges (native/core/trace.h) report.
//
//   NVTX_INJECTION64_PATH=build/Release/libdiffvit_nvtx_recorder.so DIFFVIT_NVTX_LOG=/tmp/nvtx-%p.jsonl node train.js
//   (%p in the log's name: the process id)
//
// NVTX (header-only, in the application) dlopens the library named by NVTX_INJECTION64_PATH at its
// first call and calls InitializeInjectionNvtx2 with its export-table getter; we ask it for the
// CORE and CORE2 callback tables (nvtxDetail/nvtxTypes.h) and put our handlers in the slots of the
// calls we record; the others stay no-ops. Without DIFFVIT_NVTX_LOG, or if the file cannot be
// opened, initialization fails and NVTX stays off for the process.
//
// Lines (t: CLOCK_MONOTONIC ns; tid: the OS thread id; level: the range's nesting depth on its
// thread and domain, 0 outermost; domain "" for the calls without a domain):
//   {"ev":"init","pid":P,"t":T}
//   {"ev":"domain","domain":"diffvit","t":T}
//   {"ev":"push","domain":D,"name":N,"message":M,"text":X,"category":C,"level":L,"tid":I,"t":T}
//   {"ev":"pop","domain":D,"level":L,"tid":I,"t":T}
//   {"ev":"mark","domain":D,"name":N,"message":M,"text":X,"category":C,"tid":I,"t":T}
//   {"ev":"start","id":R,...as push without level} / {"ev":"end","id":R,"tid":I,"t":T}
//   {"ev":"thread","tid":I,"name":N,"by":I,"t":T}
// X is the range's text; when the event's category has a name (diffvit names one per range name)
// and X is that name, or that name, a space and more, N is the name and M the rest; otherwise N is
// X and M is "". A push also carries "payload" when the event has one.
//
// A thread's lines are written together when its outermost range closes (or 64 KiB pile up, or the
// thread or process ends), each batch with one write(2) to a file opened with O_APPEND: lines never
// interleave mid-line, a thread's lines are in order, lines of different threads are in the order
// of their batches (sort by t for one timeline), and a crash loses at most the open ranges' lines.
#define NVTX_NO_IMPL
#include <nvtx3/nvToolsExt.h>

#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

// The opaque handles NVTX hands back to the application are ours to define.
struct nvtxDomainRegistration_st {
  std::string name;
};
struct nvtxStringRegistration_st {
  std::string text;
};

namespace {

int g_fd = -1;
std::mutex g_mutex;  // guards the maps below
std::map<std::pair<const void*, uint32_t>, std::string> g_categories;  // (domain, category) -> name
uint64_t g_next_range_id = 1;


uint32_t os_thread_id() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

void write_all(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(g_fd, data.data() + done, data.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Each thread's lines are kept until its outermost range closes (or 64 KiB pile up, or the thread
// ends) and then written at once: one write(2) per outermost range instead of two per range.
struct ThreadLog {
  uint32_t tid = os_thread_id();
  std::unordered_map<const void*, int> depth;  // open ranges per domain
  int open = 0;                                // in all domains
  std::string lines;
  void flush() {
    if (!lines.empty() && g_fd >= 0) write_all(lines);
    lines.clear();
  }
  ~ThreadLog() { flush(); }
};
thread_local ThreadLog t_log;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}


void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void field(std::string& out, const char* key, const std::string& value) {
  out += ",\"";
  out += key;
  out += "\":";
  json_string(out, value);
}

void field(std::string& out, const char* key, uint64_t value) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
  out += ",\"";
  out += key;
  out += "\":";
  out.append(buf, end);
}

// Ends the line with the thread and the time and queues it on the thread's log, written when no
// range of the thread is open any more.
void emit(std::string& line) {
  ThreadLog& log = t_log;
  field(line, "tid", log.tid);
  field(line, "t", now_ns());
  line += "}\n";
  log.lines += line;
  if (log.open == 0 || log.lines.size() > (64u << 10)) log.flush();
}

// Writes a line now (init, domains, thread names).
void emit_now(std::string& line) {
  field(line, "tid", t_log.tid);
  field(line, "t", now_ns());
  line += "}\n";
  t_log.flush();
  write_all(line);
}

std::string narrow(const wchar_t* w) {
  std::string s;
  for (; w != nullptr && *w; ++w) s += (*w > 0 && *w < 0x80) ? static_cast<char>(*w) : '?';
  return s;
}

std::string domain_name(const void* domain) {
  return domain ? static_cast<const nvtxDomainRegistration_st*>(domain)->name : std::string();
}

// The event's text, name and message (see the header comment) and its payload, as fields.
void describe(std::string& line, const void* domain, const nvtxEventAttributes_t* a) {
  std::string text;
  uint32_t category = 0;
  if (a != nullptr) {
    category = a->category;
    switch (a->messageType) {
      case NVTX_MESSAGE_TYPE_ASCII: text = a->message.ascii ? a->message.ascii : ""; break;
      case NVTX_MESSAGE_TYPE_UNICODE: text = narrow(a->message.unicode); break;
      case NVTX_MESSAGE_TYPE_REGISTERED:
        if (a->message.registered) text = a->message.registered->text;
        break;
      default: break;
    }
  }
  std::string name = text, message;
  if (category != 0) {
    std::lock_guard<std::mutex> lk(g_mutex);
    auto it = g_categories.find({domain, category});
    if (it != g_categories.end()) {
      const std::string& c = it->second;
      if (text == c) {
        name = c;
      } else if (text.size() > c.size() && text.compare(0, c.size(), c) == 0 && text[c.size()] == ' ') {
        name = c;
        message = text.substr(c.size() + 1);
      }
    }
  }
  field(line, "domain", domain_name(domain));
  field(line, "name", name);
  field(line, "message", message);
  field(line, "text", text);
  field(line, "category", category);
  if (a != nullptr && a->payloadType != 0) {
    char buf[64] = "";
    switch (a->payloadType) {
      case NVTX_PAYLOAD_TYPE_UNSIGNED_INT64: std::snprintf(buf, sizeof buf, "%" PRIu64, a->payload.ullValue); break;
      case NVTX_PAYLOAD_TYPE_INT64: std::snprintf(buf, sizeof buf, "%" PRId64, a->payload.llValue); break;
      case NVTX_PAYLOAD_TYPE_DOUBLE: std::snprintf(buf, sizeof buf, "%.17g", a->payload.dValue); break;
      case NVTX_PAYLOAD_TYPE_UNSIGNED_INT32: std::snprintf(buf, sizeof buf, "%u", a->payload.uiValue); break;
      case NVTX_PAYLOAD_TYPE_INT32: std::snprintf(buf, sizeof buf, "%d", a->payload.iValue); break;
      case NVTX_PAYLOAD_TYPE_FLOAT: std::snprintf(buf, sizeof buf, "%.9g", a->payload.fValue); break;
      default: break;
    }
    if (buf[0]) {
      line += ",\"payload\":";
      line += buf;
    }
  }
}

nvtxEventAttributes_t ascii_attributes(const char* message) {
  nvtxEventAttributes_t a;
  std::memset(&a, 0, sizeof a);
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.messageType = NVTX_MESSAGE_TYPE_ASCII;
  a.message.ascii = message;
  return a;
}

// ---- handlers (C callbacks: nothing may throw out of them) ----

int push(const void* domain, const nvtxEventAttributes_t* a) {
  try {
    ThreadLog& log = t_log;
    const int level = log.depth[domain]++;
    ++log.open;
    std::string line = "{\"ev\":\"push\"";
    describe(line, domain, a);
    field(line, "level", static_cast<uint64_t>(level));
    emit(line);
    return level;
  } catch (...) {
    return -1;
  }
}

int pop(const void* domain) {
  try {
    ThreadLog& log = t_log;
    int& depth = log.depth[domain];
    if (depth == 0) {
      std::string line = "{\"ev\":\"pop\"";
      field(line, "domain", domain_name(domain));
      line += ",\"level\":-1";
      emit(line);
      return -1;
    }
    const int level = --depth;
    --log.open;
    std::string line = "{\"ev\":\"pop\"";
    field(line, "domain", domain_name(domain));
    field(line, "level", static_cast<uint64_t>(level));
    emit(line);
    return level;
  } catch (...) {
    return -1;
  }
}

void mark(const void* domain, const nvtxEventAttributes_t* a) {
  try {
    std::string line = "{\"ev\":\"mark\"";
    describe(line, domain, a);
    emit(line);
  } catch (...) {
  }
}

nvtxRangeId_t start(const void* domain, const nvtxEventAttributes_t* a) {
  try {
    nvtxRangeId_t id;
    {
      std::lock_guard<std::mutex> lk(g_mutex);
      id = g_next_range_id++;
    }
    std::string line = "{\"ev\":\"start\"";
    field(line, "id", id);
    describe(line, domain, a);
    emit(line);
    return id;
  } catch (...) {
    return 0;
  }
}

void end(nvtxRangeId_t id) {
  try {
    std::string line = "{\"ev\":\"end\"";
    field(line, "id", id);
    emit(line);
  } catch (...) {
  }
}

void name_category(const void* domain, uint32_t category, const char* name) {
  try {
    std::lock_guard<std::mutex> lk(g_mutex);
    g_categories[{domain, category}] = name ? name : "";
  } catch (...) {
  }
}

// Core (no domain).
void NVTX_API MarkEx(const nvtxEventAttributes_t* a) { mark(nullptr, a); }
void NVTX_API MarkA(const char* m) {
  const nvtxEventAttributes_t a = ascii_attributes(m);
  mark(nullptr, &a);
}
nvtxRangeId_t NVTX_API RangeStartEx(const nvtxEventAttributes_t* a) { return start(nullptr, a); }
nvtxRangeId_t NVTX_API RangeStartA(const char* m) {
  const nvtxEventAttributes_t a = ascii_attributes(m);
  return start(nullptr, &a);
}
void NVTX_API RangeEnd(nvtxRangeId_t id) { end(id); }
int NVTX_API RangePushEx(const nvtxEventAttributes_t* a) { return push(nullptr, a); }
int NVTX_API RangePushA(const char* m) {
  const nvtxEventAttributes_t a = ascii_attributes(m);
  return push(nullptr, &a);
}
int NVTX_API RangePop() { return pop(nullptr); }
void NVTX_API NameCategoryA(uint32_t category, const char* name) { name_category(nullptr, category, name); }
void NVTX_API NameOsThreadA(uint32_t tid, const char* name) {
  try {
    std::string line = "{\"ev\":\"thread\"";
    line += ",\"tid\":" + std::to_string(tid);
    field(line, "name", name ? name : "");
    line += ",\"by\":" + std::to_string(t_log.tid);
    field(line, "t", now_ns());
    line += "}\n";
    t_log.flush();
    write_all(line);
  } catch (...) {
  }
}

// Core2 (domains).
void NVTX_API DomainMarkEx(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) { mark(d, a); }
nvtxRangeId_t NVTX_API DomainRangeStartEx(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) { return start(d, a); }
void NVTX_API DomainRangeEnd(nvtxDomainHandle_t, nvtxRangeId_t id) { end(id); }
int NVTX_API DomainRangePushEx(nvtxDomainHandle_t d, const nvtxEventAttributes_t* a) { return push(d, a); }
int NVTX_API DomainRangePop(nvtxDomainHandle_t d) { return pop(d); }
void NVTX_API DomainNameCategoryA(nvtxDomainHandle_t d, uint32_t category, const char* name) { name_category(d, category, name); }
nvtxStringHandle_t NVTX_API DomainRegisterStringA(nvtxDomainHandle_t, const char* s) {
  try {
    return new nvtxStringRegistration_st{s ? s : ""};  // kept for the process, as NVTX requires
  } catch (...) {
    return nullptr;
  }
}
nvtxDomainHandle_t NVTX_API DomainCreateA(const char* name) {
  try {
    auto* d = new nvtxDomainRegistration_st{name ? name : ""};
    std::string line = "{\"ev\":\"domain\"";
    field(line, "domain", d->name);
    emit_now(line);
    return d;
  } catch (...) {
    return nullptr;
  }
}
void NVTX_API DomainDestroy(nvtxDomainHandle_t) {}  // handles stay valid: events may still name them
void NVTX_API Initialize(const void*) {}

template <typename Fn>
void install(NvtxFunctionTable table, unsigned size, unsigned id, Fn fn) {
  if (id < size && table[id] != nullptr) *table[id] = reinterpret_cast<NvtxFunctionPointer>(fn);
}

// Opens the log named by DIFFVIT_NVTX_LOG, with "%p" replaced by the process id.
bool open_log() {
  const char* pattern = std::getenv("DIFFVIT_NVTX_LOG");
  if (pattern == nullptr || pattern[0] == '\0') {
    std::fprintf(stderr, "diffvit nvtx recorder: DIFFVIT_NVTX_LOG is not set; not attaching\n");
    return false;
  }
  std::string path;
  for (const char* p = pattern; *p; ++p) {
    if (p[0] == '%' && p[1] == 'p') {
      path += std::to_string(getpid());
      ++p;
    } else {
      path += *p;
    }
  }
  g_fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (g_fd < 0) {
    std::fprintf(stderr, "diffvit nvtx recorder: cannot open %s (%s); not attaching\n", path.c_str(), std::strerror(errno));
    return false;
  }
  std::string line = "{\"ev\":\"init\"";
  field(line, "pid", static_cast<uint64_t>(getpid()));
  emit_now(line);
  return true;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int NVTX_API InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_export_table) {
  if (get_export_table == nullptr) return 0;
  const auto* callbacks = static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
  if (callbacks == nullptr || callbacks->struct_size < sizeof(NvtxExportTableCallbacks) || callbacks->GetModuleFunctionTable == nullptr) {
    return 0;
  }
  NvtxFunctionTable core = nullptr, core2 = nullptr;
  unsigned core_size = 0, core2_size = 0;
  if (!callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &core, &core_size) || core == nullptr) return 0;
  if (!callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE2, &core2, &core2_size) || core2 == nullptr) return 0;
  if (!open_log()) return 0;

  const auto* version = static_cast<const NvtxExportTableVersionInfo*>(get_export_table(NVTX_ETID_VERSIONINFO));
  if (version != nullptr && version->struct_size >= sizeof(NvtxExportTableVersionInfo) && version->SetInjectionNvtxVersion) {
    version->SetInjectionNvtxVersion(NVTX_VERSION);
  }

  install(core, core_size, NVTX_CBID_CORE_MarkEx, MarkEx);
  install(core, core_size, NVTX_CBID_CORE_MarkA, MarkA);
  install(core, core_size, NVTX_CBID_CORE_RangeStartEx, RangeStartEx);
  install(core, core_size, NVTX_CBID_CORE_RangeStartA, RangeStartA);
  install(core, core_size, NVTX_CBID_CORE_RangeEnd, RangeEnd);
  install(core, core_size, NVTX_CBID_CORE_RangePushEx, RangePushEx);
  install(core, core_size, NVTX_CBID_CORE_RangePushA, RangePushA);
  install(core, core_size, NVTX_CBID_CORE_RangePop, RangePop);
  install(core, core_size, NVTX_CBID_CORE_NameCategoryA, NameCategoryA);
  install(core, core_size, NVTX_CBID_CORE_NameOsThreadA, NameOsThreadA);

  install(core2, core2_size, NVTX_CBID_CORE2_DomainMarkEx, DomainMarkEx);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainRangeStartEx, DomainRangeStartEx);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainRangeEnd, DomainRangeEnd);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainRangePushEx, DomainRangePushEx);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainRangePop, DomainRangePop);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainNameCategoryA, DomainNameCategoryA);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainRegisterStringA, DomainRegisterStringA);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainCreateA, DomainCreateA);
  install(core2, core2_size, NVTX_CBID_CORE2_DomainDestroy, DomainDestroy);
  install(core2, core2_size, NVTX_CBID_CORE2_Initialize, Initialize);
  return 1;
}
