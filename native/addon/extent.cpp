#include "addon/extent.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "addon/args.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

struct Parser {
  const char* kernel;
  const char* buffer;
  const char* text;
  const std::vector<const char*>& names;

  [[noreturn]] void bad(const std::string& why) const {
    throw std::logic_error(std::string("kernels.def: ") + kernel + "." + buffer + ": extent \"" + text + "\": " + why);
  }
  int arg(const std::string& name) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (name == names[i]) return static_cast<int>(i);
    bad("no argument '" + name + "'");
  }
  static int64_t literal(const std::string& s) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoll(s);
  }
  // NAME, NAME[INT], INT, each optionally "/INT".
  ExtentTerm term(std::string s) const {
    ExtentTerm t;
    if (const size_t slash = s.find('/'); slash != std::string::npos) {
      t.divisor = literal(s.substr(slash + 1));
      if (t.divisor <= 0) bad("'" + s + "': a positive literal divisor after '/'");
      s = s.substr(0, slash);
    }
    if (const int64_t v = literal(s); v >= 0) {
      t.literal = v;
      return t;
    }
    if (const size_t open = s.find('['); open != std::string::npos) {
      if (s.back() != ']') bad("'" + s + "': an index is NAME[INT]");
      t.index = static_cast<int>(literal(s.substr(open + 1, s.size() - open - 2)));
      if (t.index < 0) bad("'" + s + "': an index is NAME[INT]");
      s = s.substr(0, open);
    }
    t.arg = arg(s);
    return t;
  }
  // TERM or COND?TERM:TERM.
  ExtentAtom atom(const std::string& s) const {
    ExtentAtom a;
    const size_t q = s.find('?');
    if (q == std::string::npos) {
      a.then = term(s);
      return a;
    }
    const size_t colon = s.find(':', q);
    if (colon == std::string::npos) bad("'" + s + "': a choice is COND?A:B");
    a.cond = arg(s.substr(0, q));
    a.then = term(s.substr(q + 1, colon - q - 1));
    a.otherwise = term(s.substr(colon + 1));
    return a;
  }
  ExtentDim dim(const std::string& s) const {
    ExtentDim d;
    const size_t at = s.find('@');
    std::string size = s.substr(0, at);
    if (size.size() > 2 && size.compare(size.size() - 2, 2, "[]") == 0) {
      d.array = true;
      d.size.then.arg = arg(size.substr(0, size.size() - 2));
    } else {
      d.size = atom(size);
    }
    if (at == std::string::npos) return d;
    d.strided = true;
    std::string stride = s.substr(at + 1);
    const bool array_stride = stride.size() > 2 && stride.compare(stride.size() - 2, 2, "[]") == 0;
    if (array_stride != d.array) bad("'" + s + "': array sizes go with array strides (\"sizes[]@strides[]\")");
    if (d.array) d.stride.then.arg = arg(stride.substr(0, stride.size() - 2));
    else d.stride = atom(stride);
    return d;
  }
};

// Sizes and strides are at most 2^40, so (size - 1) * stride + span cannot overflow until the span
// itself is huge: checked anyway, saturating like strided_extent.
bool grow(int64_t size, int64_t stride, int64_t& span) {
  int64_t step;
  return !__builtin_mul_overflow(size - 1, stride, &step) && !__builtin_add_overflow(span, step, &span);
}

int64_t value(const ExtentTerm& t, Args& a) {
  if (t.arg < 0) return t.literal;
  int64_t v;
  if (t.index < 0) {
    v = a.integer(t.arg, 0, kMaxSize);
  } else {
    const std::vector<int64_t>& entries = a.dims(t.arg);
    if (t.index >= static_cast<int>(entries.size()))
      a.fail(t.arg, "an array of at least " + std::to_string(t.index + 1) + " integers",
             "an array of length " + std::to_string(entries.size()));
    v = entries[t.index];
  }
  return v / t.divisor;
}

int64_t value(const ExtentAtom& at, Args& a) {
  if (at.cond < 0) return value(at.then, a);
  return a.boolean(at.cond) ? value(at.then, a) : value(at.otherwise, a);
}
}  // namespace

Extent parse_extent(const char* kernel, const char* buffer, const char* text, const std::vector<const char*>& names) {
  const Parser p{kernel, buffer, text, names};
  Extent e;
  const std::string s = text;
  for (size_t start = 0; start < s.size();) {
    const size_t end = std::min(s.find(' ', start), s.size());
    if (end > start) e.dims.push_back(p.dim(s.substr(start, end - start)));
    start = end + 1;
  }
  if (e.dims.empty()) p.bad("no dims");
  return e;
}

int64_t evaluate_extent(const Extent& e, Args& a) {
  // Outermost dim last: a packed dim's stride is the span of the dims after it.
  int64_t span = 1;
  bool empty = false, overflow = false;
  auto add = [&](int64_t size, int64_t stride) {
    if (size == 0) empty = true;
    else if (!grow(size, stride, span)) overflow = true;
  };
  for (auto d = e.dims.rbegin(); d != e.dims.rend(); ++d) {
    if (d->array) {
      const std::vector<int64_t>& sizes = a.dims(d->size.then.arg);
      const std::vector<int64_t>* strides = nullptr;
      if (d->strided) {
        strides = &a.dims(d->stride.then.arg);
        if (strides->size() != sizes.size())
          a.fail(d->stride.then.arg,
                 std::to_string(sizes.size()) + " strides (one per dim of " + a.name(d->size.then.arg) + ")",
                 std::to_string(strides->size()));
      }
      for (size_t k = sizes.size(); k-- > 0;) add(sizes[k], strides ? (*strides)[k] : span);
    } else {
      const int64_t size = value(d->size, a);
      add(size, d->strided ? value(d->stride, a) : span);
    }
    if (overflow) span = INT64_MAX;
  }
  if (empty) return 0;
  return overflow ? INT64_MAX : span;
}

}  // namespace dv::addon
