// Tests for ait::sgemm (src/gemm.h) against a double-precision triple loop.
//
// Tolerance, per element of C:
//   |c - ref| <= 1e-5 * (|alpha| * sum_k |a_ik * b_kj| + |beta * c0_ij|) + 1e-30
// i.e. 1e-5 * sum_k |a_ik b_kj| + 1e-30 for alpha = 1, beta = 0. Float32 accumulation of K terms
// in any order stays well inside this (its worst case is about K * 6e-8 relative to the
// absolute sum, and the blocked kernel's error grows far slower than that in practice).
//
// Padding of A and B (the part of each row past the logical width) holds NaN, so reading it
// would show up; the padding of C holds a sentinel that must survive untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "cpu/gemm.h"
#include "cpu/threadpool.h"

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = -12345.0f;

// AIT_TEST_SCALE=small (the sanitizer build) trims the largest sweeps.
bool small_scale() {
  const char* s = std::getenv("AIT_TEST_SCALE");
  return s && std::string(s) == "small";
}

// A row-major matrix of rows x cols with row stride ld >= cols; the padding is `pad`.
struct Mat {
  int64_t rows = 0, cols = 0, ld = 0;
  std::vector<float> v;
  Mat(int64_t r, int64_t c, int64_t pad_cols, float pad, ait::Rng& rng) : rows(r), cols(c), ld(c + pad_cols) {
    v.assign(static_cast<size_t>(std::max<int64_t>(1, rows * ld)), pad);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) v[i * ld + j] = rng.uniform(-1.0f, 1.0f);
  }
  float* data() { return v.data(); }
};

struct Case {
  bool ta = false, tb = false;
  int64_t M = 1, N = 1, K = 1;
  float alpha = 1.0f, beta = 0.0f;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra columns per stored row
  bool nan_c = false;                       // fill C with NaN (only meaningful with beta == 0)
  uint64_t seed = 1;
};

std::string describe(const Case& c) {
  return "ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " M=" + std::to_string(c.M) +
         " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + " alpha=" + std::to_string(c.alpha) +
         " beta=" + std::to_string(c.beta) + " pads=" + std::to_string(c.pad_a) + "," + std::to_string(c.pad_b) + "," +
         std::to_string(c.pad_c);
}

// Runs one product and checks every element (and that C's padding is untouched).
// Returns the number of failing elements (reports only the first few).
int64_t run_case(const Case& c) {
  ait::Rng rng(c.seed);
  // Stored shapes: A is [M,K] or [K,M] (trans_a); B is [K,N] or [N,K] (trans_b).
  Mat A(c.ta ? c.K : c.M, c.ta ? c.M : c.K, c.pad_a, kNaN, rng);
  Mat B(c.tb ? c.N : c.K, c.tb ? c.K : c.N, c.pad_b, kNaN, rng);
  Mat C(c.M, c.N, c.pad_c, kSentinel, rng);
  if (c.nan_c)
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) C.v[i * C.ld + j] = kNaN;
  const std::vector<float> C0 = C.v;

  ait::sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), A.ld, B.data(), B.ld, c.beta, C.data(), C.ld);

  int64_t bad = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      double sum = 0, abs_sum = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.ta ? A.v[k * A.ld + i] : A.v[i * A.ld + k];
        const double b = c.tb ? B.v[j * B.ld + k] : B.v[k * B.ld + j];
        sum += a * b;
        abs_sum += std::fabs(a * b);
      }
      const double c0 = C0[i * C.ld + j];
      const double ref = c.alpha * sum + (c.beta == 0.0f ? 0.0 : c.beta * c0);
      const double tol =
          1e-5 * (std::fabs(c.alpha) * abs_sum + (c.beta == 0.0f ? 0.0 : std::fabs(c.beta * c0))) + 1e-30;
      const double got = C.v[i * C.ld + j];
      if (!(std::fabs(got - ref) <= tol)) {
        if (++bad <= 3)
          ADD_FAILURE() << describe(c) << ": C[" << i << "," << j << "] = " << got << ", expected " << ref << " (tol "
                        << tol << ")";
      }
    }
    for (int64_t j = c.N; j < C.ld; ++j) {
      if (C.v[i * C.ld + j] != kSentinel && ++bad <= 3)
        ADD_FAILURE() << describe(c) << ": padding of C row " << i << " was written";
    }
  }
  return bad;
}

Case sized(int64_t M, int64_t N, int64_t K, int64_t pad_a, int64_t pad_b, int64_t pad_c) {
  Case c;
  c.M = M, c.N = N, c.K = K;
  c.pad_a = pad_a, c.pad_b = pad_b, c.pad_c = pad_c;
  return c;
}

