// Op tests: analytic gradients against central finite differences; the ops' own forward logic
// (broadcast shapes, axes, concat/slice, linear's layout and bias, the loss's mean) against
// naive loops; fan-out, no-grad, and the error messages. The kernels' values on every backend
// are test_backend_ops.cpp's.
#include <algorithm>
#include <numeric>

#include "cpu/threadpool.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

std::vector<int64_t> kSizes = {1, 3, 13, 127, 128};

std::vector<float> broadcast_rows(const std::vector<float>& row, int n) {
  std::vector<float> out;
  for (int i = 0; i < n; ++i) out.insert(out.end(), row.begin(), row.end());
  return out;
}

}  // namespace

TEST(OpsGrad, BinaryBroadcast) {
  struct Case {
    Shape a, b;
  };
  std::vector<Case> cases = {{{3, 13}, {13}}, {{1, 3}, {3, 1}}, {{13, 1, 3}, {1, 127, 3}},
                             {{128}, {128}},  {{1}, {1}},       {{2, 3, 4}, {}}};
  uint64_t seed = 1;
  for (auto& c : cases) {
    Tensor a = random_tensor(c.a, seed++), b = random_tensor(c.b, seed++, 0.5f, 1.5f);
    gradcheck([](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {a, b});
    gradcheck([](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {a, b});
    gradcheck([](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {a, b});
    gradcheck([](const std::vector<Tensor>& x) { return div(x[0], x[1]); }, {a, b});
  }
}

TEST(OpsForward, BinaryBroadcastValues) {
  Tensor a = random_tensor({13, 1, 3}, 11), b = random_tensor({1, 7, 3}, 12, 0.5f, 2.0f);
  auto av = a.to_vector(), bv = b.to_vector();
  auto check = [&](const Tensor& y, const std::function<float(float, float)>& op) {
    ASSERT_EQ(y.shape(), (Shape{13, 7, 3}));
    auto yv = y.to_vector();
    for (int i = 0; i < 13; ++i)
      for (int j = 0; j < 7; ++j)
        for (int k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(yv[(i * 7 + j) * 3 + k], op(av[i * 3 + k], bv[j * 3 + k]));
  };
  check(add(a, b), [](float x, float y) { return x + y; });
  check(sub(a, b), [](float x, float y) { return x - y; });
  check(mul(a, b), [](float x, float y) { return x * y; });
  check(div(a, b), [](float x, float y) { return x / y; });
}

TEST(OpsGrad, ElementwiseUnary) {
  for (int64_t n : kSizes) {
    Tensor x = random_tensor({n}, 20 + n, -3.0f, 3.0f), z = random_tensor({n}, 40 + n);
    gradcheck([](const std::vector<Tensor>& v) { return gelu(v[0]); }, {x});
    gradcheck([](const std::vector<Tensor>& v) { return scale(v[0], -2.5f); }, {x});
    gradcheck([](const std::vector<Tensor>& v) { return axpby(0.9f, v[0], 0.1f, v[1]); }, {x, z});
  }
}

TEST(Ops, DropoutMaskAndGradient) {
  const int64_t n = 4096;
  Tensor x = Tensor::full({n}, 1.0f);
  Tensor y = dropout(x, 0.25f, 1234);
  auto yv = y.to_vector();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = hash_uniform(1234, static_cast<uint32_t>(i)) >= 0.25f;  // the documented mask
    EXPECT_FLOAT_EQ(yv[i], keep ? 1.0f / 0.75f : 0.0f);
    kept += keep;
  }
  EXPECT_NEAR(double(kept) / n, 0.75, 0.03);
  Tensor z = random_tensor({13, 3}, 5);
  gradcheck([](const std::vector<Tensor>& v) { return dropout(v[0], 0.5f, 99); }, {z});
  EXPECT_EQ(dropout(z, 0.0f, 1).impl(), z.impl());  // p = 0 is the identity
  EXPECT_NE(error_of([&] { dropout(z, 1.0f, 1); }).find("dropout"), std::string::npos);
}

TEST(OpsGrad, Reductions) {
  std::vector<Shape> shapes = {{1}, {3, 13}, {13, 1, 3}, {127, 3}, {2, 128}};
  uint64_t seed = 50;
  for (const Shape& s : shapes)
    for (int axis = 0; axis < static_cast<int>(s.size()); ++axis) {
      Tensor x = random_tensor(s, seed++);
      gradcheck([axis](const std::vector<Tensor>& v) { return sum(v[0], axis); }, {x});
      gradcheck([axis](const std::vector<Tensor>& v) { return mean(v[0], axis, true); }, {x});
      if (s[axis] > 1) gradcheck([axis](const std::vector<Tensor>& v) { return variance(v[0], axis); }, {x});
    }
  Tensor x = random_tensor({13, 3}, 77);
  gradcheck([](const std::vector<Tensor>& v) { return sum_all(v[0]); }, {x});
  gradcheck([](const std::vector<Tensor>& v) { return mean_all(v[0]); }, {x});
}

TEST(OpsForward, ReductionValues) {
  Tensor x = random_tensor({3, 13, 5}, 8);
  auto xv = x.to_vector();
  auto s = sum(x, 1).to_vector(), v = variance(x, 1).to_vector(), c = count_positive(x, 1).to_vector();
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 5; ++i) {
      double acc = 0, cnt = 0;
      for (int j = 0; j < 13; ++j) {
        acc += xv[(o * 13 + j) * 5 + i];
        cnt += xv[(o * 13 + j) * 5 + i] > 0;
      }
      double m = acc / 13, var = 0;
      for (int j = 0; j < 13; ++j) var += (xv[(o * 13 + j) * 5 + i] - m) * (xv[(o * 13 + j) * 5 + i] - m);
      EXPECT_NEAR(s[o * 5 + i], acc, 1e-5);
      EXPECT_NEAR(v[o * 5 + i], var / 12, 1e-5);  // unbiased
      EXPECT_EQ(c[o * 5 + i], cnt);
    }
  EXPECT_EQ(variance(Tensor::full({4, 1}, 3.0f), 1).to_vector(), std::vector<float>(4, 0.0f));  // n = 1
  Tensor y = random_tensor({13}, 9).set_requires_grad(true);
  EXPECT_FALSE(count_positive(y, 0).requires_grad());  // a count carries no gradient
}

TEST(OpsGrad, ShapeOps) {
  Tensor x = random_tensor({2, 3, 13}, 60);
  gradcheck([](const std::vector<Tensor>& v) { return reshape(v[0], {6, -1}); }, {x});
  gradcheck([](const std::vector<Tensor>& v) { return permute(v[0], {2, 0, 1}); }, {x});
  gradcheck([](const std::vector<Tensor>& v) { return transpose(v[0], 0, 2); }, {x});
  Tensor y = random_tensor({2, 5, 13}, 61), z = random_tensor({2, 1, 13}, 62);
  for (int axis : {1, -2}) gradcheck([axis](const std::vector<Tensor>& v) { return concat(v, axis); }, {x, y, z});
  gradcheck([](const std::vector<Tensor>& v) { return slice(v[0], 2, 3, 7); }, {x});
  gradcheck([](const std::vector<Tensor>& v) { return slice(v[0], 0, 1, 1); }, {x});
}

TEST(OpsForward, PermuteConcatSliceValues) {
  Tensor x = random_tensor({2, 3, 4, 5}, 70);
  auto xv = x.to_vector(), pv = permute(x, {3, 1, 0, 2}).to_vector();  // y[l,j,i,k] = x[i,j,k,l]
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 5; ++l) EXPECT_EQ(pv[((l * 3 + j) * 2 + i) * 4 + k], xv[((i * 3 + j) * 4 + k) * 5 + l]);
  Tensor a = random_tensor({3, 2}, 71), b = random_tensor({3, 1}, 72);
  auto cv = concat({a, b}, 1).to_vector(), av = a.to_vector(), bv = b.to_vector();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(cv[r * 3 + 0], av[r * 2 + 0]);
    EXPECT_EQ(cv[r * 3 + 1], av[r * 2 + 1]);
    EXPECT_EQ(cv[r * 3 + 2], bv[r]);
  }
  auto sv = slice(x, 2, 1, 2).to_vector();
  for (int r = 0; r < 6; ++r)
    for (int k = 0; k < 2; ++k)
      for (int l = 0; l < 5; ++l) EXPECT_EQ(sv[(r * 2 + k) * 5 + l], xv[(r * 4 + k + 1) * 5 + l]);
}

