// Standalone check of the CUDA attention kernels (native/cuda/attention.cu) against a float64
// reference, for both precisions (fp32 SIMT and bf16 tensor cores), forward and backward, on random
// inputs of awkward sizes and strided layouts. One function per case with small shapes, so that it
// also runs in reasonable time on the CPU emulator and under ThreadSanitizer.
//
// Emulator build (from the repository root):
//   g++ -std=c++17 -O2 -DDV_CUDA_EMULATOR -DDV_CUDA=1 -I native -pthread -x c++ native/cuda/attention.cu
//       -x none native/cuda/tests/attention_check.cpp native/cuda/runtime.cpp native/cuda/allocator.cpp native/cuda/graph.cpp
//       native/cuda/emu/*.cpp -o /tmp/attention_check
//   /tmp/attention_check            (prints one line per case and check; exit status 1 on a failure)
// On a GPU the same harness builds with nvcc (attention.cu as CUDA, the rest as C++ with the toolkit's
// runtime); (scripts/cuda-race-check.sh builds and runs it under ThreadSanitizer.)
//
// Each case checks: O and lse against the reference; dQ, dK, dV (computed from the kernels' own O and
// lse, as autograd does) against the reference; that nothing outside the output views was written
// (buffers start filled with a sentinel); and that two backward runs are bit-identical.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/cuda_api.h"
#include "cuda/runtime.h"

