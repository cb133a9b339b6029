// Elementwise kernels: strided copy, fill, seeded random, unary maps (with gradients) and
// broadcasting binary maps.
#pragma once
#include <cstdint>

#include "cpu/isa.h"

namespace dv::cpu {

constexpr int kMaxRank = 8;

enum class UnaryOp : int {
  neg, exp, log, sqrt, rsqrt, silu, gelu_tanh, affine, square, abs, relu, tanh, sigmoid, pow, reciprocal, sin, cos
};
// Names in UnaryOp order, as the JS side spells them.
#define DV_UNARY_OP_NAMES                                                                                  \
  "neg", "exp", "log", "sqrt", "rsqrt", "silu", "gelu_tanh", "affine", "square", "abs", "relu", "tanh", \
      "sigmoid", "pow", "reciprocal", "sin", "cos"

enum class BinaryOp : int { add, sub, mul, div };
#define DV_BINARY_OP_NAMES "add", "sub", "mul", "div"

// dst[i over shape] = src[i over shape], each side with its own element strides; elem_size 4.
void copy_strided(const void* src, void* dst, int rank, const int64_t* shape, const int64_t* src_strides,
                  const int64_t* dst_strides);
void fill(float* dst, int64_t n, float value);
void fill_i32(int32_t* dst, int64_t n, int32_t value);
// dst[i] = a + b * N(0,1)  (normal)  or  a + (b - a) * U(0,1]  (uniform), element i drawn from
// Philox(key = seed, index = counter + i).
void random_normal(float* dst, int64_t n, uint64_t seed, uint64_t counter, float mean, float std);
void random_uniform(float* dst, int64_t n, uint64_t seed, uint64_t counter, float lo, float hi);

}  // namespace dv::cpu

namespace dv::cpu {
// One pair of a multi-tensor axpby: n elements of each.
struct AxpbyTensor {
  float* dst;
  const float* src;
  int64_t n;
};
}  // namespace dv::cpu

DV_ISA_DECLARE(
    // y = f(x); `alpha`, `beta` parameterise affine (alpha*x + beta) and pow (x^alpha).
    void unary(dv::cpu::UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta);
    // dx = dy * f'(x)
    void unary_grad(dv::cpu::UnaryOp op, const float* x, const float* dy, float* dx, int64_t n, float alpha,
                    float beta);
    // out (contiguous, `shape`) = a op b, a and b read with their own strides (0 = broadcast).
    void binary(dv::cpu::BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* shape,
                const int64_t* a_strides, const int64_t* b_strides);
    // dst = alpha * dst + beta * src (gradient accumulation, EMA).
    void axpby(float* dst, const float* src, int64_t n, float alpha, float beta);
    // axpby on `count` pairs in one parallel pass (the EMA of every parameter; the same values as
    // one axpby call each).
    void axpby_many(const dv::cpu::AxpbyTensor* tensors, int64_t count, float alpha, float beta);
    // Elements first .. first+n-1 of the standard normal stream of `key` (core/philox.h
    // philox_normals): vectorised across Box-Muller pairs at avx512 and avx2 (simd/random.cpp).
    void philox_normals(uint64_t key, uint64_t first, int64_t n, float* out);)

namespace dv::cpu {
inline void unary(UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta) {
  DV_DISPATCH(unary, op, x, y, n, alpha, beta);
}
inline void unary_grad(UnaryOp op, const float* x, const float* dy, float* dx, int64_t n, float alpha, float beta) {
  DV_DISPATCH(unary_grad, op, x, dy, dx, n, alpha, beta);
}
inline void binary(BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* shape,
                   const int64_t* a_strides, const int64_t* b_strides) {
  DV_DISPATCH(binary, op, a, b, out, rank, shape, a_strides, b_strides);
}
inline void axpby(float* dst, const float* src, int64_t n, float alpha, float beta) {
  DV_DISPATCH(axpby, dst, src, n, alpha, beta);
}
inline void axpby_many(const AxpbyTensor* tensors, int64_t count, float alpha, float beta) {
  DV_DISPATCH(axpby_many, tensors, count, alpha, beta);
}
inline void standard_normals(uint64_t key, uint64_t first, int64_t n, float* out) {
  DV_DISPATCH(philox_normals, key, first, n, out);
}
}  // namespace dv::cpu