TEST(OpsGrad, Matmul) {
  uint64_t seed = 100;
  for (int64_t m : {1, 3, 13})
    for (int64_t k : {1, 13, 128})
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
          int64_t n = 3;
          Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, seed++);
          Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, seed++);
          gradcheck([ta, tb](const std::vector<Tensor>& v) { return matmul(v[0], v[1], ta, tb); }, {a, b});
        }
  // Batched, and a shared rank-2 operand on either side, with every transpose.
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor a3 = random_tensor(ta ? Shape{2, 5, 3} : Shape{2, 3, 5}, seed++),
             b3 = random_tensor(tb ? Shape{2, 4, 5} : Shape{2, 5, 4}, seed++);
      Tensor a2 = random_tensor(ta ? Shape{5, 3} : Shape{3, 5}, seed++),
             b2 = random_tensor(tb ? Shape{4, 5} : Shape{5, 4}, seed++);
      auto f = [ta, tb](const std::vector<Tensor>& v) { return matmul(v[0], v[1], ta, tb); };
      gradcheck(f, {a3, b3});
      gradcheck(f, {a3, b2});
      gradcheck(f, {a2, b3});
    }
}

TEST(OpsGrad, Linear) {
  for (int64_t n : {1, 3, 13}) {
    Tensor x = random_tensor({2, n, 7}, 200 + n), w = random_tensor({5, 7}, 300 + n), b = random_tensor({5}, 400 + n);
    gradcheck([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); }, {x, w, b});
    gradcheck([](const std::vector<Tensor>& v) { return linear(v[0], v[1], Tensor()); }, {x, w});
  }
}

