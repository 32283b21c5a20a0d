// Kernel tests written once and run on every backend (suite BackendOps). This file holds the
// elementwise, data-movement, reduction, matmul and optimizer cases and the test itself; the
// row-wise cases are in test_backend_ops_rows.cpp, the harness in backend_ops.h.
//
// Each kernel of the op table (core/kernels.h) is one case below: its shapes (the odd sizes 1,
// 3, 13, 127 and round ones), seeded inputs, and the expected outputs computed here on the host
// in double with plain loops straight from the kernel's definition in kernels.h (never with the
// CPU backend's code), each compared with a tolerance that says why. One value-parameterised
// test runs every case on every backend: the CPU, and each usable Vulkan device with the
// Khronos validation layer on (no message allowed). An absent backend is skipped with the
// reason printed; the VulkanTest suite is the one that fails when CI has lost its device.
//
// Metrics: `exact` (bit-equal to the float of the expectation: data movement, counts) or
// test::rel_error, the suite's one relative error, against a stated tolerance; u = 2^-24
// ≈ 6e-8 is float32's unit roundoff. Where an output can cancel to near 0 while its rounding
// scales with the terms that made it, the floor of rel_error is the norm of those terms'
// magnitudes ("floor: ..."). Every buffer carries sentinel guards after it (and before it,
// where the kernel takes offsets) that must come back untouched; outputs start as NaN, so an
// element a kernel forgets to write fails the comparison.
#include <string>
#include <vector>

#include "backend_ops.h"
#include "vulkan/device.h"

using namespace ait;
using namespace ait::backend_ops;

namespace {

// ---------------------------------------------------------------------------------------------
// Elementwise: fill, axpby, binary, gelu, dropout
// ---------------------------------------------------------------------------------------------

void case_fill(Bench& b) {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(13), int64_t(127), int64_t(128), int64_t(70001)})
    for (float v : {3.25f, -0.0f}) {
      SCOPED_TRACE(dims({n}) + " value " + std::to_string(v));
      Bench::Buf y = b.output(n);
      b.k().fill(*y, n, v);
      b.expect_exact("y", b.read(y, "fill"), std::vector<float>(n, v));
    }
}

// y = a·x + b·y. Floor: ‖|a·x| + |b·y|‖, as the sum can cancel. Tolerance 1e-6: two products and
// a sum round (≤ 3u per element, or fewer with a fused multiply-add).
void case_axpby(Bench& b) {
  for (int64_t n : kSizes)
    for (auto [a, beta] : {std::pair{1.5f, -0.75f}, std::pair{-2.0f, 0.0f}}) {
      SCOPED_TRACE(dims({n}) + " a " + std::to_string(a) + " b " + std::to_string(beta));
      std::vector<float> x = randn(n, 1 + n), y0 = randn(n, 2 + n);
      if (beta == 0.0f) std::fill(y0.begin(), y0.end(), NAN);  // b == 0 overwrites, even NaN
      Bench::Buf bx = b.input(x), by = b.input(y0);
      b.k().axpby(*by, *bx, n, a, beta);
      std::vector<double> want(n), mag(n);
      for (int64_t i = 0; i < n; ++i) {
        double by_term = beta == 0.0f ? 0.0 : double(beta) * y0[i];
        want[i] = double(a) * x[i] + by_term;
        mag[i] = std::fabs(double(a) * x[i]) + std::fabs(by_term);
      }
      b.expect_rel("y", b.read(by, "axpby"), want, 1e-6, norm2(mag));
    }
}

