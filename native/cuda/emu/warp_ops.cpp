// What each warp collective computes, once every lane of its mask has arrived (scheduler.cpp).
// Shuffles follow the PTX ISA's shfl.sync definition with the clamp values CUDA's __shfl*_sync pass:
// c = ((32 - width) << 8) | (0x1f, or 0 for up), segmask = c[12:8].
#include "cuda/emu/scheduler.h"

namespace dv_emu::detail {

const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kSyncwarp: return "__syncwarp";
    case WarpOp::kShflIdx: return "__shfl_sync";
    case WarpOp::kShflUp: return "__shfl_up_sync";
    case WarpOp::kShflDown: return "__shfl_down_sync";
    case WarpOp::kShflXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
    case WarpOp::kAny: return "__any_sync";
    case WarpOp::kAll: return "__all_sync";
    case WarpOp::kMatchAny: return "__match_any_sync";
    case WarpOp::kMatchAll: return "__match_all_sync";
    case WarpOp::kReduceAddU:
      return "__reduce_add_sync";
    case WarpOp::kReduceMinU:
    case WarpOp::kReduceMinI: return "__reduce_min_sync";
    case WarpOp::kReduceMaxU:
    case WarpOp::kReduceMaxI: return "__reduce_max_sync";
    case WarpOp::kReduceAnd: return "__reduce_and_sync";
    case WarpOp::kReduceOr: return "__reduce_or_sync";
    case WarpOp::kReduceXor: return "__reduce_xor_sync";
    case WarpOp::kMma: return "mma_bf16_16816";
  }
  return "warp collective";
}

namespace {

// Source lane of a shuffle for `lane`, or `lane` itself when the source is out of its segment.
unsigned shuffle_source(WarpOp op, unsigned lane, int b, int width) {
  const unsigned segmask = static_cast<unsigned>(32 - width) & 31u;
  const unsigned cval = op == WarpOp::kShflUp ? 0u : 31u;
  const int max_lane = static_cast<int>((lane & segmask) | (cval & ~segmask));
  const int min_lane = static_cast<int>(lane & segmask);
  const unsigned bval = static_cast<unsigned>(b) & 31u;
  int j;
  bool in_range;
  switch (op) {
    case WarpOp::kShflUp:
      j = static_cast<int>(lane) - static_cast<int>(bval);
      in_range = j >= max_lane;
      break;
    case WarpOp::kShflDown:
      j = static_cast<int>(lane + bval);
      in_range = j <= max_lane;
      break;
    case WarpOp::kShflXor:
      j = static_cast<int>(lane ^ bval);
      in_range = j <= max_lane;
      break;
    default:  // idx
      j = min_lane | static_cast<int>(bval & ~segmask);
      in_range = j <= max_lane;
      break;
  }
  return in_range ? static_cast<unsigned>(j) : lane;
}

}  // namespace

void compute_collective(Group& g) {
  const unsigned m = g.mask;
  auto each = [m](auto fn) {
    for (unsigned l = 0; l < 32; ++l)
      if (m >> l & 1u) fn(l);
  };
  switch (g.op) {
    case WarpOp::kSyncwarp: return;
    case WarpOp::kShflIdx:
    case WarpOp::kShflUp:
    case WarpOp::kShflDown:
    case WarpOp::kShflXor:
      each([&](unsigned l) {
        LaneArgs* a = g.args[l];
        unsigned src = shuffle_source(g.op, l, a->arg, a->width);
        // A source lane outside the mask has no defined value on the GPU; give the caller its own.
        a->result = (m >> src & 1u) ? g.args[src]->value : a->value;
      });
      return;
    case WarpOp::kMma: compute_mma(g); return;
    default: break;
  }
  // Votes, matches and reductions: combine over the lanes, then hand every lane the result.
  uint64_t ballot = 0, sum = 0, lo = ~uint64_t{0}, hi = 0, band = ~uint64_t{0}, bor = 0, bxor = 0;
  int64_t ilo = INT64_MAX, ihi = INT64_MIN;
  each([&](unsigned l) {
    uint64_t v = g.args[l]->value;
    if (v) ballot |= 1ull << l;
    sum += v;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    int64_t s = static_cast<int32_t>(static_cast<uint32_t>(v));
    ilo = s < ilo ? s : ilo;
    ihi = s > ihi ? s : ihi;
    band &= v;
    bor |= v;
    bxor ^= v;
  });
  each([&](unsigned l) {
    LaneArgs* a = g.args[l];
    uint64_t r = 0;
    switch (g.op) {
      case WarpOp::kBallot: r = ballot; break;
      case WarpOp::kAny: r = ballot != 0; break;
      case WarpOp::kAll: r = ballot == m; break;
      case WarpOp::kMatchAny:
        for (unsigned k = 0; k < 32; ++k)
          if ((m >> k & 1u) && g.args[k]->value == a->value) r |= 1ull << k;
        break;
      case WarpOp::kMatchAll: {
        bool all = true;
        for (unsigned k = 0; k < 32; ++k)
          if ((m >> k & 1u) && g.args[k]->value != a->value) all = false;
        r = all ? m : 0;
        break;
      }
      case WarpOp::kReduceAddU: r = static_cast<uint32_t>(sum); break;
      case WarpOp::kReduceMinU: r = lo; break;
      case WarpOp::kReduceMaxU: r = hi; break;
      case WarpOp::kReduceMinI: r = static_cast<uint32_t>(static_cast<int32_t>(ilo)); break;
      case WarpOp::kReduceMaxI: r = static_cast<uint32_t>(static_cast<int32_t>(ihi)); break;
      case WarpOp::kReduceAnd: r = band; break;
      case WarpOp::kReduceOr: r = bor; break;
      case WarpOp::kReduceXor: r = bxor; break;
      default: break;
    }
    a->result = r;
  });
}

}  // namespace dv_emu::detail
