// Fused AdamW, vectorised through VF (compiled once per ISA level). One read of p, g, m, v and
// one write of p, m, v per element: the update is memory-bound, so fusing the five PyTorch
// foreach passes into one is the whole point.
#include "core/spans.h"
#include "core/thread_pool.h"
#include "cpu/optim.h"
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {
namespace {
constexpr int64_t kGrain = 16384;
}  // namespace

namespace {
// adamw on elements [lo, hi) (vector arithmetic for every element, the last partial vector too, so
// the values do not depend on where a range starts or ends).
void adamw_range(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t lo, int64_t hi,
                 const AdamWParams& h) {
  const VF b1 = VF::set1(h.beta1), b2 = VF::set1(h.beta2), one_b1 = VF::set1(h.one_minus_beta1),
           one_b2 = VF::set1(h.one_minus_beta2), eps = VF::set1(h.eps), decay = VF::set1(h.decay),
           step = VF::set1(h.step_size), inv_bc2 = VF::set1(h.inv_sqrt_bc2), grad_scale = VF::set1(h.grad_scale);
  auto update = [&](VF p, VF g, VF& m, VF& v) {
    g = g * grad_scale;  // exact for the eager step's scale 1
    m = fmadd(b1, m, one_b1 * g);
    v = fmadd(b2, v, one_b2 * g * g);
    VF denom = fmadd(vsqrt(v), inv_bc2, eps);
    return p * decay - step * m / denom;
  };
  int64_t i = lo;
  for (; i + VF::W <= hi; i += VF::W) {
    VF m = VF::load(exp_avg + i), v = VF::load(exp_avg_sq + i);
    VF p = update(VF::load(param + i), VF::load(grad + i), m, v);
    p.store(param + i);
    m.store(exp_avg + i);
    v.store(exp_avg_sq + i);
  }
  if (i < hi) {
    const int r = int(hi - i);
    VF m = VF::load_partial(exp_avg + i, r), v = VF::load_partial(exp_avg_sq + i, r);
    VF p = update(VF::load_partial(param + i, r), VF::load_partial(grad + i, r), m, v);
    p.store_partial(param + i, r);
    m.store_partial(exp_avg + i, r);
    v.store_partial(exp_avg_sq + i, r);
  }
}
}  // namespace

void adamw(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, const AdamWParams& h) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) { adamw_range(param, grad, exp_avg, exp_avg_sq, lo, hi, h); });
}

void adamw_many(const AdamWTensor* tensors, int64_t count, const AdamWParams& h) {
  std::vector<int64_t> counts(count);
  for (int64_t t = 0; t < count; ++t) counts[t] = tensors[t].n;
  parallel_for_spans(counts.data(), count, kGrain, [&](int64_t t, int64_t lo, int64_t hi) {
    const AdamWTensor& x = tensors[t];
    adamw_range(x.param, x.grad, x.exp_avg, x.exp_avg_sq, lo, hi, h);
  });
}

}  // namespace dv::cpu::DV_ISA