// Contiguous strides of `out`, 0 on the axes where the operand's extent is 1 (the kernel's input).
Strided broadcast_strides(const std::vector<int64_t>& out, const std::vector<int64_t>& a,
                          const std::vector<int64_t>& b) {
  Strided s;
  s.rank = static_cast<int>(out.size());
  int64_t sa = 1, sb = 1;
  for (int d = s.rank - 1; d >= 0; --d) {
    s.shape[d] = out[d];
    s.stride_a[d] = a[d] == 1 ? 0 : sa;
    s.stride_b[d] = b[d] == 1 ? 0 : sb;
    sa *= a[d];
    sb *= b[d];
  }
  return s;
}
int64_t numel_of(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (int64_t d : s) p *= d;
  return p;
}
// The element of `operand` (broadcast to `out`) at flat output index `i`.
int64_t broadcast_index(int64_t i, const std::vector<int64_t>& out, const std::vector<int64_t>& operand) {
  int64_t idx = 0, stride = 1;
  for (int d = static_cast<int>(out.size()) - 1; d >= 0; --d) {
    int64_t coord = i % out[d];
    i /= out[d];
    if (operand[d] != 1) idx += coord * stride;
    stride *= operand[d];
  }
  return idx;
}

// Floor: ‖|a| + |b|‖ (add and sub can cancel). Tolerance 1e-6: one rounding (u), and GLSL allows
// division 2.5 ulp.
void case_binary(Bench& b) {
  struct Shapes {
    std::vector<int64_t> out, a, b;
  };
  std::vector<Shapes> cases;
  for (int64_t n : kSizes) {
    cases.push_back({{n}, {n}, {n}});
    cases.push_back({{n, 13}, {n, 13}, {1, 13}});
    cases.push_back({{3, n}, {3, 1}, {3, n}});
    cases.push_back({{n, 3, 2}, {n, 1, 2}, {1, 3, 1}});
    cases.push_back({{2, n, 1, 3}, {2, n, 1, 3}, {1, 1, 1, 1}});
  }
  cases.push_back({{2, 3, 1, 2, 3, 2}, {2, 1, 1, 2, 1, 2}, {1, 3, 1, 1, 3, 2}});
  cases.push_back({{}, {}, {}});
  const char* names[] = {"add", "sub", "mul", "div"};
  uint64_t seed = 0;
  for (const Shapes& c : cases)
    for (int op = 0; op < 4; ++op) {
      SCOPED_TRACE(std::string(names[op]) + " rank " + std::to_string(c.out.size()) + " numel " +
                   std::to_string(numel_of(c.out)));
      std::vector<float> av = randn(numel_of(c.a), 50 + seed), bv = randn(numel_of(c.b), 60 + seed++);
      if (op == 3)
        for (float& x : bv) x = std::copysign(0.5f + std::fabs(x), x);  // divisors away from 0
      Bench::Buf ba = b.input(av), bb = b.input(bv), y = b.output(numel_of(c.out));
      b.k().binary(static_cast<BinaryOp>(op), *ba, *bb, *y, broadcast_strides(c.out, c.a, c.b));
      std::vector<double> want(numel_of(c.out)), mag(want.size());
      for (int64_t i = 0; i < numel_of(c.out); ++i) {
        double x = av[broadcast_index(i, c.out, c.a)], z = bv[broadcast_index(i, c.out, c.b)];
        want[i] = op == 0 ? x + z : op == 1 ? x - z : op == 2 ? x * z : x / z;
        mag[i] = op < 2 ? std::fabs(x) + std::fabs(z) : std::fabs(want[i]);
      }
      b.expect_rel(std::string("y (") + names[op] + ")", b.read(y, "binary"), want, 1e-6, norm2(mag));
    }
}