namespace {

using dv::cpu::MatmulPrecision;

constexpr float kSentinel = 12345.0f;

struct Rng {
  uint64_t s;
  float uniform() {  // [-1, 1)
    s += 0x9e3779b97f4a7c15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<float>((z >> 40) * (1.0 / 8388608.0) - 1.0);
  }
};

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

// A host buffer and its device copy.
struct Buffer {
  std::vector<float> host;
  float* dev = nullptr;
  explicit Buffer(int64_t n, float fill = kSentinel) : host(static_cast<size_t>(n), fill) {
    cuda_ok(cudaMalloc(reinterpret_cast<void**>(&dev), host.size() * sizeof(float) + 16), "cudaMalloc");
    upload();
  }
  ~Buffer() { cudaFree(dev); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void upload() { cuda_ok(cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "upload"); }
  void download() {
    cuda_ok(cudaMemcpy(host.data(), dev, host.size() * sizeof(float), cudaMemcpyDeviceToHost), "download");
  }
};

// A (B, H, N, D) view of a Buffer: element (b, h, n, c) at offset + b*sb + h*sh + n*sn + c.
struct View {
  Buffer* buf;
  int64_t offset, sb, sh, sn;
  int64_t at(int64_t b, int64_t h, int64_t n, int64_t c) const { return offset + b * sb + h * sh + n * sn + c; }
  float& operator()(int64_t b, int64_t h, int64_t n, int64_t c) const { return buf->host[at(b, h, n, c)]; }
  dv::cpu::AttnIn in() const { return {buf->dev + offset, sb, sh, sn}; }
  dv::cpu::AttnOut out() const { return {buf->dev + offset, sb, sh, sn}; }
};

struct Shape {
  int64_t B, H, nq, nk, d;
  float scale;
};

// Layouts: token-major (B, N, H, D + pad), head-major (B, H, N, D + pad), heads sharing one row
// (B, N, D + pad) with a head stride of 0, and the (B, N, 3, H, D) qkv projection.
enum class Layout { token_major, head_major, shared_heads };

int64_t extent(const Shape& s, int64_t n, Layout l, int64_t pad) {
  const int64_t row = s.d + pad;
  return l == Layout::shared_heads ? s.B * n * row : s.B * s.H * n * row;
}
View make_view(Buffer* buf, int64_t offset, const Shape& s, int64_t n, Layout l, int64_t pad) {
  const int64_t row = s.d + pad;
  switch (l) {
    case Layout::token_major: return {buf, offset, n * s.H * row, row, s.H * row};
    case Layout::head_major: return {buf, offset, s.H * n * row, n * row, row};
    default: return {buf, offset, n * row, 0, row};
  }
}

// The float64 reference for one (batch, head).
struct Reference {
  std::vector<double> o, lse, dq, dk, dv;  // (nq, d), (nq), (nq, d), (nk, d), (nk, d)
  // The magnitudes of the terms summed into dQ and dK: scale · sum_j P_ij (|dP_ij| + |D_i|) |K_j| and
  // the same over i with |Q_i|. With one key dQ = dK = 0 exactly, while rounding errors (bf16 dO·V
  // against fp32 D) scale with these.
  double dq_mag = 0, dk_mag = 0;
  double max_logit = 0;                     // max |S_ij|: the scale of lse's rounding error
};
Reference reference(const Shape& s, const View& q, const View& k, const View& v, const View& dout, int64_t b,
                    int64_t h) {
  const int64_t nq = s.nq, nk = s.nk, d = s.d;
  Reference r;
  r.o.assign(nq * d, 0.0);
  r.lse.assign(nq, 0.0);
  r.dq.assign(nq * d, 0.0);
  r.dk.assign(nk * d, 0.0);
  r.dv.assign(nk * d, 0.0);
  std::vector<double> p(nq * nk), dp(nq * nk), dq_mag_row(d), dk_mag_row(nk * d, 0.0);
  for (int64_t i = 0; i < nq; ++i) {
    double m = -INFINITY;
    for (int64_t j = 0; j < nk; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += double(q(b, h, i, c)) * double(k(b, h, j, c));
      p[i * nk + j] = acc * s.scale;
      m = std::max(m, p[i * nk + j]);
      r.max_logit = std::max(r.max_logit, std::fabs(p[i * nk + j]));
    }
    double l = 0;
    for (int64_t j = 0; j < nk; ++j) l += std::exp(p[i * nk + j] - m);
    r.lse[i] = m + std::log(l);
    for (int64_t j = 0; j < nk; ++j) p[i * nk + j] = std::exp(p[i * nk + j] - m) / l;
    for (int64_t c = 0; c < d; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < nk; ++j) acc += p[i * nk + j] * double(v(b, h, j, c));
      r.o[i * d + c] = acc;
    }
  }
  for (int64_t i = 0; i < nq; ++i) {
    std::fill(dq_mag_row.begin(), dq_mag_row.end(), 0.0);
    double delta = 0;
    for (int64_t j = 0; j < nk; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += double(dout(b, h, i, c)) * double(v(b, h, j, c));
      dp[i * nk + j] = acc;
      delta += p[i * nk + j] * acc;
    }
    for (int64_t j = 0; j < nk; ++j) {
      const double ds = p[i * nk + j] * (dp[i * nk + j] - delta);
      const double mag = std::fabs(s.scale) * p[i * nk + j] * (std::fabs(dp[i * nk + j]) + std::fabs(delta));
      for (int64_t c = 0; c < d; ++c) {
        dq_mag_row[c] += mag * std::fabs(double(k(b, h, j, c)));
        dk_mag_row[j * d + c] += mag * std::fabs(double(q(b, h, i, c)));
        r.dq[i * d + c] += s.scale * ds * double(k(b, h, j, c));
        r.dk[j * d + c] += s.scale * ds * double(q(b, h, i, c));
        r.dv[j * d + c] += p[i * nk + j] * double(dout(b, h, i, c));
      }
    }
    for (double m : dq_mag_row) r.dq_mag = std::max(r.dq_mag, m);
  }
  for (double m : dk_mag_row) r.dk_mag = std::max(r.dk_mag, m);
  return r;
}

// max |out - ref| / max(max |ref|, floor) over a (B, H, n, d) view against per-(b, h) references;
// floor: the magnitude of the summed terms where the result can cancel to ~0 (dQ, dK).
struct ErrorStat {
  double max_abs = 0, max_ref = 0, floor = 1e-30;
  double normalized() const { return max_abs / std::max(max_ref, floor); }
  void add(double out, double ref) {
    const double e = std::isnan(out) ? INFINITY : std::fabs(out - ref);
    max_abs = std::max(max_abs, e);
    max_ref = std::max(max_ref, std::fabs(ref));
  }
};

// Every element of `buf` outside the listed views must still hold the sentinel.
bool untouched_outside(const Buffer& buf, const std::vector<const View*>& views, const Shape& s,
                       const std::vector<int64_t>& rows) {
  std::vector<char> inside(buf.host.size(), 0);
  for (size_t k = 0; k < views.size(); ++k)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t n = 0; n < rows[k]; ++n)
          for (int64_t c = 0; c < s.d; ++c) inside[views[k]->at(b, h, n, c)] = 1;
  for (size_t i = 0; i < buf.host.size(); ++i)
    if (!inside[i] && buf.host[i] != kSentinel) return false;
  return true;
}