TEST(OpsForward, LinearAgainstLoop) {
  // The bias is added inside the matmul kernel; check it against the plain sum, and K = 0.
  Tensor x = random_tensor({2, 3, 7}, 250), w = random_tensor({5, 7}, 251), b = random_tensor({5}, 252);
  auto xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector(), yv = linear(x, w, b).to_vector();
  ASSERT_EQ(yv.size(), 6u * 5u);
  for (int r = 0; r < 6; ++r)
    for (int o = 0; o < 5; ++o) {
      double acc = bv[o];
      for (int i = 0; i < 7; ++i) acc += double(xv[r * 7 + i]) * wv[o * 7 + i];
      EXPECT_NEAR(yv[r * 5 + o], acc, 1e-5) << r << "," << o;
    }
  Tensor empty_in = linear(Tensor::zeros({4, 0}), Tensor::zeros({5, 0}), b);
  EXPECT_EQ(empty_in.shape(), (Shape{4, 5}));
  EXPECT_EQ(empty_in.to_vector(), broadcast_rows(bv, 4));
}

TEST(OpsGrad, RowWise) {
  for (int64_t cols : kSizes) {
    Tensor x = random_tensor({3, cols}, 500 + cols, -2.0f, 2.0f);
    Tensor w = random_tensor({cols}, 600 + cols, 0.5f, 1.5f), b = random_tensor({cols}, 700 + cols);
    if (cols > 1) gradcheck([](const std::vector<Tensor>& v) { return layernorm(v[0], v[1], v[2], 1e-5f); }, {x, w, b});
    gradcheck([](const std::vector<Tensor>& v) { return softmax(v[0], 0.7f); }, {x});
    gradcheck([](const std::vector<Tensor>& v) { return l2_normalize(v[0]); }, {x});
  }
}

