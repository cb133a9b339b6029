// Bindings for cpu/optim.h. Hyper-parameters are range-checked as torch.optim does, and the
// tensors updated in place must not overlap each other or the gradient.
#include <cmath>
#include <cstdio>
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "cpu/optim.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

struct Range {
  int arg;
  const char* name;
  const Buffer* buffer;
  int64_t offset;
};

// Fails when two of the n-element ranges share memory (the kernel reads and writes them in one pass).
void require_disjoint(Args& a, std::initializer_list<Range> ranges, int64_t n) {
  for (auto i = ranges.begin(); i != ranges.end(); ++i)
    for (auto j = i + 1; j != ranges.end(); ++j)
      if (i->buffer == j->buffer && i->offset < j->offset + n && j->offset < i->offset + n)
        a.fail(j->arg, std::string("memory not overlapping '") + i->name + "'",
               "a range overlapping it (offsets " + std::to_string(i->offset) + " and " + std::to_string(j->offset) +
                   ", " + std::to_string(n) + " elements each)");
}

// A finite number in [lo, hi).
double in_range(Args& a, int i, double lo, double hi, const char* expected) {
  double v = a.number(i);
  if (v < lo || v >= hi) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", v);
    a.fail(i, expected, buf);
  }
  return v;
}
}  // namespace

// adamw: one fused AdamW step; param, expAvg, expAvgSq in place
DV_KERNEL_IMPL(adamw) {
  Buffer& p = a.buffer(0, DType::f32);
  Buffer& g = a.buffer(2, DType::f32);
  Buffer& m = a.buffer(4, DType::f32);
  Buffer& v = a.buffer(6, DType::f32);
  int64_t po = a.integer(1), go = a.integer(3), mo = a.integer(5), vo = a.integer(7);
  int64_t n = a.integer(8, 0, kMaxSize);
  const double inf = INFINITY;
  double lr = in_range(a, 9, 0, inf, "a number >= 0");
  double beta1 = in_range(a, 10, 0, 1, "a number in [0, 1)");
  double beta2 = in_range(a, 11, 0, 1, "a number in [0, 1)");
  double eps = in_range(a, 12, 0, inf, "a number >= 0");
  double wd = in_range(a, 13, 0, inf, "a number >= 0");
  int64_t step = a.integer(14, 1, int64_t(1) << 53);
  a.require_extent(0, p, po, n);
  a.require_extent(2, g, go, n);
  a.require_extent(4, m, mo, n);
  a.require_extent(6, v, vo, n);
  require_disjoint(a, {{0, "param", &p, po}, {2, "grad", &g, go}, {4, "expAvg", &m, mo}, {6, "expAvgSq", &v, vo}}, n);
  if (n == 0) return info.Env().Undefined();
  const double t = static_cast<double>(step);
  cpu::AdamWParams h{};
  h.beta1 = static_cast<float>(beta1);
  h.beta2 = static_cast<float>(beta2);
  h.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  h.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  h.eps = static_cast<float>(eps);
  h.decay = static_cast<float>(1.0 - lr * wd);
  h.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, t)));
  h.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, t)));
  DV_RUN(a, adamw, p.as<float>() + po, g.as<float>() + go, m.as<float>() + mo, v.as<float>() + vo, n, h);
  return info.Env().Undefined();
}

}  // namespace dv::addon
