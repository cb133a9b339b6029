// Bindings for cpu/optim.h. Hyper-parameters are range-checked as torch.optim does, and the
// tensors updated in place must not overlap each other or the gradient.
#include <cmath>
#include <cstdio>
#include <string>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "addon/tensor_lists.h"
#include "cpu/optim.h"

namespace dv::addon {
namespace {
// No two of the n-element buffers `args` may share memory (the kernel reads and writes them in one pass).
void require_disjoint(Args& a, std::initializer_list<int> args, int64_t n) {
  for (auto i = args.begin(); i != args.end(); ++i)
    for (auto j = i + 1; j != args.end(); ++j)
      a.require_disjoint(*i, a.buffer(*i), a.offset(*i), n, *j, a.buffer(*j), a.offset(*j), n);
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

// The four n-element ranges of an AdamW update (args 0-8: param, grad, expAvg, expAvgSq with
// offsets, n), checked; and the betas and eps at args first..first+2 into h.
struct AdamWRanges {
  float *p, *m, *v;
  const float* g;
  int64_t n;
};
AdamWRanges adamw_ranges(Args& a) {
  const int64_t n = a.integer(8);
  require_disjoint(a, {0, 2, 4, 6}, n);
  return {a.f32(0), a.f32(4), a.f32(6), a.f32(2), n};
}
cpu::AdamWParams adamw_betas(Args& a, int first) {
  const double inf = INFINITY;
  double beta1 = in_range(a, first, 0, 1, "a number in [0, 1)");
  double beta2 = in_range(a, first + 1, 0, 1, "a number in [0, 1)");
  double eps = in_range(a, first + 2, 0, inf, "a number >= 0");
  cpu::AdamWParams h{};
  h.beta1 = static_cast<float>(beta1);
  h.beta2 = static_cast<float>(beta2);
  h.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  h.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  h.eps = static_cast<float>(eps);
  h.grad_scale = 1;
  return h;
}

// An eager step's AdamW scalars from lr, beta1, beta2, eps, weightDecay, step at args first..first+5.
cpu::AdamWParams adamw_step(Args& a, int first) {
  const double inf = INFINITY;
  double lr = in_range(a, first, 0, inf, "a number >= 0");
  cpu::AdamWParams h = adamw_betas(a, first + 1);
  double beta1 = a.number(first + 1), beta2 = a.number(first + 2);
  double wd = in_range(a, first + 4, 0, inf, "a number >= 0");
  int64_t step = a.integer(first + 5, 1, int64_t(1) << 53);
  const double t = static_cast<double>(step);
  h.decay = static_cast<float>(1.0 - lr * wd);
  h.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, t)));
  h.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, t)));
  return h;
}

// A training step's control block (cpu/optim.h step_control) at args i, i + 1.
float* control_block(Args& a, int i) {
  a.require_extent(i, cpu::step_control::size);
  return a.f32(i);
}
}  // namespace

// adamw: one fused AdamW step; param, expAvg, expAvgSq in place
DV_KERNEL_IMPL(adamw) {
  const AdamWRanges r = adamw_ranges(a);
  const cpu::AdamWParams h = adamw_step(a, 9);
  if (r.n == 0) return info.Env().Undefined();
  DV_RUN(a, adamw, r.p, r.g, r.m, r.v, r.n, h);
  return info.Env().Undefined();
}

// adamwMany: adamw on every tensor of the lists, in one pass on the CPU (one launch per tensor on CUDA)
DV_KERNEL_IMPL(adamwMany) {
  TensorList params{0, true, {}}, grads{2, false, {}}, exp_avgs{4, true, {}}, exp_avg_sqs{6, true, {}};
  const std::vector<int64_t> counts = read_tensor_lists(a, {&params, &grads, &exp_avgs, &exp_avg_sqs}, 8);
  const cpu::AdamWParams h = adamw_step(a, 9);
  std::vector<cpu::AdamWTensor> tensors(counts.size());
  for (size_t t = 0; t < counts.size(); ++t) tensors[t] = {params.data[t], grads.data[t], exp_avgs.data[t], exp_avg_sqs.data[t], counts[t]};
  DV_RUN(a, adamw_many, tensors.data(), static_cast<int64_t>(tensors.size()), h);
  return info.Env().Undefined();
}

// trainStepControl: a captured step's apply flag and gradient scale from its [loss, sum of squares]
DV_KERNEL_IMPL(trainStepControl) {
  float* control = control_block(a, 2);
  const double grad_clip = in_range(a, 4, 0, INFINITY, "a number >= 0 (0: no clipping)");
  DV_RUN(a, train_step_control, a.f32(0), control, grad_clip);
  return info.Env().Undefined();
}

// adamwControlled: adamw with the step's scalars and gradient scale from a control block
DV_KERNEL_IMPL(adamwControlled) {
  const AdamWRanges r = adamw_ranges(a);
  const cpu::AdamWParams h = adamw_betas(a, 9);
  float* control = control_block(a, 12);
  if (r.n == 0) return info.Env().Undefined();
  DV_RUN(a, adamw_controlled, r.p, r.g, r.m, r.v, r.n, h, control);
  return info.Env().Undefined();
}

// emaControlled: shadow = beta shadow + (1 - beta) param with beta from a control block
DV_KERNEL_IMPL(emaControlled) {
  const int64_t n = a.integer(4);
  require_disjoint(a, {0, 2}, n);
  float* control = control_block(a, 5);
  if (n == 0) return info.Env().Undefined();
  DV_RUN(a, ema_controlled, a.f32(0), a.f32(2), n, control);
  return info.Env().Undefined();
}

}  // namespace dv::addon