// gelu(x) = x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2; gelu'(x) = Φ(x) + x·φ(x). Tolerance 2e-6:
// the shaders' erfc fit (1.2e-7 relative) is an exp of a float argument near −x²/2, which
// loses u·x²/2 relative in the tails (tiny values, small in the norm), plus a few roundings;
// lavapipe measures 6.4e-7 for gelu_backward.
void case_gelu(Bench& b) {
  std::vector<std::vector<float>> inputs;
  for (int64_t n : kSizes) inputs.push_back(randn(n, 10 + n, 3.0f));
  inputs.push_back({-12.f, -8.f, -5.f, -3.f, -1e-3f, 0.f, 1e-3f, 3.f, 5.f, 8.f, 12.f});  // tails and 0
  for (size_t t = 0; t < inputs.size(); ++t) {
    const std::vector<float>& x = inputs[t];
    const size_t n = x.size();
    SCOPED_TRACE(t + 1 == inputs.size() ? std::string("tails") : dims({int64_t(n)}));
    std::vector<float> dy = randn(n, 20 + n);
    Bench::Buf bx = b.input(x), bdy = b.input(dy), y = b.output(n), dx = b.output(n);
    b.k().gelu(*bx, *y, n);
    b.k().gelu_backward(*bx, *bdy, *dx, n);
    std::vector<double> want_y(n), want_dx(n);
    for (size_t i = 0; i < n; ++i) {
      double cdf = 0.5 * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
      double pdf = std::exp(-0.5 * double(x[i]) * x[i]) / std::sqrt(2.0 * M_PI);
      want_y[i] = x[i] * cdf;
      want_dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
    b.expect_rel("gelu", b.read(y, "gelu"), want_y, 2e-6);
    b.expect_rel("gelu_backward", b.read(dx, "gelu_backward"), want_dx, 2e-6);
  }
}

// mask[i] = (u(seed, i) >= p) / (1 − p) with u = (hash32(i·0x9E3779B9 ^ hash32(seed)) >> 8) / 2^24,
// the portable draw kernels.h documents. The kept set must match exactly; the values round
// 1/(1 − p) and x·mask (≤ 2u): tolerance 1e-6.
void case_dropout(Bench& b) {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(13), int64_t(127), int64_t(128), int64_t(70001)})
    for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
      SCOPED_TRACE(dims({n}) + " p " + std::to_string(p));
      const uint32_t seed = static_cast<uint32_t>(n * 31 + p * 100);
      std::vector<float> x = randn(n, 30 + n);
      Bench::Buf bx = b.input(x), y = b.output(n), mask = b.output(n);
      b.k().dropout(*bx, *y, *mask, n, p, seed);
      std::vector<double> want_mask(n), want_y(n);
      for (int64_t i = 0; i < n; ++i) {
        uint32_t h = hash32(static_cast<uint32_t>(i) * 0x9E3779B9u ^ hash32(seed));
        double u = double(h >> 8) / 16777216.0;
        want_mask[i] = u >= p ? 1.0 / (1.0 - double(p)) : 0.0;
        want_y[i] = x[i] * want_mask[i];
      }
      std::vector<float> got_mask = b.read(mask, "dropout mask"), got_y = b.read(y, "dropout");
      b.expect_same_zeros("mask", got_mask, want_mask);
      b.expect_rel("mask", got_mask, want_mask, 1e-6);
      b.expect_rel("y", got_y, want_y, 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Data movement: permute, copy_blocks
// ---------------------------------------------------------------------------------------------

void case_permute(Bench& b) {
  std::vector<std::pair<std::vector<int64_t>, std::vector<int>>> cases;
  for (int64_t n : kSizes) {
    cases.push_back({{n, 13}, {1, 0}});
    cases.push_back({{n, 3, 5}, {2, 0, 1}});
    cases.push_back({{2, n, 3, 4}, {0, 2, 1, 3}});  // the innermost axis stays
    cases.push_back({{n, 2, 3, 8}, {2, 1, 0, 3}});
    cases.push_back({{n}, {0}});
  }
  cases.push_back({{2, 3, 1, 4, 2, 3}, {5, 3, 1, 0, 4, 2}});
  uint64_t seed = 0;
  for (const auto& [shape, perm] : cases) {
    const int rank = static_cast<int>(shape.size());
    const int64_t n = numel_of(shape);
    SCOPED_TRACE("rank " + std::to_string(rank) + " numel " + std::to_string(n));
    std::vector<float> x = randn(n, 70 + seed++);
    Bench::Buf bx = b.input(x), y = b.output(n);
    b.k().permute(*bx, *y, rank, shape.data(), perm.data());
    // y's axis d is x's axis perm[d]: walk y in order, carrying its coordinates.
    std::vector<int64_t> x_stride(rank, 1), coord(rank, 0);
    for (int d = rank - 2; d >= 0; --d) x_stride[d] = x_stride[d + 1] * shape[d + 1];
    std::vector<float> want(n);
    for (int64_t i = 0; i < n; ++i) {
      int64_t src = 0;
      for (int d = 0; d < rank; ++d) src += coord[d] * x_stride[perm[d]];
      want[i] = x[src];
      for (int d = rank - 1; d >= 0 && ++coord[d] == shape[perm[d]]; --d) coord[d] = 0;
    }
    b.expect_exact("y", b.read(y, "permute"), want);
  }
}

// A plain copy is exact; accumulating adds once (≤ u, floor ‖|dst| + |src|‖): tolerance 1e-6.
void case_copy_blocks(Bench& b) {
  uint64_t seed = 0;
  for (int64_t outer : kSizes)
    for (int64_t inner : kSizes)
      for (bool acc : {false, true}) {
        SCOPED_TRACE(dims({outer, inner}) + (acc ? " accumulate" : " copy"));
        const int64_t src_stride = inner + 5, dst_stride = inner + 2, src_off = 3, dst_off = 7, head = 5;
        std::vector<float> src = randn(src_off + (outer - 1) * src_stride + inner, 80 + seed);
        // The gaps between the destination's blocks hold data that must survive.
        std::vector<float> dst = randn(dst_off + (outer - 1) * dst_stride + inner, 90 + seed++);
        Bench::Buf bs = b.input(src), bd = b.input(dst, head);
        b.k().copy_blocks(*bs, src_off, src_stride, *bd, head + dst_off, dst_stride, outer, inner, acc);
        std::vector<double> want = to_double(dst), mag(dst.size());
        for (size_t i = 0; i < dst.size(); ++i) mag[i] = std::fabs(dst[i]);
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t j = 0; j < inner; ++j) {
            double s = src[src_off + o * src_stride + j];
            double& w = want[dst_off + o * dst_stride + j];
            w = acc ? w + s : s;
            mag[dst_off + o * dst_stride + j] += std::fabs(s);
          }
        std::vector<float> got = b.read(bd, "copy_blocks");
        if (acc) b.expect_rel("dst (accumulate)", got, want, 1e-6, norm2(mag));
        else b.expect_exact("dst (copy)", got, to_float(want));
      }
}