int failures = 0;

void report(const char* name, const char* prec, const char* what, double err, double tol) {
  const bool ok = err <= tol;
  if (!ok) ++failures;
  std::printf("  %-28s %-5s %-8s max err %.3e (normalized; tolerance %.0e) %s\n", name, prec, what, err, tol,
              ok ? "ok" : "FAILED");
}
void report_flag(const char* name, const char* prec, const char* what, bool ok) {
  if (!ok) ++failures;
  std::printf("  %-28s %-5s %-8s %s\n", name, prec, what, ok ? "ok" : "FAILED");
}

struct Layouts {
  bool packed = false;  // q, k, v and dq, dk, dv inside (B, N, 3, H, D) buffers (needs nq == nk, pad 0)
  Layout q = Layout::token_major, kv = Layout::head_major;
  int64_t pad = 0, offset = 0;  // extra floats per row (odd: unaligned rows); first element's offset
  bool lse = true;
};

// Forward and backward of one shape at both precisions.
void run_case(const char* name, const Shape& s, const Layouts& lay, uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  Rng rng{seed};
  const int64_t pad = lay.packed ? 0 : lay.pad, off = lay.offset;
  // Inputs.
  const int64_t qkv_row = 3 * s.H * s.d;
  Buffer* packed_in = nullptr;
  Buffer *qb = nullptr, *kb = nullptr, *vb = nullptr;
  View q, k, v;
  if (lay.packed) {
    packed_in = new Buffer(off + s.B * s.nq * qkv_row);
    q = {packed_in, off, s.nq * qkv_row, s.d, qkv_row};
    k = {packed_in, off + s.H * s.d, s.nq * qkv_row, s.d, qkv_row};
    v = {packed_in, off + 2 * s.H * s.d, s.nq * qkv_row, s.d, qkv_row};
  } else {
    qb = new Buffer(off + extent(s, s.nq, lay.q, pad));
    kb = new Buffer(off + extent(s, s.nk, lay.kv, pad));
    vb = new Buffer(off + extent(s, s.nk, lay.kv, pad));
    q = make_view(qb, off, s, s.nq, lay.q, pad);
    k = make_view(kb, off, s, s.nk, lay.kv, pad);
    v = make_view(vb, off, s, s.nk, lay.kv, pad);
  }
  const int64_t kv_heads = lay.kv == Layout::shared_heads && !lay.packed ? 1 : s.H;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      for (int64_t n = 0; n < s.nq; ++n)
        for (int64_t c = 0; c < s.d; ++c) q(b, h, n, c) = 2.0f * rng.uniform();
      if (h < kv_heads)
        for (int64_t n = 0; n < s.nk; ++n)
          for (int64_t c = 0; c < s.d; ++c) {
            k(b, h, n, c) = 2.0f * rng.uniform();
            v(b, h, n, c) = rng.uniform();
          }
    }
  for (Buffer* buf : {packed_in, qb, kb, vb})
    if (buf) buf->upload();
  Buffer dout_buf(off + extent(s, s.nq, Layout::token_major, pad), 0.0f);
  const View dout = make_view(&dout_buf, off, s, s.nq, Layout::token_major, pad);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t n = 0; n < s.nq; ++n)
        for (int64_t c = 0; c < s.d; ++c) dout(b, h, n, c) = rng.uniform();
  dout_buf.upload();

  std::vector<Reference> ref;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) ref.push_back(reference(s, q, k, v, dout, b, h));

  for (MatmulPrecision prec : {MatmulPrecision::float32, MatmulPrecision::bf16}) {
    const bool bf16 = prec == MatmulPrecision::bf16;
    const char* pname = bf16 ? "bf16" : "fp32";
    const double tol = bf16 ? 2e-2 : 2e-5, lse_tol = bf16 ? 1e-2 : 2e-6;
    // Forward: O token-major with the row padding, lse (B, H, Nq) after an offset.
    Buffer o_buf(off + extent(s, s.nq, Layout::token_major, pad));
    const View o = make_view(&o_buf, off, s, s.nq, Layout::token_major, pad);
    Buffer lse_buf(5 + s.B * s.H * s.nq + 3);
    dv::cpu::AttentionForwardArgs fa{};
    fa.batch = s.B;
    fa.heads = s.H;
    fa.nq = s.nq;
    fa.nk = s.nk;
    fa.d = s.d;
    fa.scale = s.scale;
    fa.q = q.in();
    fa.k = k.in();
    fa.v = v.in();
    fa.o = o.out();
    fa.lse = lay.lse ? lse_buf.dev + 5 : nullptr;
    fa.precision = prec;
    dv::cuda::attention_forward(fa);
    o_buf.download();
    lse_buf.download();
    ErrorStat eo;
    double lse_err = 0;  // |lse - ref| / max(1, max |S|)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t i = 0; i < s.nq; ++i) {
          const Reference& r = ref[b * s.H + h];
          for (int64_t c = 0; c < s.d; ++c) eo.add(o(b, h, i, c), r.o[i * s.d + c]);
          if (lay.lse) {
            const double got = lse_buf.host[5 + (b * s.H + h) * s.nq + i];
            const double e = std::isnan(got) ? INFINITY : std::fabs(got - r.lse[i]) / std::max(1.0, r.max_logit);
            lse_err = std::max(lse_err, e);
          }
        }
    report(name, pname, "O", eo.normalized(), tol);
    if (lay.lse) report(name, pname, "lse", lse_err, lse_tol);
    bool clean = untouched_outside(o_buf, {&o}, s, {s.nq});
    for (int64_t i = 0; i < 5; ++i) clean = clean && lse_buf.host[i] == kSentinel;
    for (int64_t i = 5 + s.B * s.H * s.nq; i < static_cast<int64_t>(lse_buf.host.size()); ++i)
      clean = clean && lse_buf.host[i] == kSentinel;
    if (!lay.lse)
      for (float x : lse_buf.host) clean = clean && x == kSentinel;
    report_flag(name, pname, "fwd-clean", clean);
    if (!lay.lse) continue;

    // Backward from the kernels' own O and lse.
    Buffer* packed_out = nullptr;
    Buffer *dqb = nullptr, *dkb = nullptr, *dvb = nullptr;
    View dq, dk, dv;
    if (lay.packed) {
      packed_out = new Buffer(off + s.B * s.nq * qkv_row);
      dq = {packed_out, off, s.nq * qkv_row, s.d, qkv_row};
      dk = {packed_out, off + s.H * s.d, s.nq * qkv_row, s.d, qkv_row};
      dv = {packed_out, off + 2 * s.H * s.d, s.nq * qkv_row, s.d, qkv_row};
    } else {
      dqb = new Buffer(off + extent(s, s.nq, Layout::token_major, pad));
      dkb = new Buffer(off + extent(s, s.nk, Layout::head_major, pad));
      dvb = new Buffer(off + extent(s, s.nk, Layout::head_major, pad));
      dq = make_view(dqb, off, s, s.nq, Layout::token_major, pad);
      dk = make_view(dkb, off, s, s.nk, Layout::head_major, pad);
      dv = make_view(dvb, off, s, s.nk, Layout::head_major, pad);
    }
    dv::cpu::AttentionBackwardArgs ba{};
    ba.batch = s.B;
    ba.heads = s.H;
    ba.nq = s.nq;
    ba.nk = s.nk;
    ba.d = s.d;
    ba.scale = s.scale;
    ba.q = q.in();
    ba.k = k.in();
    ba.v = v.in();
    ba.o = o.in();
    ba.dout = dout.in();
    ba.lse = lse_buf.dev + 5;
    ba.dq = dq.out();
    ba.dk = dk.out();
    ba.dv = dv.out();
    ba.precision = prec;
    dv::cuda::attention_backward(ba);
    std::vector<Buffer*> outs = lay.packed ? std::vector<Buffer*>{packed_out} : std::vector<Buffer*>{dqb, dkb, dvb};
    for (Buffer* buf : outs) buf->download();
    ErrorStat eq, ek, ev;
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.H; ++h) {
        const Reference& r = ref[b * s.H + h];
        eq.floor = std::max(eq.floor, r.dq_mag);
        ek.floor = std::max(ek.floor, r.dk_mag);
        for (int64_t c = 0; c < s.d; ++c) {
          for (int64_t i = 0; i < s.nq; ++i) eq.add(dq(b, h, i, c), r.dq[i * s.d + c]);
          for (int64_t j = 0; j < s.nk; ++j) {
            ek.add(dk(b, h, j, c), r.dk[j * s.d + c]);
            ev.add(dv(b, h, j, c), r.dv[j * s.d + c]);
          }
        }
      }
    report(name, pname, "dQ", eq.normalized(), tol);
    report(name, pname, "dK", ek.normalized(), tol);
    report(name, pname, "dV", ev.normalized(), tol);
    if (lay.packed) {
      clean = untouched_outside(*packed_out, {&dq, &dk, &dv}, s, {s.nq, s.nk, s.nk});
    } else {
      clean = untouched_outside(*dqb, {&dq}, s, {s.nq}) && untouched_outside(*dkb, {&dk}, s, {s.nk}) &&
              untouched_outside(*dvb, {&dv}, s, {s.nk});
    }
    report_flag(name, pname, "bwd-clean", clean);
    // Determinism: a second backward gives the same bits.
    std::vector<std::vector<float>> first;
    for (Buffer* buf : outs) first.push_back(buf->host);
    dv::cuda::attention_backward(ba);
    bool same = true;
    for (size_t i = 0; i < outs.size(); ++i) {
      outs[i]->download();
      same = same && std::memcmp(first[i].data(), outs[i]->host.data(), first[i].size() * sizeof(float)) == 0;
    }
    report_flag(name, pname, "determ.", same);
    for (Buffer* buf : outs) delete buf;
  }
  for (Buffer* buf : {packed_in, qb, kb, vb}) delete buf;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  %-28s %.0f ms\n", name, ms);
}

