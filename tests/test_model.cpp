// Model-level tests: finite-difference gradients of the whole AiT loss, the spec's structural
// promises (no gradient into W_v / W_out / LN_write, frozen eval independent of the batch),
// and the memory update's closed form.
#include <cmath>

#include "io/safetensors.h"
#include "model/model.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

// The shared micro model with a large balance coefficient, so that the balance term's gradient
// is visible in the finite-difference check.
Config micro(int64_t q) {
  Config c = micro_config(q);
  c.balance_coef = 0.5;
  return c;
}

struct Inputs {
  Tensor images, questions, labels;
};

Inputs random_inputs(const Config& c, int64_t B, uint64_t seed) {
  Inputs b;
  b.images = random_tensor({B, c.channels, c.image_height, c.image_width}, seed, -2, 2);
  if (c.question_dim) b.questions = random_tensor({B, c.question_dim}, seed + 1);
  std::vector<int32_t> lab(B);
  for (int64_t i = 0; i < B; ++i) lab[i] = static_cast<int32_t>((i * 3 + seed) % c.num_classes);
  b.labels = Tensor::from_int({B}, lab);
  return b;
}

}  // namespace

class ModelGrad : public ::testing::TestWithParam<int64_t> {};

TEST_P(ModelGrad, FiniteDifferences) {
  Config c = micro(GetParam());
  AiT model(c, cpu(), 42);
  Inputs b = random_inputs(c, 3, 5);
  ForwardResult r = model.forward(b.images, b.questions, b.labels, true, true, 0);
  ASSERT_GT(r.balance.item(), 0.0f);
  r.loss.backward();
  NoGradScope ng;
  Rng pick(3);
  double worst = 0;
  for (auto& [name, p] : model.params()) {
    std::vector<float> base = p.to_vector();
    std::vector<float> g = p.grad().defined() ? p.grad().to_vector() : std::vector<float>(base.size(), 0.0f);
    if (AiT::receives_no_gradient(name)) {
      EXPECT_FALSE(p.grad().defined()) << name;
      continue;
    }
    std::vector<float> a, n;
    // The loss is piecewise smooth (the top-k selection and the count term jump when the kept
    // set changes). An entry whose one-sided slopes disagree straddles such a jump: skip it.
    for (int t = 0; t < 40 && a.size() < 6; ++t) {
      size_t i = pick.below(base.size());
      const float h = 5e-3f;
      auto loss_at = [&](float v) {
        std::vector<float> w = base;
        w[i] = v;
        p.copy_from(w);
        return double(model.forward(b.images, b.questions, b.labels, true, true, 0).loss.item());
      };
      double lp = loss_at(base[i] + h), l0 = loss_at(base[i]), lm = loss_at(base[i] - h);
      double right = (lp - l0) / h, left = (l0 - lm) / h;
      if (std::fabs(right - left) > 0.05 * std::max(std::fabs(right), std::fabs(left)) + 5e-4) continue;
      n.push_back(static_cast<float>((lp - lm) / (2 * h)));
      a.push_back(g[i]);
      if (std::getenv("AIT_DEBUG_GRAD"))
        std::printf("%s[%zu] analytic %g numeric %g\n", name.c_str(), i, g[i], n.back());
    }
    EXPECT_GE(a.size(), 4u) << name << ": too many entries near a selection change";
    p.copy_from(base);
    // Float32 losses carry ~1e-7 relative noise, ~2e-5 in a slope at h = 1e-2: tiny gradients
    // are compared against an absolute floor of 1e-2 in the norm.
    double err = rel_error(a, n, 1e-2);
    worst = std::max(worst, err);
    EXPECT_LE(err, 5e-2) << name;  // float32 FD noise; the PyTorch golden test checks 1e-4
  }
  std::printf("worst relative gradient error: %.2e\n", worst);
}

INSTANTIATE_TEST_SUITE_P(Questions, ModelGrad, ::testing::Values(0, 5));

TEST(Model, FrozenEvalDependsOnlyOnItsImage) {
  Config c = micro(0);
  AiT model(c, cpu(), 1);
  Inputs b = random_inputs(c, 3, 9);
  NoGradScope ng;
  Tensor all = model.forward(b.images, {}, {}, false, false, 0).logits;
  Tensor first = model.forward(slice(b.images, 0, 0, 1), {}, {}, false, false, 0).logits;
  auto av = all.to_vector(), fv = first.to_vector();
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(av[j], fv[j], 1e-5);
  // A writing pass mixes the batch: the first image's logits change with its neighbours.
  Tensor w_all = model.forward(b.images, {}, {}, true, false, 0).logits;
  Tensor w_first = model.forward(slice(b.images, 0, 0, 1), {}, {}, true, false, 0).logits;
  EXPECT_GT(std::fabs(w_all.to_vector()[0] - w_first.to_vector()[0]), 1e-6);
}