// ---------------------------------------------------------------------------------------------
// Reductions over the middle axis of [outer, n, inner]: reduce_sum, count_positive
// ---------------------------------------------------------------------------------------------

std::vector<std::array<int64_t, 3>> reduction_shapes() {
  std::vector<std::array<int64_t, 3>> shapes;
  for (int64_t a : kSizes)
    for (int64_t c : kSizes) {
      shapes.push_back({a, c, 1});
      shapes.push_back({1, a, c});
      if (a * c <= 2000) shapes.push_back({3, a, c});
    }
  shapes.push_back({2, 20000, 1});  // long reductions: several chunk passes
  shapes.push_back({1, 1500, 3});
  shapes.push_back({2, 70000, 1});
  return shapes;
}

// y = 0.5·Σ_j x. Floor: ‖0.5·Σ_j |x|‖ (random signs cancel). Float32 sums of up to 70000
// terms in a blocked order: error about √n·u relative to Σ|x| (≈ 1.6e-5 at worst for a
// sequential sum); tolerance 1e-5.
void case_reduce_sum(Bench& b) {
  uint64_t seed = 0;
  for (auto [outer, n, inner] : reduction_shapes()) {
    SCOPED_TRACE(dims({outer, n, inner}));
    std::vector<float> x = randn(outer * n * inner, 100 + seed++);
    Bench::Buf bx = b.input(x), y = b.output(outer * inner);
    b.k().reduce_sum(*bx, *y, outer, n, inner, 0.5f);
    std::vector<double> want(outer * inner, 0.0), mag(outer * inner, 0.0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) {
          want[o * inner + i] += 0.5 * x[(o * n + j) * inner + i];
          mag[o * inner + i] += 0.5 * std::fabs(x[(o * n + j) * inner + i]);
        }
    b.expect_rel("y", b.read(y, "reduce_sum"), want, 1e-5, norm2(mag));
  }
}

