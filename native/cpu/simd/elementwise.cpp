// Unary and broadcasting binary maps, vectorised through VF (compiled once per ISA level).
#include <algorithm>
#include <cmath>

#include "core/spans.h"
#include "core/thread_pool.h"
#include "cpu/elementwise.h"
#include "cpu/simd/activation.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr int64_t kGrain = 16384;

// Applies `vec` to full vectors and `vec` on a zero-padded partial vector for the tail.
template <typename F>
void map1(const float* x, float* y, int64_t n, F vec) {
  parallel_for(n, kGrain, [&](int64_t a, int64_t b) {
    int64_t i = a;
    for (; i + VF::W <= b; i += VF::W) vec(VF::load(x + i)).store(y + i);
    if (i < b) vec(VF::load_partial(x + i, int(b - i))).store_partial(y + i, int(b - i));
  });
}
template <typename F>
void map2(const float* x, const float* dy, float* dx, int64_t n, F vec) {
  parallel_for(n, kGrain, [&](int64_t a, int64_t b) {
    int64_t i = a;
    for (; i + VF::W <= b; i += VF::W) vec(VF::load(x + i), VF::load(dy + i)).store(dx + i);
    if (i < b) vec(VF::load_partial(x + i, int(b - i)), VF::load_partial(dy + i, int(b - i))).store_partial(dx + i, int(b - i));
  });
}
template <typename F>
void map_scalar(const float* x, float* y, int64_t n, F f) {
  parallel_for(n, kGrain, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) y[i] = f(x[i]);
  });
}
template <typename F>
void map2_scalar(const float* x, const float* dy, float* dx, int64_t n, F f) {
  parallel_for(n, kGrain, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) dx[i] = dy[i] * f(x[i]);
  });
}

}  // namespace

void unary(UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta) {
  const VF one = VF::set1(1.0f);
  switch (op) {
    case UnaryOp::neg: return map1(x, y, n, [](VF v) { return VF::zero() - v; });
    case UnaryOp::exp: return map1(x, y, n, [](VF v) { return vexp(v); });
    case UnaryOp::log: return map_scalar(x, y, n, [](float v) { return std::log(v); });
    case UnaryOp::sqrt: return map1(x, y, n, [](VF v) { return vsqrt(v); });
    case UnaryOp::rsqrt: return map1(x, y, n, [&](VF v) { return one / vsqrt(v); });
    case UnaryOp::silu: return map1(x, y, n, [](VF v) { return v * vsigmoid(v); });
    case UnaryOp::gelu_tanh: return map1(x, y, n, [](VF v) { return vgelu(v); });
    case UnaryOp::affine: {
      VF a = VF::set1(alpha), b = VF::set1(beta);
      return map1(x, y, n, [&](VF v) { return fmadd(a, v, b); });
    }
    case UnaryOp::square: return map1(x, y, n, [](VF v) { return v * v; });
    case UnaryOp::abs: return map1(x, y, n, [](VF v) { return vmax(v, VF::zero() - v); });
    case UnaryOp::relu: return map1(x, y, n, [](VF v) { return vmax(v, VF::zero()); });
    case UnaryOp::tanh: return map1(x, y, n, [](VF v) { return vtanh(v); });
    case UnaryOp::sigmoid: return map1(x, y, n, [](VF v) { return vsigmoid(v); });
    case UnaryOp::pow: return map_scalar(x, y, n, [&](float v) { return std::pow(v, alpha); });
    case UnaryOp::reciprocal: return map1(x, y, n, [&](VF v) { return one / v; });
    case UnaryOp::sin: return map_scalar(x, y, n, [](float v) { return std::sin(v); });
    case UnaryOp::cos: return map_scalar(x, y, n, [](float v) { return std::cos(v); });
  }
}

void unary_grad(UnaryOp op, const float* x, const float* dy, float* dx, int64_t n, float alpha, float beta) {
  const VF one = VF::set1(1.0f), half = VF::set1(0.5f);
  switch (op) {
    case UnaryOp::neg: return map2(x, dy, dx, n, [](VF, VF g) { return VF::zero() - g; });
    case UnaryOp::exp: return map2(x, dy, dx, n, [](VF v, VF g) { return g * vexp(v); });
    case UnaryOp::log: return map2(x, dy, dx, n, [](VF v, VF g) { return g / v; });
    case UnaryOp::sqrt: return map2(x, dy, dx, n, [&](VF v, VF g) { return g * half / vsqrt(v); });
    case UnaryOp::rsqrt:  // d/dx x^-1/2 = -1/2 x^-3/2
      return map2(x, dy, dx, n, [&](VF v, VF g) { return VF::zero() - g * half / (v * vsqrt(v)); });
    case UnaryOp::silu:  // s + x s (1 - s)
      return map2(x, dy, dx, n, [&](VF v, VF g) {
        VF s = vsigmoid(v);
        return g * s * fmadd(v, one - s, one);
      });
    case UnaryOp::gelu_tanh: return map2(x, dy, dx, n, [](VF v, VF g) { return g * vgelu_grad(v); });
    case UnaryOp::affine: {
      VF a = VF::set1(alpha);
      return map2(x, dy, dx, n, [&](VF, VF g) { return a * g; });
    }
    case UnaryOp::square: return map2(x, dy, dx, n, [](VF v, VF g) { return VF::set1(2.0f) * v * g; });
    case UnaryOp::abs:
      return map2_scalar(x, dy, dx, n, [](float v) { return v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f); });
    case UnaryOp::relu: return map2_scalar(x, dy, dx, n, [](float v) { return v > 0 ? 1.0f : 0.0f; });
    case UnaryOp::tanh:
      return map2(x, dy, dx, n, [&](VF v, VF g) {
        VF t = vtanh(v);
        return g * (one - t * t);
      });
    case UnaryOp::sigmoid:
      return map2(x, dy, dx, n, [&](VF v, VF g) {
        VF s = vsigmoid(v);
        return g * s * (one - s);
      });
    case UnaryOp::pow:
      return map2_scalar(x, dy, dx, n, [&](float v) { return alpha * std::pow(v, alpha - 1.0f); });
    case UnaryOp::reciprocal: return map2(x, dy, dx, n, [](VF v, VF g) { return VF::zero() - g / (v * v); });
    case UnaryOp::sin: return map2_scalar(x, dy, dx, n, [](float v) { return std::cos(v); });
    case UnaryOp::cos: return map2_scalar(x, dy, dx, n, [](float v) { return -std::sin(v); });
  }
}