// With the write head's output projection zeroed, G = LN(0 + γ) and the update has a closed
// form computed here on the host: γ' = normalise(μγ + (1 − μ)(LN(γ)·w + b)), row by row
// (LayerNorm eps 1e-6, normalise divides by max(‖row‖, 1e-12)). Random LayerNorm w and b.
TEST(Model, MemoryUpdateClosedForm) {
  Config c = micro(0);
  AiT model(c, cpu(), 2);
  const std::string head = "layers.0.gwl.write.";
  Tensor w_out = model.param(head + "out.weight"), w_ln = model.param(head + "norm.weight"),
         b_ln = model.param(head + "norm.bias");
  w_out.copy_from(std::vector<float>(w_out.numel(), 0.0f));
  w_ln.copy_from(random_values(w_ln.numel(), 31, 0.5f, 1.5f));
  b_ln.copy_from(random_values(b_ln.numel(), 32));
  const std::vector<float> g0 = model.memory()[0].to_vector(), w = w_ln.to_vector(), b = b_ln.to_vector();
  Inputs in = random_inputs(c, 2, 4);
  ForwardResult r = model.forward(in.images, {}, in.labels, true, true, 0);
  model.commit_memory(r);
  const std::vector<float> g1 = model.memory()[0].to_vector();
  const int64_t m = c.memory_dim;
  const double mu = c.memory_momentum;
  for (int64_t row = 0; row < c.memory_slots; ++row) {
    const float* g = g0.data() + row * m;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < m; ++j) mean += g[j] / double(m);
    for (int64_t j = 0; j < m; ++j) var += (g[j] - mean) * (g[j] - mean) / double(m);
    std::vector<double> u(m);
    double norm = 0;
    for (int64_t j = 0; j < m; ++j) {
      double ln = (g[j] - mean) / std::sqrt(var + 1e-6) * w[j] + b[j];
      u[j] = mu * g[j] + (1 - mu) * ln;
      norm += u[j] * u[j];
    }
    norm = std::max(std::sqrt(norm), 1e-12);
    for (int64_t j = 0; j < m; ++j) EXPECT_NEAR(g1[row * m + j], u[j] / norm, 2e-6) << "row " << row << " col " << j;
  }
}

// Spec §6: a loader rejects an unknown version, a missing or extra tensor, a wrong shape or
// dtype, naming the tensor; a saved model loads back bit for bit.
TEST(Checkpoint, RoundTripAndRejections) {
  Config c = micro(5);
  AiT model(c, cpu(), 3);
  model.data_mean = {0.1f, 0.2f, 0.3f};
  model.data_std = {0.5f, 0.6f, 0.7f};
  std::string dir = test_tmpdir(), path = dir + "/checkpoint.safetensors";
  model.save(path);
  AiT back = AiT::load(path, cpu());
  for (auto& [name, t] : model.params()) EXPECT_EQ(t.to_vector(), back.param(name).to_vector()) << name;
  EXPECT_EQ(back.memory()[1].to_vector(), model.memory()[1].to_vector());
  EXPECT_EQ(back.data_std, model.data_std);

  auto expect_error = [&](const std::function<void(SafeTensors&)>& mutate, const std::string& want) {
    SafeTensors st = read_safetensors(path);
    mutate(st);
    std::string bad = dir + "/bad.safetensors";
    write_safetensors(bad, st);
    try {
      AiT::load(bad, cpu());
      ADD_FAILURE() << "no error; wanted: " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error([](SafeTensors& st) { st.metadata["version"] = "2"; }, "unknown checkpoint version '2'");
  expect_error([](SafeTensors& st) { st.tensors.erase("layers.1.gwl.read.bias"); },
               "'layers.1.gwl.read.bias' is missing");
  expect_error([](SafeTensors& st) { st.add("layers.9.extra", StTensor::from_f32({1}, {0.0f})); },
               "unexpected tensor 'layers.9.extra'");
  expect_error(
      [](SafeTensors& st) {
        st.tensors["head.proj.bias"] = StTensor::from_f32({3}, {0, 0, 0});
      },
      "'head.proj.bias' has shape [3]");
  expect_error(
      [](SafeTensors& st) {
        st.tensors["head.proj.bias"] = StTensor::from_i32({5}, {0, 0, 0, 0, 0});
      },
      "'head.proj.bias' has dtype I32");
  expect_error([](SafeTensors& st) { st.metadata["config"] = "{\"dim\": 12, \"bogus\": 1}"; },
               "unknown config key 'bogus'");
}
