// Activation functions on VF, shared by the elementwise maps, the GEMM epilogue and the fused
// kernels, so that a fused GELU gives the same bits as the standalone one.
#pragma once
#include "cpu/simd/simd.h"

namespace dv::cpu::DV_ISA {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f, kGeluCubic = 0.044715f;

inline VF vsigmoid(VF x) { return VF::set1(1.0f) / (VF::set1(1.0f) + vexp(VF::set1(0.0f) - x)); }
// tanh(x) = 2 sigmoid(2x) - 1; absolute error ~1e-7, enough for GELU and activations.
inline VF vtanh(VF x) { return VF::set1(2.0f) * vsigmoid(x + x) - VF::set1(1.0f); }
// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline VF vgelu(VF x) {
  VF inner = VF::set1(kSqrt2OverPi) * fmadd(VF::set1(kGeluCubic) * x, x * x, x);
  return VF::set1(0.5f) * x * (VF::set1(1.0f) + vtanh(inner));
}
// d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 c x^2), t = tanh(inner).
inline VF vgelu_grad(VF x) {
  const VF one = VF::set1(1.0f), half = VF::set1(0.5f);
  VF x2 = x * x;
  VF t = vtanh(VF::set1(kSqrt2OverPi) * fmadd(VF::set1(kGeluCubic) * x, x2, x));
  VF dinner = VF::set1(kSqrt2OverPi) * fmadd(VF::set1(3.0f * kGeluCubic), x2, one);
  return half * (one + t) + half * x * (one - t * t) * dinner;
}

}  // namespace
}  // namespace dv::cpu::DV_ISA