// Distinct values spaced far apart compared with the finite-difference step, so the kept set
// cannot change while the check perturbs an entry.
Tensor spaced_values(const Shape& s, uint64_t seed) {
  int64_t n = numel(s), cols = s.back();
  std::vector<float> v(n);
  Rng rng(seed);
  for (int64_t r = 0; r < n / cols; ++r) {
    std::vector<int64_t> perm(cols);
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t i = cols - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
    for (int64_t j = 0; j < cols; ++j) v[r * cols + j] = -2.0f + 4.0f * static_cast<float>(perm[j]) / cols;
  }
  return Tensor::from(s, v);
}

TEST(OpsGrad, TopkGate) {
  for (int64_t cols : {1, 3, 13, 127, 128})
    for (int64_t k : {int64_t(1), int64_t(5), cols, cols + 3}) {
      Tensor x = spaced_values({3, cols}, 900 + cols + k);
      gradcheck([k](const std::vector<Tensor>& v) { return topk_gate(v[0], k, 1.3f); }, {x}, 3e-3, 3e-3f);
    }
}

TEST(OpsGrad, CrossEntropy) {
  for (int64_t n : {1, 3, 13}) {
    Tensor logits = random_tensor({n, 10}, 1000 + n, -3.0f, 3.0f);
    std::vector<int32_t> lab(n);
    for (int64_t i = 0; i < n; ++i) lab[i] = static_cast<int32_t>((i * 7) % 10);
    Tensor labels = Tensor::from_int({n}, lab);
    gradcheck([labels](const std::vector<Tensor>& v) { return cross_entropy(v[0], labels); }, {logits});
    // Value against log-softmax by hand.
    auto lv = logits.to_vector();
    double want = 0;
    for (int64_t i = 0; i < n; ++i) {
      double mx = *std::max_element(lv.begin() + i * 10, lv.begin() + i * 10 + 10), z = 0;
      for (int j = 0; j < 10; ++j) z += std::exp(lv[i * 10 + j] - mx);
      want += (mx + std::log(z) - lv[i * 10 + lab[i]]) / n;
    }
    EXPECT_NEAR(cross_entropy(logits, labels).item(), want, 1e-5);
  }
}

TEST(Autodiff, FanOutAccumulates) {
  Tensor x = random_tensor({13}, 1100).set_requires_grad(true);
  Tensor y = sum_all(add(mul(x, x), x));  // dy/dx = 2x + 1, x used three times
  y.backward();
  auto g = x.grad().to_vector(), xv = x.to_vector();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], 2 * xv[i] + 1, 1e-6);
  gradcheck([](const std::vector<Tensor>& v) { return mul(add(v[0], v[1]), softmax(v[0])); },
            {random_tensor({3, 13}, 1101), random_tensor({3, 13}, 1102)});
}

TEST(Autodiff, SlicesAddIntoOneGradientWithoutTouchingAHandedOutOne) {
  // Rows 0-1 (twice), 1-3 and 4 of x: d/dx = 2, 3, 1, 1, 1 per row. The second and later
  // slices add into the first one's gradient in place; a gradient already handed out stays put.
  Tensor x = random_tensor({5, 4}, 1150).set_requires_grad(true);
  auto loss = [&] {
    return add(add(scale(sum_all(slice(x, 0, 0, 2)), 2.0f), sum_all(slice(x, 0, 1, 3))), sum_all(slice(x, 0, 4, 1)));
  };
  const float want[5] = {2, 3, 1, 1, 1};
  loss().backward();
  Tensor first = x.grad();
  std::vector<float> g1 = first.to_vector();
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(g1[i], want[i / 4]) << i;
  loss().backward();  // accumulates: 2 * want
  std::vector<float> g2 = x.grad().to_vector(), again = first.to_vector();
  for (int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(g2[i], 2 * want[i / 4]) << i;
    EXPECT_EQ(again[i], want[i / 4]) << i << ": a gradient handed out earlier was modified";
  }
  // Sharing only the storage (a detached view, the handle dropped) protects it as well.
  Tensor view = x.grad().detach();
  loss().backward();
  std::vector<float> g3 = x.grad().to_vector(), kept = view.to_vector();
  for (int64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(g3[i], 3 * want[i / 4]) << i;
    EXPECT_EQ(kept[i], 2 * want[i / 4]) << i << ": a view of an earlier gradient was modified";
  }
}

