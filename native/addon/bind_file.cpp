// File mapping for the dataset cache (lib/data/cache.ts): mapFile(path) maps a whole file and
// returns it as an external ArrayBuffer whose finaliser unmaps it. The loader then touches only the
// pages it reads, and every worker thread that maps the same file shares one page-cache copy.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>

#include "addon/args.h"
#include "addon/registry.h"
#include "core/errors.h"

namespace dv::addon {
namespace {

std::string errno_text(int e) { return std::generic_category().message(e); }

// Closes the descriptor on every path out of mapFile (the mapping outlives it).
struct FileDescriptor {
  int fd;
  explicit FileDescriptor(int f) : fd(f) {}
  ~FileDescriptor() {
    if (fd >= 0) close(fd);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
};

// One live mapping. Owned by this guard until the ArrayBuffer exists, then by its finaliser.
struct Mapping {
  void* data;
  size_t bytes;
  ~Mapping() {
    if (data) munmap(data, bytes);
  }
};

}  // namespace

// mapFile(path: string) -> ArrayBuffer over the file's bytes.
//
// The file is opened read-only and mapped MAP_PRIVATE with PROT_READ | PROT_WRITE: JS cannot make an
// ArrayBuffer immutable, and a stray write through a typed array over a PROT_READ mapping would kill
// the process with SIGSEGV. Copy-on-write pages take such a write privately instead; the file is
// never modified. Pages are read from disk (or the page cache) only when first touched.
DV_BINDING(mapFile) {
  Args a(info, "mapFile", {"path"});
  Napi::Value arg = info[0];
  if (!arg.IsString()) a.fail(0, "a file path string", describe(arg));
  const std::string path = arg.As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) a.fail(0, "a non-empty file path without NUL characters", "'" + path + "'");

  FileDescriptor file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd < 0) fail("mapFile", path + ": cannot open (" + errno_text(errno) + ")");
  struct stat st {};
  if (fstat(file.fd, &st) != 0) fail("mapFile", path + ": cannot stat (" + errno_text(errno) + ")");
  if (!S_ISREG(st.st_mode)) fail("mapFile", path + ": not a regular file");
  const auto bytes = static_cast<uint64_t>(st.st_size);
  // mmap rejects a zero length; an empty file is an empty buffer (the caller reports it as truncated).
  if (bytes == 0) return Napi::ArrayBuffer::New(info.Env(), 0);
  if (bytes > SIZE_MAX) fail("mapFile", path + ": " + std::to_string(bytes) + " bytes do not fit in this process's address space");

  Mapping guard{mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd, 0),
                static_cast<size_t>(bytes)};
  if (guard.data == MAP_FAILED) {
    guard.data = nullptr;
    fail("mapFile", path + ": mmap of " + std::to_string(bytes) + " bytes failed (" + errno_text(errno) + ")");
  }
  auto* owned = new Mapping{guard.data, guard.bytes};
  guard.data = nullptr;
  try {
    return Napi::ArrayBuffer::New(
        info.Env(), owned->data, owned->bytes, [](Napi::Env, void*, Mapping* m) { delete m; }, owned);
  } catch (...) {
    delete owned;  // not handed over: the finaliser will never run
    throw;
  }
}

}  // namespace dv::addon