// Counts are exact; zeros of both signs are in the input (x > 0 is strict).
void case_count_positive(Bench& b) {
  uint64_t seed = 0;
  for (auto [outer, n, inner] : reduction_shapes()) {
    SCOPED_TRACE(dims({outer, n, inner}));
    std::vector<float> x = randn(outer * n * inner, 200 + seed++);
    for (size_t i = 0; i < x.size(); i += 7) x[i] = (i % 2) ? -0.0f : 0.0f;
    Bench::Buf bx = b.input(x), y = b.output(outer * inner);
    b.k().count_positive(*bx, *y, outer, n, inner);
    std::vector<float> want(outer * inner, 0.0f);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) want[o * inner + i] += x[(o * n + j) * inner + i] > 0 ? 1.0f : 0.0f;
    b.expect_exact("y", b.read(y, "count_positive"), want);
  }
}

// ---------------------------------------------------------------------------------------------
// Matmul (the automatic tile choice)
// ---------------------------------------------------------------------------------------------

struct MatmulCase {
  int64_t batch, M, N, K;
  bool ta, tb;
  bool shared_b = false;  // one B for every batch item (stride_b = 0)
  int64_t pad = 0;        // leading dimensions exceed the row lengths by this
  int64_t off = 0;        // element offsets of A, B and C
  float alpha = 1.0f, beta = 0.0f;
  bool bias = false;
};

std::string describe(const MatmulCase& t) {
  return "batch " + std::to_string(t.batch) + " " + dims({t.M, t.N, t.K}) + (t.ta ? " Aᵀ" : "") + (t.tb ? " Bᵀ" : "") +
         (t.shared_b ? " shared B" : "") + (t.bias ? " bias" : "") + " pad " + std::to_string(t.pad) + " off " +
         std::to_string(t.off) + " alpha " + std::to_string(t.alpha) + " beta " + std::to_string(t.beta);
}

// C = alpha·op(A)·op(B) + beta·C (+ bias[n]) by the triple loop. Floor: ‖Σ_k |alpha·a·b| +
// |beta·c| + |bias|‖. Float32 dot products of K ≤ 3000 terms: error about √K·u of that
// magnitude (≤ 3.3e-6); tolerance 1e-5. C's padding columns must come back unchanged, bit for
// bit, and where beta = 0 the NaN planted in C must not leak in.
void run_matmul_case(Bench& b, const MatmulCase& t, uint64_t seed) {
  SCOPED_TRACE(describe(t));
  MatmulArgs g;
  g.batch = t.batch, g.M = t.M, g.N = t.N, g.K = t.K, g.trans_a = t.ta, g.trans_b = t.tb;
  const int64_t a_rows = t.ta ? t.K : t.M, a_cols = t.ta ? t.M : t.K;
  const int64_t b_rows = t.tb ? t.N : t.K, b_cols = t.tb ? t.K : t.N;
  g.lda = a_cols + t.pad, g.ldb = b_cols + t.pad, g.ldc = t.N + t.pad;
  g.stride_a = a_rows * g.lda;
  g.stride_b = t.shared_b ? 0 : b_rows * g.ldb;
  g.stride_c = t.M * g.ldc;
  g.off_a = g.off_b = t.off, g.off_c = t.off;
  g.alpha = t.alpha, g.beta = t.beta;
  std::vector<float> av = randn(t.off + t.batch * g.stride_a, 200 + seed);
  std::vector<float> bv = randn(t.off + (t.shared_b ? b_rows * g.ldb : t.batch * g.stride_b), 300 + seed);
  std::vector<float> c0 = randn(t.batch * g.stride_c, 400 + seed), bias = randn(t.N, 500 + seed);
  if (t.beta == 0.0f)
    for (size_t i = 0; i < c0.size(); i += 3) c0[i] = NAN;  // must be overwritten, not read
  Bench::Buf ba = b.input(av), bb = b.input(bv), bc = b.input(c0, t.off), bbias = b.input(bias);
  if (t.bias) g.bias = bbias.buf.get();
  b.k().matmul(*ba, *bb, *bc, g);
  std::vector<float> got_c = b.read(bc, "matmul"), got, padding, want_padding;
  std::vector<double> want, mag;
  for (int64_t bi = 0; bi < t.batch; ++bi)
    for (int64_t m = 0; m < t.M; ++m) {
      for (int64_t n = 0; n < t.N; ++n) {
        double acc = 0, abs_acc = 0;
        for (int64_t k = 0; k < t.K; ++k) {
          double x = av[t.off + bi * g.stride_a + (t.ta ? k * g.lda + m : m * g.lda + k)];
          double y = bv[t.off + bi * g.stride_b + (t.tb ? n * g.ldb + k : k * g.ldb + n)];
          acc += x * y;
          abs_acc += std::fabs(x * y);
        }
        const int64_t ci = bi * g.stride_c + m * g.ldc + n;
        double c_term = t.beta == 0.0f ? 0.0 : double(t.beta) * c0[ci], b_term = t.bias ? bias[n] : 0.0;
        want.push_back(t.alpha * acc + c_term + b_term);
        mag.push_back(std::fabs(t.alpha) * abs_acc + std::fabs(c_term) + std::fabs(b_term));
        got.push_back(got_c[ci]);
      }
      for (int64_t n = t.N; n < g.ldc; ++n) {
        padding.push_back(got_c[bi * g.stride_c + m * g.ldc + n]);
        want_padding.push_back(c0[bi * g.stride_c + m * g.ldc + n]);
      }
    }
  b.expect_rel("C", got, want, 1e-5, norm2(mag));
  b.expect_exact("C padding (unchanged)", padding, want_padding);
}