// run_case for all four transpose combinations, each with the next seed.
int64_t run_all_transposes(Case c, uint64_t& seed) {
  int64_t bad = 0;
  for (int t = 0; t < 4; ++t) {
    c.ta = t & 1, c.tb = t & 2;
    c.seed = seed++;
    bad += run_case(c);
  }
  return bad;
}

// Restores the process-wide thread count when a test ends, pass or fail.
class ThreadCountGuard {
public:
  ThreadCountGuard() : saved_(ait::num_threads()) {}
  ~ThreadCountGuard() { ait::set_num_threads(saved_); }

private:
  int saved_;
};

TEST(GemmTest, OddShapesAllTransposes) {
  // Sizes straddle every tile and block edge in use (14 x 32, 6 x 16, 4 x 8 tiles).
  const std::vector<int64_t> sizes =
      small_scale() ? std::vector<int64_t>{1, 3, 13, 33, 129} : std::vector<int64_t>{1, 3, 13, 127, 128, 129};
  uint64_t seed = 100;
  for (int64_t M : sizes)
    for (int64_t N : sizes)
      for (int64_t K : sizes) ASSERT_EQ(run_all_transposes(sized(M, N, K, 3, 5, 2), seed), 0);
}

TEST(GemmTest, TileEdges) {
  // Every remainder of the row and column tiles, with and without the packed path.
  uint64_t seed = 200;
  for (int64_t M : {5, 6, 7, 13, 14, 15, 27, 28, 29, 43})
    for (int64_t N : {7, 8, 9, 15, 16, 17, 31, 32, 33, 65})
      for (int64_t K : {2, 37}) ASSERT_EQ(run_all_transposes(sized(M, N, K, 1, 2, 7), seed), 0);
}

TEST(GemmTest, DegenerateShapes) {
  uint64_t seed = 300;
  const int64_t shapes[][3] = {
      {1, 1, 1},   {1, 1, 1000},  {1, 1, 5000}, {1, 700, 1}, {700, 1, 1},   {1, 300, 90},  {300, 1, 90}, {2, 2, 1},
      {64, 64, 1}, {129, 257, 1}, {513, 3, 7},  {3, 513, 7}, {5, 40, 3100}, {40, 5, 3100},  // several K blocks with a
                                                                                            // single row / column tile
  };
  for (const auto& s : shapes) ASSERT_EQ(run_all_transposes(sized(s[0], s[1], s[2], 2, 1, 3), seed), 0);
}

TEST(GemmTest, LargeLeadingDimensions) {
  // Row strides much larger than the logical width, as for a sub-block of a bigger matrix.
  uint64_t seed = 400;
  ASSERT_EQ(run_all_transposes(sized(45, 70, 83, 61, 130, 99), seed), 0);
}

TEST(GemmTest, AlphaBeta) {
  uint64_t seed = 500;
  const float alphas[] = {1.0f, -0.5f, 2.5f};
  const float betas[] = {0.0f, 1.0f, -1.25f, 0.5f};
  // tiny (unpacked path), packed, and K > the K block depth (1536), where beta applies once
  const int64_t shapes[][3] = {{5, 7, 3}, {67, 45, 150}, {40, 50, 1700}};
  for (const auto& s : shapes)
    for (float alpha : alphas)
      for (float beta : betas) {
        Case c = sized(s[0], s[1], s[2], 4, 3, 2);
        c.alpha = alpha, c.beta = beta;
        ASSERT_EQ(run_all_transposes(c, seed), 0);
      }
}

TEST(GemmTest, BetaZeroOverwritesNaN) {
  uint64_t seed = 600;
  const int64_t shapes[][3] = {{4, 5, 6}, {29, 33, 40}, {60, 70, 1700}};
  for (const auto& s : shapes)
    for (float alpha : {1.0f, -2.0f}) {
      Case c = sized(s[0], s[1], s[2], 0, 0, 1);
      c.alpha = alpha, c.beta = 0.0f;
      c.nan_c = true;
      ASSERT_EQ(run_all_transposes(c, seed), 0);
    }
}

