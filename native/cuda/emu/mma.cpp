// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for the emulator: the warp's 32 fragments are
// gathered into A (16x16), B (16x8) and C (16x8), and every lane's D fragment is written back.
// bf16 x bf16 products are exact in fp32; they are summed in fp32 in k order, then C is added.
#include "cuda/emu/scheduler.h"

namespace dv_emu {

namespace {
struct MmaIn {
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
};
float bf16_lo(uint32_t v) { return __uint_as_float(v << 16); }
float bf16_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }
}  // namespace

void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  MmaIn in{a, b, c};
  detail::LaneArgs args;
  args.in = &in;
  args.out = d;
  detail::warp_collective(detail::WarpOp::kMma, 0xffffffffu, &args);
}

namespace detail {

void compute_mma(Group& g) {
  float A[16][16], B[16][8], C[16][8];
  for (unsigned lane = 0; lane < 32; ++lane) {
    const MmaIn& in = *static_cast<const MmaIn*>(g.args[lane]->in);
    const unsigned r = lane / 4, t = lane % 4;
    // a0 = A[g][2t..], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
    const unsigned arow[4] = {r, r + 8, r, r + 8}, acol[4] = {2 * t, 2 * t, 2 * t + 8, 2 * t + 8};
    for (int i = 0; i < 4; ++i) {
      A[arow[i]][acol[i]] = bf16_lo(in.a[i]);
      A[arow[i]][acol[i] + 1] = bf16_hi(in.a[i]);
    }
    // b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
    B[2 * t][r] = bf16_lo(in.b[0]);
    B[2 * t + 1][r] = bf16_hi(in.b[0]);
    B[2 * t + 8][r] = bf16_lo(in.b[1]);
    B[2 * t + 9][r] = bf16_hi(in.b[1]);
    // c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
    C[r][2 * t] = in.c[0];
    C[r][2 * t + 1] = in.c[1];
    C[r + 8][2 * t] = in.c[2];
    C[r + 8][2 * t + 1] = in.c[3];
  }
  float D[16][8];
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      float acc = 0.0f;
      for (int k = 0; k < 16; ++k) acc += A[i][k] * B[k][j];
      D[i][j] = acc + C[i][j];
    }
  }
  for (unsigned lane = 0; lane < 32; ++lane) {
    float* d = static_cast<float*>(g.args[lane]->out);
    const unsigned r = lane / 4, t = lane % 4;
    d[0] = D[r][2 * t];
    d[1] = D[r][2 * t + 1];
    d[2] = D[r + 8][2 * t];
    d[3] = D[r + 8][2 * t + 1];
  }
}

}  // namespace detail
}  // namespace dv_emu
