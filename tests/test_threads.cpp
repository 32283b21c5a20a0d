// The CPU backend's results do not depend on the thread count (docs/spec.md §10): a whole
// training step and every kernel that sums give the same bits at 1, 2, 3 and 7 threads, both
// with the kernels' own grain sizes and with every loop split as finely as it goes (so that
// small, odd sizes are cut unevenly across the threads as well).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "cpu/threadpool.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

// Named outputs of one computation, compared bit for bit between thread counts.
using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

// Restores the process-wide thread count and grain when a test ends, pass or fail.
class ThreadSettingsGuard {
public:
  ThreadSettingsGuard() : saved_(num_threads()) {}
  ~ThreadSettingsGuard() {
    set_grain_override(0);
    set_num_threads(saved_);
  }

private:
  int saved_;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Where two output sets first differ, or "" when they agree bit for bit.
std::string first_difference(const Outputs& want, const Outputs& got) {
  if (want.size() != got.size()) return "different number of outputs";
  for (size_t i = 0; i < want.size(); ++i) {
    const std::vector<float>&w = want[i].second, &g = got[i].second;
    if (same_bits(w, g)) continue;
    if (w.size() != g.size()) return want[i].first + ": sizes differ";
    for (size_t j = 0; j < w.size(); ++j)
      if (std::memcmp(&w[j], &g[j], sizeof(float)) != 0)
        return want[i].first + "[" + std::to_string(j) + "]: " + std::to_string(g[j]) + " vs " + std::to_string(w[j]) +
               " at 1 thread";
  }
  return "";
}

// Runs `compute` at 1, 2, 3 and 7 threads, with the kernels' grains and with the finest split,
// and expects every run to reproduce the single-thread result exactly.
void expect_thread_count_invariant(const std::string& what, const std::function<Outputs()>& compute) {
  ThreadSettingsGuard guard;
  set_grain_override(0);
  set_num_threads(1);
  const Outputs reference = compute();
  for (int64_t grain : {0, 1})
    for (int threads : {1, 2, 3, 7}) {
      set_grain_override(grain);
      set_num_threads(threads);
      std::string diff = first_difference(reference, compute());
      EXPECT_EQ(diff, "") << what << " at " << threads << " threads, " << (grain ? "finest split" : "default grain");
    }
}

// ------------------------------------------------------------------ a training step

// A small AiT whose activations are big enough that the default grains split them too:
// 26 tokens (25 patches and a question) x 23 images, 40 wide, odd head and memory sizes.
Config step_config() {
  Config c;
  c.channels = 3, c.image_height = 20, c.image_width = 20, c.patch_size = 4, c.question_dim = 5;
  c.dim = 40, c.depth = 2, c.heads = 3, c.head_dim = 8, c.mlp_dim = 72, c.num_classes = 7;
  c.memory_slots = 5, c.memory_dim = 12, c.memory_heads = 3, c.bottleneck = 37;
  c.write_dropout = 0.1;
  c.validate();
  return c;
}

// Two optimizer steps as train() runs them (forward with memory write and dropout, backward,
// AdamW, memory update); the second starts from the first's moments and memory.
Outputs two_training_steps() {
  const Config c = step_config();
  const int64_t batch = 23;
  AiT model(c, cpu(), 17);
  AdamW adam(model, 0.05f);
  Tensor images = random_tensor({batch, c.channels, c.image_height, c.image_width}, 900, -2, 2);
  Tensor questions = random_tensor({batch, c.question_dim}, 901);
  std::vector<int32_t> label_values(batch);
  for (int64_t i = 0; i < batch; ++i) label_values[i] = static_cast<int32_t>((i * 5 + 2) % c.num_classes);
  Tensor labels = Tensor::from_int({batch}, label_values);
  Outputs out;
  for (int step = 0; step < 2; ++step) {
    const std::string tag = "step " + std::to_string(step) + " ";
    ForwardResult f = model.forward(images, questions, labels, true, true, 1234 + step);
    f.loss.backward();
    for (auto& [name, t] : std::vector<std::pair<std::string, Tensor>>{
             {"loss", f.loss}, {"ce", f.ce}, {"balance", f.balance}, {"logits", f.logits}})
      out.emplace_back(tag + name, t.to_vector());
    for (auto& [name, p] : model.params())
      if (p.grad().defined()) out.emplace_back(tag + "grad " + name, p.grad().to_vector());
    adam.step(2e-3f);
    adam.zero_grad();
    model.commit_memory(f);
    for (auto& [name, p] : model.params()) out.emplace_back(tag + "param " + name, p.to_vector());
    for (size_t l = 0; l < model.memory().size(); ++l)
      out.emplace_back(tag + "memory " + std::to_string(l), model.memory()[l].to_vector());
  }
  return out;
}

TEST(Threads, TrainingStepSameBitsAtAnyThreadCount) {
  expect_thread_count_invariant("training step", two_training_steps);
}

// ------------------------------------------------------------------ single kernels

// Odd sizes, and sizes that 3 and 7 threads split unevenly; (rows, cols) pairs for row kernels.
const std::vector<std::pair<int64_t, int64_t>> kRowShapes = {{1, 1},   {1, 127},  {3, 13},  {13, 3},   {13, 127},
                                                             {127, 1}, {127, 13}, {50, 71}, {701, 97}, {4, 9001}};

// x [rows, cols] with a gradient, and a fixed random upstream gradient for sum(y * up).
Tensor weighted_sum(const Tensor& y, uint64_t seed) { return sum_all(mul(y, random_tensor(y.shape(), seed))); }

TEST(Threads, LayerNormAndBackward) {
  for (auto [rows, cols] : kRowShapes)
    expect_thread_count_invariant("layernorm " + std::to_string(rows) + "x" + std::to_string(cols), [&] {
      Tensor x = random_tensor({rows, cols}, 10, -3, 3).set_requires_grad(true);
      Tensor w = random_tensor({cols}, 11).set_requires_grad(true),
             b = random_tensor({cols}, 12).set_requires_grad(true);
      Tensor y = layernorm(x, w, b, 1e-5f);
      weighted_sum(y, 13).backward();
      return Outputs{{"y", y.to_vector()},
                     {"dx", x.grad().to_vector()},
                     {"dw", w.grad().to_vector()},
                     {"db", b.grad().to_vector()}};
    });
}

// dw and db are sums over rows; check them against a double-precision sum as well.
TEST(Threads, LayerNormParameterGradientsMatchDoubleSums) {
  ThreadSettingsGuard guard;
  set_num_threads(7);
  set_grain_override(1);
  const int64_t rows = 1001, cols = 13;
  Tensor x = random_tensor({rows, cols}, 20, -3, 3), up = random_tensor({rows, cols}, 21);
  Tensor w = random_tensor({cols}, 22).set_requires_grad(true), b = random_tensor({cols}, 23).set_requires_grad(true);
  sum_all(mul(layernorm(x, w, b, 1e-5f), up)).backward();
  std::vector<float> xv = x.to_vector(), uv = up.to_vector();
  std::vector<double> dw(cols, 0.0), db(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mu += xv[r * cols + j];
    mu /= cols;
    for (int64_t j = 0; j < cols; ++j) var += (xv[r * cols + j] - mu) * (xv[r * cols + j] - mu);
    const double rstd = 1.0 / std::sqrt(var / cols + 1e-5);
    for (int64_t j = 0; j < cols; ++j) {
      dw[j] += uv[r * cols + j] * (xv[r * cols + j] - mu) * rstd;
      db[j] += uv[r * cols + j];
    }
  }
  // Sums of 1001 terms of size ~1 that cancel: the floor is their typical magnitude, sqrt(rows).
  EXPECT_LE(rel_error(w.grad().to_vector(), dw, std::sqrt(double(rows))), 1e-5);
  EXPECT_LE(rel_error(b.grad().to_vector(), db, std::sqrt(double(rows))), 1e-5);
}

TEST(Threads, SoftmaxAndBackward) {
  for (auto [rows, cols] : kRowShapes)
    expect_thread_count_invariant("softmax " + std::to_string(rows) + "x" + std::to_string(cols), [&] {
      Tensor x = random_tensor({rows, cols}, 30, -4, 4).set_requires_grad(true);
      Tensor y = softmax(x, 0.7f);
      weighted_sum(y, 31).backward();
      return Outputs{{"y", y.to_vector()}, {"dx", x.grad().to_vector()}};
    });
}

TEST(Threads, TopkGateAndBackward) {
  for (auto [rows, cols] : kRowShapes)
    for (int64_t k : {int64_t(1), int64_t(3), cols})
      expect_thread_count_invariant(
          "topk_gate " + std::to_string(rows) + "x" + std::to_string(cols) + " k=" + std::to_string(k), [&] {
            Tensor x = random_tensor({rows, cols}, 40, -4, 4).set_requires_grad(true);
            Tensor y = topk_gate(x, k, 1.3f);
            weighted_sum(y, 41).backward();
            return Outputs{{"y", y.to_vector()}, {"dx", x.grad().to_vector()}};
          });
}

TEST(Threads, L2NormalizeAndBackward) {
  for (auto [rows, cols] : kRowShapes)
    expect_thread_count_invariant("l2_normalize " + std::to_string(rows) + "x" + std::to_string(cols), [&] {
      Tensor x = random_tensor({rows, cols}, 50, -2, 2).set_requires_grad(true);
      Tensor y = l2_normalize(x);
      weighted_sum(y, 51).backward();
      return Outputs{{"y", y.to_vector()}, {"dx", x.grad().to_vector()}};
    });
}

TEST(Threads, CrossEntropyAndBackward) {
  for (auto [rows, classes] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 3}, {3, 13}, {13, 7}, {127, 10}, {1000, 3}, {20001, 13}, {7, 9001}})
    expect_thread_count_invariant("cross_entropy " + std::to_string(rows) + "x" + std::to_string(classes), [&] {
      Tensor logits = random_tensor({rows, classes}, 60, -5, 5).set_requires_grad(true);
      std::vector<int32_t> lab(rows);
      for (int64_t r = 0; r < rows; ++r) lab[r] = static_cast<int32_t>((r * 7 + 3) % classes);
      Tensor loss = cross_entropy(logits, Tensor::from_int({rows}, lab));
      loss.backward();
      return Outputs{{"loss", loss.to_vector()}, {"dlogits", logits.grad().to_vector()}};
    });
}

