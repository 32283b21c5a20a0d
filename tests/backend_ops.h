// The harness of the backend kernel tests (test_backend_ops.cpp, where the metrics are
// described): guarded buffers on one backend, the comparisons, and the row-wise cases that
// test_backend_ops_rows.cpp defines.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "core/kernels.h"
#include "core/rng.h"
#include "testutil.h"

namespace ait::backend_ops {

inline constexpr size_t kGuard = 29;
inline constexpr float kSentinel = -1234.5f;
inline const std::vector<int64_t> kSizes = {1, 3, 13, 127, 128, 200};  // 200: past one 128-wide tile

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng r(seed);
  std::vector<float> v(n);
  for (float& x : v) x = scale * r.normal();
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
inline std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
inline double norm2(const std::vector<double>& v) {
  return std::sqrt(std::inner_product(v.begin(), v.end(), v.begin(), 0.0));
}

inline std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

// A case's view of one backend: guarded buffers, reads that check the guards, and the
// comparisons, which keep the worst error per output for the summary line.
class Bench {
public:
  struct Buf {
    BufferPtr buf;
    size_t head = 0, n = 0;
    Buffer& operator*() const { return *buf; }
  };

  explicit Bench(Kernels& k) : k_(k) {}
  Kernels& k() { return k_; }

  // `values` at element `head` of a buffer whose other elements hold the sentinel.
  Buf input(const std::vector<float>& values, size_t head = 0) {
    std::vector<float> all(head + values.size() + kGuard, kSentinel);
    std::copy(values.begin(), values.end(), all.begin() + static_cast<long>(head));
    Buf b{k_.alloc(all.size()), head, values.size()};
    k_.upload(*b.buf, all.data(), all.size());
    return b;
  }
  Buf labels(const std::vector<int32_t>& values) {
    std::vector<float> bits(values.size());
    std::memcpy(bits.data(), values.data(), values.size() * 4);
    return input(bits);
  }
  Buf output(size_t n, size_t head = 0) { return input(std::vector<float>(n, NAN), head); }

  // The payload; fails the test where the kernel wrote into a guard.
  std::vector<float> read(const Buf& b, const std::string& what) {
    std::vector<float> all(b.head + b.n + kGuard);
    k_.download(*b.buf, all.data(), all.size());
    size_t touched = 0;
    for (size_t i = 0; i < all.size(); ++i)
      if (i < b.head || i >= b.head + b.n) touched += std::memcmp(&all[i], &kSentinel, 4) != 0;
    EXPECT_EQ(touched, 0u) << what << ": the kernel wrote outside its output";
    return std::vector<float>(all.begin() + static_cast<long>(b.head), all.begin() + static_cast<long>(b.head + b.n));
  }

  void expect_exact(const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size()) << what;
    size_t differ = 0;
    for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], 4) != 0;
    EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << got.size() << " elements differ";
    note(what, "exact", double(differ), 0);
  }
  void expect_rel(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double tol,
                  double floor = 1e-30) {
    double e = test::rel_error(got, want, floor);
    EXPECT_LE(e, tol) << what;
    note(what, "rel", e, tol);
  }
  // The same elements are zero (a selection or a mask), before the values are compared.
  void expect_same_zeros(const std::string& what, const std::vector<float>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size()) << what;
    size_t differ = 0;
    for (size_t i = 0; i < got.size(); ++i) differ += (got[i] == 0.0f) != (want[i] == 0.0);
    EXPECT_EQ(differ, 0u) << what << ": " << differ << " elements selected differently";
  }

  std::string summary() const {
    std::string s;
    char line[160];
    for (const auto& [what, w] : worst_) {
      std::snprintf(line, sizeof line, "  %-26s %-5s %.2e (tol %.0e)\n", what.c_str(), w.metric.c_str(), w.err, w.tol);
      s += line;
    }
    return s;
  }

private:
  struct Worst {
    std::string metric;
    double err = 0, tol = 0;
  };
  void note(const std::string& what, const std::string& metric, double err, double tol) {
    Worst& w = worst_[what];
    if (w.metric.empty() || err > w.err || std::isnan(err)) w = {metric, err, tol};
  }
  Kernels& k_;
  std::map<std::string, Worst> worst_;
};

// Row-wise cases (test_backend_ops_rows.cpp).
void case_layernorm(Bench& b);
void case_softmax(Bench& b);
void case_topk_gate(Bench& b);
void case_cross_entropy(Bench& b);
void case_l2_normalize(Bench& b);

}  // namespace ait::backend_ops
