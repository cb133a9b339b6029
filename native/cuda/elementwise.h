// Elementwise kernels on the GPU (elementwise.cu), as cpu/elementwise.h.
#pragma once
#include "cpu/elementwise.h"

namespace dv::cuda {
void copy_strided(const void* src, void* dst, int rank, const int64_t* shape, const int64_t* src_strides,
                  const int64_t* dst_strides);
void fill(float* dst, int64_t n, float value);
void fill_i32(int32_t* dst, int64_t n, int32_t value);
void random_normal(float* dst, int64_t n, uint64_t seed, uint64_t counter, float mean, float std);
void random_uniform(float* dst, int64_t n, uint64_t seed, uint64_t counter, float lo, float hi);
void unary(cpu::UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta);
void unary_grad(cpu::UnaryOp op, const float* x, const float* dy, float* dx, int64_t n, float alpha, float beta);
void binary(cpu::BinaryOp op, const float* a, const float* b, float* out, int rank, const int64_t* shape,
            const int64_t* a_strides, const int64_t* b_strides);
void axpby(float* dst, const float* src, int64_t n, float alpha, float beta);
// One launch per pair.
void axpby_many(const cpu::AxpbyTensor* tensors, int64_t count, float alpha, float beta);
}  // namespace dv::cuda