// [outer, n, inner] shapes for the axis reductions: inner 1 (row sums), long n, wide inner.
const std::vector<Shape> kReduceShapes = {{1, 1, 1},    {1, 3, 1},   {13, 127, 1}, {1, 100003, 1}, {3, 13, 127},
                                          {1, 4099, 7}, {2, 50, 71}, {1, 1, 1000}, {5, 3001, 13},  {7, 2, 40000}};

std::string shape_name(const Shape& s) {
  std::string n;
  for (int64_t d : s) n += (n.empty() ? "" : "x") + std::to_string(d);
  return n;
}

TEST(Threads, ReduceSumAndCountPositive) {
  for (const Shape& s : kReduceShapes)
    expect_thread_count_invariant("sum/count_positive over axis 1 of " + shape_name(s), [&] {
      Tensor x = random_tensor(s, 70, -1, 1.5f);
      return Outputs{{"sum", sum(x, 1).to_vector()},
                     {"mean", mean(x, 1).to_vector()},
                     {"count", count_positive(x, 1).to_vector()},
                     {"sum_all", sum_all(x).to_vector()}};
    });
}

// The sums are exact functions of the input; check that they are also the right sums.
TEST(Threads, ReduceSumMatchesDoubleSums) {
  ThreadSettingsGuard guard;
  set_num_threads(3);
  for (const Shape& s : kReduceShapes) {
    const int64_t outer = s[0], n = s[1], inner = s[2];
    std::vector<float> xv = random_values(numel(s), 71, -1, 1.5f);
    std::vector<double> want(outer * inner, 0.0), count(outer * inner, 0.0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) {
          want[o * inner + i] += xv[(o * n + j) * inner + i];
          count[o * inner + i] += xv[(o * n + j) * inner + i] > 0;
        }
    Tensor x = Tensor::from(s, xv);
    // A float sum of n terms in order: its rounding error grows about like sqrt(n) ulps.
    EXPECT_LE(rel_error(sum(x, 1).to_vector(), want, std::sqrt(double(n))), 2e-7 * std::sqrt(double(n)) + 1e-7)
        << shape_name(s);
    EXPECT_EQ(rel_error(count_positive(x, 1).to_vector(), count), 0) << shape_name(s);
  }
}