// ---- cases: B = 2, H = 3 unless said otherwise -------------------------------------------------

// The selfAttention layout: q, k, v read in place from (B, N, 3, H, D); dq, dk, dv written into one.
void case_packed_n17_d8() {
  Layouts lay;
  lay.packed = true;
  run_case("packed N=17 d=8", {2, 3, 17, 17, 8, 1.0f / std::sqrt(8.0f)}, lay, 1);
}

// Nq = 65 (a 64-row tile plus one row), Nk = 17, d = 40 (padded to 48 / 64), rows of d + 1 floats
// at an odd offset: no row is 8-byte aligned, so every vector path is off.
void case_n65_nk17_d40_unaligned() {
  Layouts lay;
  lay.pad = 1;
  lay.offset = 3;
  run_case("Nq=65 Nk=17 d=40 unaligned", {2, 3, 65, 17, 40, 1.0f / std::sqrt(40.0f)}, lay, 2);
}

// One query against 65 keys shared by every head (head stride 0), d = 64.
void case_n1_nk65_d64_shared_heads() {
  Layouts lay;
  lay.kv = Layout::shared_heads;
  lay.pad = 4;
  run_case("Nq=1 Nk=65 d=64 kv-shared", {2, 3, 1, 65, 64, 0.125f}, lay, 3);
}