TEST(GemmTest, KZeroScalesC) {
  // K == 0: C = beta * C, and beta == 0 clears C even when it holds NaN. A and B are not read.
  for (float beta : {0.0f, 1.0f, -3.0f}) {
    std::vector<float> C = {1.0f, kNaN, -2.0f, 4.0f, kSentinel, 0.5f};  // 2 x 2, ldc 3
    const std::vector<float> C0 = C;
    ait::sgemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, beta, C.data(), 3);
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 2; ++j) {
        const float got = C[i * 3 + j], c0 = C0[i * 3 + j];
        if (beta == 0.0f) EXPECT_EQ(got, 0.0f);
        else if (std::isnan(c0)) EXPECT_TRUE(std::isnan(got));
        else EXPECT_EQ(got, beta * c0);
      }
      EXPECT_EQ(std::memcmp(&C[i * 3 + 2], &C0[i * 3 + 2], sizeof(float)), 0);
    }
  }
}

TEST(GemmTest, AlphaZeroScalesC) {
  // alpha == 0 behaves like K == 0 (BLAS convention: A and B are not read, so NaN there is ignored).
  std::vector<float> A(6 * 5, kNaN), B(5 * 4, kNaN), C(6 * 4, 2.0f);
  ait::sgemm(false, false, 6, 4, 5, 0.0f, A.data(), 5, B.data(), 4, 0.5f, C.data(), 4);
  for (float x : C) EXPECT_EQ(x, 1.0f);
}

TEST(GemmTest, EmptyOutputIsNoOp) {
  std::vector<float> C(4, kSentinel);
  ait::sgemm(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, C.data(), 2);
  ait::sgemm(true, true, 2, 0, 3, 1.0f, nullptr, 2, nullptr, 3, 0.0f, C.data(), 2);
  ait::sgemm(false, false, 0, 0, 0, 1.0f, nullptr, 1, nullptr, 1, 0.0f, nullptr, 1);
  for (float x : C) EXPECT_EQ(x, kSentinel);
}

TEST(GemmTest, ThreadCountIndependence) {
  // Work is split over M and N only, so every thread count must give the same bits.
  ThreadCountGuard guard;
  // The first shape is split over M, the second (few rows) over N.
  const int64_t shapes[][3] = {{300, 333, 1700}, {40, 700, 1700}};
  for (int t = 0; t < 8; ++t) {
    const bool ta = t & 1, tb = t & 2;
    const int64_t M = shapes[t / 4][0], N = shapes[t / 4][1], K = shapes[t / 4][2] / (small_scale() ? 2 : 1);
    ait::Rng rng(700 + t);
    Mat A(ta ? K : M, ta ? M : K, 3, kNaN, rng);
    Mat B(tb ? N : K, tb ? K : N, 1, kNaN, rng);
    Mat C0(M, N, 2, kSentinel, rng);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3, 1}) {
      ait::set_num_threads(threads);
      Mat C = C0;
      ait::sgemm(ta, tb, M, N, K, 0.75f, A.data(), A.ld, B.data(), B.ld, -0.5f, C.data(), C.ld);
      results.push_back(C.v);
    }
    for (size_t r = 1; r < results.size(); ++r)
      EXPECT_EQ(std::memcmp(results[0].data(), results[r].data(), results[0].size() * sizeof(float)), 0)
          << "ta=" << ta << " tb=" << tb << ": result " << r << " differs from the 1-thread result";
  }
}

TEST(GemmTest, ThreadCountIndependenceSmallAndMedium) {
  // Shapes near the tiny-path and thread-wake-up thresholds.
  ThreadCountGuard guard;
  const int64_t shapes[][3] = {{31, 32, 32}, {32, 32, 32}, {64, 64, 512}, {128, 128, 128}, {29, 1000, 77}};
  for (const auto& s : shapes) {
    ait::Rng rng(800);
    Mat A(s[0], s[2], 0, kNaN, rng), B(s[2], s[1], 0, kNaN, rng);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      ait::set_num_threads(threads);
      std::vector<float> C(static_cast<size_t>(s[0] * s[1]), kNaN);
      ait::sgemm(false, false, s[0], s[1], s[2], 1.0f, A.data(), A.ld, B.data(), B.ld, 0.0f, C.data(), s[1]);
      if (first.empty()) first = C;
      else
        EXPECT_EQ(std::memcmp(first.data(), C.data(), C.size() * sizeof(float)), 0)
            << s[0] << "x" << s[1] << "x" << s[2] << " at " << threads << " threads";
    }
  }
}

TEST(GemmTest, RepeatableRunToRun) {
  const int64_t M = 200, N = 190, K = 700;
  ait::Rng rng(900);
  Mat A(M, K, 0, kNaN, rng), B(N, K, 0, kNaN, rng);
  std::vector<float> C1(M * N), C2(M * N);
  ait::sgemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C1.data(), N);
  ait::sgemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C2.data(), N);
  EXPECT_EQ(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)), 0);
}

}  // namespace