TEST(Threads, ElementwiseAndAdamW) {
  for (int64_t n : {1, 3, 13, 127, 4099, 100003})
    expect_thread_count_invariant("elementwise n=" + std::to_string(n), [&] {
      Tensor x = random_tensor({n}, 80, -4, 4).set_requires_grad(true);
      Tensor y = gelu(x);
      weighted_sum(y, 81).backward();
      Tensor p = random_tensor({n}, 82), g = random_tensor({n}, 83);
      Tensor m = random_tensor({n}, 84, -0.1f, 0.1f), v = random_tensor({n}, 85, 0, 0.01f);
      const AdamWArgs a{1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, 1.0f - 0.9f * 0.9f, 1.0f - 0.999f * 0.999f};
      cpu().adamw(p.buf(), g.buf(), m.buf(), v.buf(), n, a);
      return Outputs{{"gelu", y.to_vector()},
                     {"gelu dx", x.grad().to_vector()},
                     {"adamw p", p.to_vector()},
                     {"adamw m", m.to_vector()},
                     {"adamw v", v.to_vector()}};
    });
}

TEST(Threads, LinearWithBias) {
  for (auto [rows, cols] : kRowShapes)
    expect_thread_count_invariant("linear " + std::to_string(rows) + "x" + std::to_string(cols), [&] {
      Tensor x = random_tensor({rows, cols}, 90).set_requires_grad(true);
      Tensor w = random_tensor({29, cols}, 91).set_requires_grad(true),
             b = random_tensor({29}, 92).set_requires_grad(true);
      Tensor y = linear(x, w, b);
      weighted_sum(y, 93).backward();
      return Outputs{{"y", y.to_vector()},
                     {"dx", x.grad().to_vector()},
                     {"dw", w.grad().to_vector()},
                     {"db", b.grad().to_vector()}};
    });
}

}  // namespace