// 17 queries, one key, d = 64, aligned rows (vector loads on).
void case_n17_nk1_d64() {
  Layouts lay;
  lay.q = Layout::head_major;
  run_case("Nq=17 Nk=1 d=64", {2, 3, 17, 1, 64, 0.125f}, lay, 4);
}

// Odd sizes: Nq = 3, Nk = 33 (a second, nearly empty key tile at 32-key tiles), d = 64, scale 1.
void case_n3_nk33_d64() {
  Layouts lay;
  lay.pad = 2;
  run_case("Nq=3 Nk=33 d=64", {2, 3, 3, 33, 64, 1.0f}, lay, 5);
}

// Inference: no lse (the forward must not touch the lse buffer).
void case_no_lse_d8() {
  Layouts lay;
  lay.lse = false;
  run_case("no lse N=17 d=8", {2, 3, 17, 17, 8, 0.35f}, lay, 6);
}

// Several query tiles of every kernel (128-row forward tiles on tensor cores), B = 1, H = 1.
void case_long() { run_case("Nq=150 Nk=70 d=64 (B1,H1)", {1, 1, 150, 70, 64, 0.125f}, Layouts{}, 9); }

// The larger head-dim classes: d = 96 (128) and d = 130 (256, two dK/dV column chunks).
void case_d96() { run_case("Nq=17 Nk=20 d=96 (B1,H2)", {1, 2, 17, 20, 96, 0.1f}, Layouts{}, 7); }
void case_d130() {
  Layouts lay;
  lay.pad = 1;
  run_case("Nq=9 Nk=17 d=130 (B1,H2)", {1, 2, 9, 17, 130, 0.09f}, lay, 8);
}

