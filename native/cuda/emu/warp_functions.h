// Warp-collective built-ins for the emulator. A warp is 32 consecutive linear thread ids of the block
// (x fastest). A collective waits until every lane named in its mask has reached a collective of the
// same kind with the same mask; lanes beyond the end of a partial last warp are dropped from masks.
// A mask naming an exited lane, or not naming the caller, makes the launch throw.
// (Part of cuda_emu.h, which includes it; include that.)
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dv_emu::detail {

enum class WarpOp : uint8_t {
  kSyncwarp,
  kShflIdx,
  kShflUp,
  kShflDown,
  kShflXor,
  kBallot,
  kAny,
  kAll,
  kMatchAny,
  kMatchAll,
  kReduceAddU,
  kReduceMinU,
  kReduceMaxU,
  kReduceMinI,
  kReduceMaxI,
  kReduceAnd,
  kReduceOr,
  kReduceXor,
  kMma,
};

// One lane's part in a collective; lives on that lane's stack until the collective completes, and the
// lane that completes it writes every participant's `result` (or `out`).
struct LaneArgs {
  uint64_t value = 0;
  uint64_t result = 0;
  int32_t arg = 0;    // source lane / delta / lane mask
  int32_t width = 32;
  const void* in = nullptr;
  void* out = nullptr;
};

// scheduler.cpp
void warp_collective(WarpOp op, unsigned mask, LaneArgs* args);
unsigned active_mask();

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp collectives move up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
template <class T>
inline T shuffle(WarpOp op, unsigned mask, T var, int arg, int width) {
  LaneArgs a;
  a.value = to_bits(var);
  a.arg = arg;
  a.width = width;
  warp_collective(op, mask, &a);
  return from_bits<T>(a.result);
}
inline uint64_t vote(WarpOp op, unsigned mask, uint64_t value) {
  LaneArgs a;
  a.value = value;
  warp_collective(op, mask, &a);
  return a.result;
}
}  // namespace dv_emu::detail

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kSyncwarp, mask, 0);
}
// Lanes of the warp that have not exited (the emulator cannot see divergence).
inline unsigned __activemask() { return ::dv_emu::detail::active_mask(); }

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
  return ::dv_emu::detail::shuffle(::dv_emu::detail::WarpOp::kShflIdx, mask, var, srcLane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = 32) {
  return ::dv_emu::detail::shuffle(::dv_emu::detail::WarpOp::kShflUp, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = 32) {
  return ::dv_emu::detail::shuffle(::dv_emu::detail::WarpOp::kShflDown, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
  return ::dv_emu::detail::shuffle(::dv_emu::detail::WarpOp::kShflXor, mask, var, laneMask, width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kBallot, mask, predicate != 0));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kAny, mask, predicate != 0));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kAll, mask, predicate != 0));
}
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_any_sync on a 32- or 64-bit value");
  return static_cast<unsigned>(
      ::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kMatchAny, mask, ::dv_emu::detail::to_bits(value)));
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_all_sync on a 32- or 64-bit value");
  unsigned r = static_cast<unsigned>(
      ::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kMatchAll, mask, ::dv_emu::detail::to_bits(value)));
  *pred = r != 0;
  return r;
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceAddU, mask, value));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceMinU, mask, value));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceMaxU, mask, value));
}
inline int __reduce_add_sync(unsigned mask, int value) {
  return static_cast<int>(__reduce_add_sync(mask, static_cast<unsigned>(value)));
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return static_cast<int>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceMinI, mask,
                                                 static_cast<uint32_t>(value)));
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return static_cast<int>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceMaxI, mask,
                                                 static_cast<uint32_t>(value)));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceAnd, mask, value));
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceOr, mask, value));
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned value) {
  return static_cast<unsigned>(::dv_emu::detail::vote(::dv_emu::detail::WarpOp::kReduceXor, mask, value));
}