void case_matmul(Bench& b) {
  std::vector<MatmulCase> cases;
  for (int64_t s : kSizes)
    for (int tr = 0; tr < 4; ++tr) cases.push_back({1, s, s, s, bool(tr & 1), bool(tr & 2)});
  for (int tr = 0; tr < 4; ++tr) {
    const bool ta = tr & 1, tb = tr & 2;
    // Thin, wide and deep extents, and K = 0 (C = beta·C + bias).
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{
             {1, 200, 13}, {200, 1, 127}, {127, 3, 200}, {13, 200, 1}, {3, 127, 200}, {200, 13, 3}, {130, 140, 0}})
      cases.push_back({1, M, N, K, ta, tb});
    cases.push_back({1, 13, 5, 0, ta, tb, false, 0, 0, 1.0f, 0.5f, true});
    cases.push_back({3, 13, 127, 13, ta, tb});                      // batched
    cases.push_back({2, 127, 13, 200, ta, tb, /*shared_b=*/true});  // shared B
    cases.push_back({2, 130, 129, 17, ta, tb, false, /*pad=*/3, /*off=*/5, 0.5f, 0.0f});
    cases.push_back({2, 64, 68, 32, ta, tb, false, /*pad=*/4, /*off=*/8, -1.25f, 0.75f});
    cases.push_back({1, 3, 200, 127, ta, tb, false, 0, 0, 2.0f, 1.0f});
    cases.push_back({2, 127, 13, 200, ta, tb, false, 0, 0, 1.0f, 0.0f, /*bias=*/true});
    cases.push_back({1, 13, 130, 300, ta, tb, false, 1, 3, 0.5f, 0.5f, /*bias=*/true});
    cases.push_back({1, 13, 20, 3000, ta, tb});  // deep and narrow (the Vulkan backend splits K)
  }
  uint64_t seed = 0;
  for (const MatmulCase& t : cases) run_matmul_case(b, t, seed++);
}

// ---------------------------------------------------------------------------------------------
// Optimizer: adamw
// ---------------------------------------------------------------------------------------------

