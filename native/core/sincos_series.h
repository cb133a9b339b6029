// sin and cos in float64 for 0 <= a <= 2^19: Cody-Waite reduction a = k pi/2 + r, |r| <= pi/4, then
// Taylor series (exact coefficients 1/n!, truncated below 1e-22 relative) by Horner in fma. Written
// once for the CUDA backend (cuda/elementwise.cu: scalar doubles; CUDA's own sin/cos keep a table
// in local memory, which its build forbids) and the CPU's vectorised noise (cpu/simd/random.cpp:
// one value a vector lane), so both draw the same Box-Muller normals. `Ops` gives the arithmetic
// on V: splat (a double as a V), mul, fma, neg, rint (to the nearest integer, ties to even).
#pragma once
#include "core/host_device.h"

namespace dv::sincos64 {

// r = a - k pi/2 with k = rint(a 2/pi) (returned in `k`, an integral V), pi/2 = P1 + P2 + P3 with P1
// and P2 of 32 bits, so k P1 and k P2 are exact for k < 2^21 and a - k P1 is exact.
template <class Ops, class V>
DV_HOST_DEVICE inline V reduce(V a, V& k) {
  k = Ops::rint(Ops::mul(a, Ops::splat(0.6366197723675814)));
  const V minus_k = Ops::neg(k);
  V r = Ops::fma(minus_k, Ops::splat(1.5707963267341256), a);
  r = Ops::fma(minus_k, Ops::splat(6.077100506303966e-11), r);
  return Ops::fma(minus_k, Ops::splat(2.0222662487959506e-21), r);
}

// sin(r) and cos(r) for |r| <= pi/4.
template <class Ops, class V>
DV_HOST_DEVICE inline void taylor(V r, V& s, V& c) {
  const V z = Ops::mul(r, r);
  V ps = Ops::splat(1.9572941063391263e-20);
  ps = Ops::fma(ps, z, Ops::splat(-8.22063524662433e-18));
  ps = Ops::fma(ps, z, Ops::splat(2.8114572543455206e-15));
  ps = Ops::fma(ps, z, Ops::splat(-7.647163731819816e-13));
  ps = Ops::fma(ps, z, Ops::splat(1.6059043836821613e-10));
  ps = Ops::fma(ps, z, Ops::splat(-2.505210838544172e-08));
  ps = Ops::fma(ps, z, Ops::splat(2.7557319223985893e-06));
  ps = Ops::fma(ps, z, Ops::splat(-0.0001984126984126984));
  ps = Ops::fma(ps, z, Ops::splat(0.008333333333333333));
  ps = Ops::fma(ps, z, Ops::splat(-0.16666666666666666));
  s = Ops::fma(Ops::mul(r, z), ps, r);
  V pc = Ops::splat(4.110317623312165e-19);
  pc = Ops::fma(pc, z, Ops::splat(-1.5619206968586225e-16));
  pc = Ops::fma(pc, z, Ops::splat(4.779477332387385e-14));
  pc = Ops::fma(pc, z, Ops::splat(-1.1470745597729725e-11));
  pc = Ops::fma(pc, z, Ops::splat(2.08767569878681e-09));
  pc = Ops::fma(pc, z, Ops::splat(-2.755731922398589e-07));
  pc = Ops::fma(pc, z, Ops::splat(2.48015873015873e-05));
  pc = Ops::fma(pc, z, Ops::splat(-0.001388888888888889));
  pc = Ops::fma(pc, z, Ops::splat(0.041666666666666664));
  pc = Ops::fma(pc, z, Ops::splat(-0.5));
  c = Ops::fma(z, pc, Ops::splat(1.0));
}

}  // namespace dv::sincos64