namespace {
template <typename F, typename S>
void binary_map(const float* a, const float* b, float* out, int rank, const int64_t* shape, const int64_t* sa,
                const int64_t* sb, F vec, S sc) {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  if (n == 0) return;
  int64_t inner = rank ? shape[rank - 1] : 1;
  int64_t ia = rank ? sa[rank - 1] : 0, ib = rank ? sb[rank - 1] : 0;
  // Work on flat ranges of the output so that one long row is split as well as many short ones.
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) {
    int64_t pos = lo;
    while (pos < hi) {
      int64_t row = pos / inner, col = pos % inner, len = std::min(inner - col, hi - pos);
      int64_t oa = col * ia, ob = col * ib, rem = row;
      for (int d = rank - 2; d >= 0; --d) {
        int64_t i = rem % shape[d];
        rem /= shape[d];
        oa += i * sa[d];
        ob += i * sb[d];
      }
      const float* pa = a + oa;
      const float* pb = b + ob;
      float* po = out + pos;
      int64_t k = 0;
      if ((ia == 1 || ia == 0) && (ib == 1 || ib == 0)) {
        VF bcast_a = VF::set1(pa[0]), bcast_b = VF::set1(pb[0]);
        for (; k + VF::W <= len; k += VF::W) {
          VF va = ia ? VF::load(pa + k) : bcast_a, vb = ib ? VF::load(pb + k) : bcast_b;
          vec(va, vb).store(po + k);
        }
      }
      for (; k < len; ++k) po[k] = sc(pa[k * ia], pb[k * ib]);
      pos += len;
    }
  });
}
}  // namespace

void binary(BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* shape,
            const int64_t* sa, const int64_t* sb) {
  switch (op) {
    case BinaryOp::add:
      return binary_map(a, b, out, rank, shape, sa, sb, [](VF x, VF y) { return x + y; },
                        [](float x, float y) { return x + y; });
    case BinaryOp::sub:
      return binary_map(a, b, out, rank, shape, sa, sb, [](VF x, VF y) { return x - y; },
                        [](float x, float y) { return x - y; });
    case BinaryOp::mul:
      return binary_map(a, b, out, rank, shape, sa, sb, [](VF x, VF y) { return x * y; },
                        [](float x, float y) { return x * y; });
    case BinaryOp::div:
      return binary_map(a, b, out, rank, shape, sa, sb, [](VF x, VF y) { return x / y; },
                        [](float x, float y) { return x / y; });
  }
}

namespace {
// dst[i] = fma(alpha, dst[i], beta src[i]) for i in [lo, hi), the last partial vector too: every
// element the same arithmetic wherever a range starts or ends (and as the CUDA kernel's).
void axpby_range(float* dst, const float* src, int64_t lo, int64_t hi, float alpha, float beta) {
  VF va = VF::set1(alpha), vb = VF::set1(beta);
  int64_t i = lo;
  for (; i + VF::W <= hi; i += VF::W) fmadd(va, VF::load(dst + i), vb * VF::load(src + i)).store(dst + i);
  if (i < hi) {
    const int r = static_cast<int>(hi - i);
    fmadd(va, VF::load_partial(dst + i, r), vb * VF::load_partial(src + i, r)).store_partial(dst + i, r);
  }
}
}  // namespace

void axpby(float* dst, const float* src, int64_t n, float alpha, float beta) {
  parallel_for(n, kGrain, [&](int64_t lo, int64_t hi) { axpby_range(dst, src, lo, hi, alpha, beta); });
}

void axpby_many(const AxpbyTensor* tensors, int64_t count, float alpha, float beta) {
  std::vector<int64_t> counts(count);
  for (int64_t t = 0; t < count; ++t) counts[t] = tensors[t].n;
  parallel_for_spans(counts.data(), count, kGrain, [&](int64_t t, int64_t lo, int64_t hi) {
    axpby_range(tensors[t].dst, tensors[t].src, lo, hi, alpha, beta);
  });
}

}  // namespace dv::cpu::DV_ISA