// Three PyTorch AdamW steps from kernels.h's formula, the host state kept in double throughout:
// p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
// p ← p − (lr / bc1)·m / (√v / √bc2 + eps). A few roundings per step, three steps: tolerance 1e-6.
void case_adamw(Bench& b) {
  for (int64_t n : kSizes) {
    SCOPED_TRACE(dims({n}));
    std::vector<float> p0 = randn(n, 40 + n), m0 = randn(n, 41 + n, 0.1f), v0 = randn(n, 42 + n, 0.1f);
    for (float& v : v0) v = v * v;
    Bench::Buf bp = b.input(p0), bm = b.input(m0), bv = b.input(v0);
    std::vector<double> p = to_double(p0), m = to_double(m0), v = to_double(v0);
    for (int step = 1; step <= 3; ++step) {
      std::vector<float> g = randn(n, 43 + n + step);
      const AdamWArgs a{
          1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - std::pow(0.9f, float(step)), 1.0f - std::pow(0.999f, float(step))};
      Bench::Buf bg = b.input(g);
      b.k().adamw(*bp, *bg, *bm, *bv, n, a);
      for (int64_t i = 0; i < n; ++i) {
        p[i] *= 1.0 - double(a.lr) * a.weight_decay;
        m[i] = a.beta1 * m[i] + (1.0 - a.beta1) * g[i];
        v[i] = a.beta2 * v[i] + (1.0 - a.beta2) * double(g[i]) * g[i];
        const double denom = std::sqrt(v[i]) / std::sqrt(double(a.bias_correction2)) + a.eps;
        p[i] -= double(a.lr) / a.bias_correction1 * m[i] / denom;
      }
    }
    b.expect_rel("p", b.read(bp, "adamw p"), p, 1e-6);
    b.expect_rel("m", b.read(bm, "adamw m"), m, 1e-6);
    b.expect_rel("v", b.read(bv, "adamw v"), v, 1e-6);
  }
}

struct OpCase {
  const char* kernel;
  void (*run)(Bench&);
};

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = {
      {"fill", case_fill},
      {"axpby", case_axpby},
      {"binary", case_binary},
      {"gelu", case_gelu},
      {"dropout", case_dropout},
      {"permute", case_permute},
      {"copy_blocks", case_copy_blocks},
      {"reduce_sum", case_reduce_sum},
      {"count_positive", case_count_positive},
      {"matmul", case_matmul},
      {"layernorm", case_layernorm},
      {"softmax", case_softmax},
      {"topk_gate", case_topk_gate},
      {"cross_entropy", case_cross_entropy},
      {"l2_normalize", case_l2_normalize},
      {"adamw", case_adamw},
  };
  return cases;
}

// Runs one case on one backend and prints its worst errors.
void run_case(Kernels& k, const std::string& backend, const OpCase& c) {
  SCOPED_TRACE(backend);
  Bench bench(k);
  c.run(bench);
  k.sync();
  std::printf("%s on %s, worst error per output:\n%s", c.kernel, backend.c_str(), bench.summary().c_str());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Every case on every backend
// ---------------------------------------------------------------------------------------------

class KernelOnBackend : public ::testing::TestWithParam<std::tuple<std::string, size_t>> {};

TEST_P(KernelOnBackend, MatchesHostExpectation) {
  const auto& [backend, index] = GetParam();
  const OpCase& c = op_cases()[index];
  if (backend == "cpu") {
    run_case(cpu(), "cpu", c);
    return;
  }
  // Every usable Vulkan device, each under the validation layer.
  std::vector<DeviceInfo> devices = list_devices();
  int ran = 0;
  for (const DeviceInfo& d : devices) {
    const std::string spec = "vulkan:" + std::to_string(d.index);
    if (!d.usable) {
      std::printf("not run on %s (%s): %s\n", spec.c_str(), d.name.c_str(), d.unusable_reason.c_str());
      continue;
    }
    Kernels* k = select_device(spec);
    vk_clear_validation_messages();
    run_case(*k, spec + " " + d.name, c);
    test::expect_no_validation_messages();
    ++ran;
  }
  if (ran == 0) {
#ifdef AIT_VULKAN
    GTEST_SKIP() << "no usable Vulkan device (" << devices.size() << " listed; `ait devices` tells why)";
#else
    GTEST_SKIP() << "built without Vulkan support";
#endif
  }
}

INSTANTIATE_TEST_SUITE_P(BackendOps, KernelOnBackend,
                         ::testing::Combine(::testing::Values("cpu", "vulkan"),
                                            ::testing::Range(size_t(0), op_cases().size())),
                         [](const ::testing::TestParamInfo<KernelOnBackend::ParamType>& info) {
                           return std::get<0>(info.param) + "_" + op_cases()[std::get<1>(info.param)].kernel;
                         });
