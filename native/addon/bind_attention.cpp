// Bindings for cpu/attention.h (and cuda/attention.h for buffers on a CUDA device). Every (B, H, N, D)
// operand is passed as (buffer, offset, strides) with strides = [batch, head, token] in elements (the
// head-dim stride is 1).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "addon/args.h"
#include "addon/device_dispatch.h"
#include "addon/kernel_table.h"
#include "addon/precision.h"
#include "cpu/attention.h"

namespace dv::addon {
namespace {
constexpr int64_t kMaxSize = int64_t(1) << 40;

struct Dims {
  int64_t batch, heads, nq, nk, d;
};

std::string join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Reads dims from arguments first..first+4: batch, heads, nq, nk, d.
Dims read_dims(Args& a, int first) {
  Dims m{};
  m.batch = a.integer(first, 0, kMaxSize);
  m.heads = a.integer(first + 1, 0, kMaxSize);
  m.nq = a.integer(first + 2, 0, kMaxSize);
  m.nk = a.integer(first + 3, 1, kMaxSize);
  m.d = a.integer(first + 4, 1, cpu::kAttentionMaxHeadDim);
  return m;
}

// The (buffer, offset, strides) triple at arguments i, i+1, i+2 describing a (B, H, n, D) view,
// whose extent kernels.def declares: the strides array has 3 entries.
struct View {
  float* data;
  std::vector<int64_t> strides;
};
View read_view(Args& a, int i) {
  View v{a.f32(i), a.dims(i + 2)};
  if (v.strides.size() != 3)
    a.fail(i + 2, "3 strides (batch, head, token)", "an array of length " + std::to_string(v.strides.size()));
  return v;
}

// Outputs are written by several threads at once, so no two elements may share an address: sorted by
// stride, each dim must step past everything the smaller dims span (the head dim spans D).
void require_non_overlapping(Args& a, int i, const View& v, const Dims& m, int64_t n) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of dims with size > 1
  const int64_t sizes[3] = {m.batch, m.heads, n};
  if (m.batch == 0 || m.heads == 0 || n == 0) return;  // empty: nothing is written
  for (int k = 0; k < 3; ++k)
    if (sizes[k] > 1) dims.push_back({v.strides[k], sizes[k]});
  std::sort(dims.begin(), dims.end());
  int64_t span = m.d;
  for (auto [stride, size] : dims) {
    if (stride < span)
      a.fail(i + 2, "strides of a non-overlapping (B, H, N, D) output (each >= the span of the smaller ones, " +
                        std::to_string(span) + " here)",
             join(v.strides));
    span = stride * (size - 1) + span;
  }
}

template <typename T>
T as_view(const View& v) {
  return T{v.data, v.strides[0], v.strides[1], v.strides[2]};
}

}  // namespace

// out = softmax(q kᵀ · scale) v per (batch, head); lse (B, H, Nq) contiguous, or null to skip it.
// precision 'bf16': tensor cores on CUDA (the CPU always computes in fp32).
DV_KERNEL_IMPL(attentionForward) {
  Dims m = read_dims(a, 14);
  float scale = static_cast<float>(a.number(19));
  const cpu::MatmulPrecision precision = read_precision(a, 20);
  View q = read_view(a, 0), k = read_view(a, 3), v = read_view(a, 6), o = read_view(a, 9);
  require_non_overlapping(a, 9, o, m, m.nq);
  cpu::AttentionForwardArgs f{};
  f.batch = m.batch;
  f.heads = m.heads;
  f.nq = m.nq;
  f.nk = m.nk;
  f.d = m.d;
  f.scale = scale;
  f.q = as_view<cpu::AttnIn>(q);
  f.k = as_view<cpu::AttnIn>(k);
  f.v = as_view<cpu::AttnIn>(v);
  f.o = as_view<cpu::AttnOut>(o);
  f.lse = a.f32(12);
  f.precision = precision;
  DV_RUN(a, attention_forward, f);
  return info.Env().Undefined();
}

// Overwrites dq, dk, dv with the gradients of sum(dout ∘ out); out and lse come from the forward.
DV_KERNEL_IMPL(attentionBackward) {
  Dims m = read_dims(a, 26);
  float scale = static_cast<float>(a.number(31));
  const cpu::MatmulPrecision precision = read_precision(a, 32);
  View q = read_view(a, 0), k = read_view(a, 3), v = read_view(a, 6), o = read_view(a, 9), dout = read_view(a, 12);
  View dq = read_view(a, 17), dk = read_view(a, 20), dv = read_view(a, 23);
  require_non_overlapping(a, 17, dq, m, m.nq);
  require_non_overlapping(a, 20, dk, m, m.nk);
  require_non_overlapping(a, 23, dv, m, m.nk);
  cpu::AttentionBackwardArgs g{};
  g.batch = m.batch;
  g.heads = m.heads;
  g.nq = m.nq;
  g.nk = m.nk;
  g.d = m.d;
  g.scale = scale;
  g.q = as_view<cpu::AttnIn>(q);
  g.k = as_view<cpu::AttnIn>(k);
  g.v = as_view<cpu::AttnIn>(v);
  g.o = as_view<cpu::AttnIn>(o);
  g.dout = as_view<cpu::AttnIn>(dout);
  g.lse = a.f32(15);
  g.dq = as_view<cpu::AttnOut>(dq);
  g.dk = as_view<cpu::AttnOut>(dk);
  g.dv = as_view<cpu::AttnOut>(dv);
  g.precision = precision;
  DV_RUN(a, attention_backward, g);
  return info.Env().Undefined();
}

}  // namespace dv::addon