// Every head-dim class and its edges (d = 1 .. 256), B = 1, H = 2, Nq = 17, Nk = 33.
void case_head_dims() {
  for (int64_t d : {1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256}) {
    Layouts lay;
    lay.pad = d % 3;
    const std::string name = "head dim d=" + std::to_string(d);
    run_case(name.c_str(), {1, 2, 17, 33, d, 1.0f / std::sqrt(float(d))}, lay, 100 + d);
  }
}

// No queries: the backward writes dK = dV = 0 and nothing else.
void case_no_queries() {
  const Shape s{2, 3, 0, 17, 40, 0.2f};
  for (MatmulPrecision prec : {MatmulPrecision::float32, MatmulPrecision::bf16}) {
    Buffer in(extent(s, 17, Layout::head_major, 0), 0.5f), empty(8, 0.0f);
    Buffer dkb(extent(s, 17, Layout::head_major, 0)), dvb(extent(s, 17, Layout::head_major, 0)), dqb(8);
    const View kv = make_view(&in, 0, s, 17, Layout::head_major, 0);
    const View dk = make_view(&dkb, 0, s, 17, Layout::head_major, 0), dv = make_view(&dvb, 0, s, 17, Layout::head_major, 0);
    const View none{&empty, 0, 0, 0, 0};
    dv::cpu::AttentionBackwardArgs ba{};
    ba.batch = s.B;
    ba.heads = s.H;
    ba.nq = 0;
    ba.nk = s.nk;
    ba.d = s.d;
    ba.scale = s.scale;
    ba.q = none.in();
    ba.k = kv.in();
    ba.v = kv.in();
    ba.o = none.in();
    ba.dout = none.in();
    ba.lse = empty.dev;
    ba.dq = {dqb.dev, 0, 0, 0};
    ba.dk = dk.out();
    ba.dv = dv.out();
    ba.precision = prec;
    dv::cuda::attention_backward(ba);
    dkb.download();
    dvb.download();
    dqb.download();
    bool ok = true;
    for (float x : dkb.host) ok = ok && x == 0.0f;
    for (float x : dvb.host) ok = ok && x == 0.0f;
    for (float x : dqb.host) ok = ok && x == kSentinel;
    report_flag("Nq=0 backward", prec == MatmulPrecision::bf16 ? "bf16" : "fp32", "zeros", ok);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;  // skips the larger head dims
  std::printf("attention_check: CUDA attention vs float64 reference\n");
  try {
    case_packed_n17_d8();
    case_n65_nk17_d40_unaligned();
    case_n1_nk65_d64_shared_heads();
    case_n17_nk1_d64();
    case_n3_nk33_d64();
    case_no_lse_d8();
    case_no_queries();
    case_long();
    if (!quick) {
      case_d96();
      case_d130();
      case_head_dims();
    }
  } catch (const std::exception& e) {
    std::printf("exception: %s\n", e.what());
    return 2;
  }
  std::printf(failures ? "%d check(s) FAILED\n" : "all checks passed\n", failures);
  return failures ? 1 : 0;
}