TEST(Autodiff, OnlyWhatNeedsIt) {
  Tensor a = random_tensor({3, 3}, 1200).set_requires_grad(true), b = random_tensor({3, 3}, 1201);
  Tensor y = sum_all(matmul(a, b));
  y.backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  {
    NoGradScope ng;
    Tensor z = matmul(a, b);
    EXPECT_FALSE(z.requires_grad());
    EXPECT_NE(error_of([&] { sum_all(z).backward(); }).find("no graph"), std::string::npos);
  }
  // Stop-gradient: detach cuts the graph.
  a.zero_grad();
  Tensor s = sum_all(add(mul(a, a.detach()), a));
  s.backward();
  auto g = a.grad().to_vector(), av = a.to_vector();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], av[i] + 1, 1e-6);
}

TEST(Errors, MessagesNameOpAndShapes) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  EXPECT_NE(error_of([&] { add(a, b); }).find("add: shapes [2, 3] and [4, 5] do not broadcast"), std::string::npos);
  EXPECT_NE(error_of([&] { matmul(a, b); }).find("matmul: inner dimensions 3 and 4 differ"), std::string::npos);
  EXPECT_NE(error_of([&] { sum(a, 2); }).find("sum: axis 2 out of range for shape [2, 3]"), std::string::npos);
  EXPECT_NE(error_of([&] { sum(a, -3); }).find("axis -3"), std::string::npos);
  EXPECT_NE(error_of([&] { reshape(a, {5}); }).find("reshape: cannot reshape [2, 3] to [5]"), std::string::npos);
  EXPECT_NE(error_of([&] { permute(a, {0, 0}); }).find("permute"), std::string::npos);
  EXPECT_NE(error_of([&] { slice(a, 1, 2, 2); }).find("slice"), std::string::npos);
  EXPECT_NE(error_of([&] { concat({a, b}, 0); }).find("concat: shapes [2, 3] and [4, 5]"), std::string::npos);
  EXPECT_NE(error_of([&] { layernorm(a, Tensor::zeros({2}), Tensor::zeros({3}), 1e-5f); }).find("layernorm"),
            std::string::npos);
  EXPECT_NE(error_of([&] { linear(a, b, Tensor()); }).find("linear: input [2, 3] does not fit weight [4, 5]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { topk_gate(a, 0); }).find("topk_gate"), std::string::npos);
  EXPECT_NE(error_of([&] {
              cross_entropy(a, Tensor::from_int({2}, {0, 3}));
            }).find("label 3 at row 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cross_entropy(a, Tensor::from_int({3}, {0, 1, 2}));
            }).find("cross_entropy"),
            std::string::npos);
  EXPECT_NE(error_of([&] { a.backward(); }).find("one-element"), std::string::npos);
  EXPECT_NE(error_of([&] { sum_all(a).backward(); }).find("no graph"), std::string::npos);
}

TEST(Threads, RowWiseOpsIndependentOfThreadCount) {
  auto run = [] {
    Tensor x = random_tensor({127, 768}, 1300, -2, 2), w = random_tensor({768}, 1301), b = random_tensor({768}, 1302);
    Tensor wl = random_tensor({64, 768}, 1303);
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    Tensor y = sum_all(softmax(gelu(linear(layernorm(x, w, b, 1e-5f), wl, Tensor()))));
    y.backward();
    std::vector<float> out = x.grad().to_vector(), gw = w.grad().to_vector();
    out.insert(out.end(), gw.begin(), gw.end());
    out.push_back(y.item());
    return out;
  };
  const int saved = num_threads();
  set_num_threads(1);
  auto one = run();
  set_num_threads(2);
  auto two = run();
  set_num_threads(3);
  auto three = run();
  set_num_threads(saved);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one, three);
}
