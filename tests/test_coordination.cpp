// arch=coordination (docs/spec.md §13): directional finite differences of the whole loss for
// every parameter, the per-image workspace (a batch's logits are each image's own), residual
// dropout, the keys it adds to validation and the parameter count of the compared sizes.
#include <cmath>
#include <functional>

#include "model/model.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

// Odd sizes: D = 15 in 3 heads of 5, query/key width 2, M = 4 slots, k = 3 of T = 1 (+1) + 4
// tokens, 2 steps, 3 MLP passes, 7 classes.
Config coordination_micro(int64_t q) {
  Config c;
  c.arch = Arch::Coordination;
  c.channels = q ? 3 : 1, c.image_height = 8, c.image_width = 8, c.patch_size = 4, c.question_dim = q;
  c.dim = 15, c.depth = 2, c.heads = 3, c.head_dim = 5, c.mlp_dim = 13, c.num_classes = 7;
  c.memory_slots = 4, c.memory_dim = 2, c.bottleneck = 3, c.workspace_mlp_layers = 3, c.write_dropout = 0;
  c.validate();
  return c;
}

void expect_throw_with(const std::function<void()>& f, const std::string& want) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << want;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

double loss_of(const AiT& model, const ModelInputs& b) {
  return model.forward(b.images, b.questions, b.labels, true, true, 0).loss.item();
}

}  // namespace

class CoordinationGrad : public ::testing::TestWithParam<int64_t> {};

// For each parameter tensor, along a unit direction v halfway between its gradient g and a random
// direction: (L(θ + h·v) − L(θ − h·v)) / 2h against g·v, which tests both the size of g and where
// it points. The loss has kinks (relu, and the top-k choice, where it is continuous but not
// smooth): a direction whose one-sided slopes disagree crosses one and is replaced.
TEST_P(CoordinationGrad, DirectionalFiniteDifferences) {
  Config c = coordination_micro(GetParam());
  AiT model(c, cpu(), 7);
  ModelInputs b = random_inputs(c, 3, 11, 5);
  ForwardResult r = model.forward(b.images, b.questions, b.labels, true, true, 0);
  EXPECT_EQ(r.balance.item(), 0.0f);
  r.loss.backward();
  NoGradScope ng;
  const double l0 = loss_of(model, b);
  Rng pick(9);
  double worst = 0;
  auto unit = [](std::vector<double> v) {
    double n = 0;
    for (double x : v) n += x * x;
    for (double& x : v) x /= std::sqrt(n);
    return v;
  };
  for (auto& [name, p] : model.params()) {
    ASSERT_TRUE(p.grad().defined()) << name << ": every parameter takes a gradient (§13.2)";
    const std::vector<float> base = p.to_vector(), gf = p.grad().to_vector();
    const std::vector<double> g_dir = unit(std::vector<double>(gf.begin(), gf.end()));
    double analytic = 0, numeric = 0;
    bool smooth = false;
    for (int attempt = 0; attempt < 8 && !smooth; ++attempt) {
      std::vector<double> v(base.size());
      for (double& x : v) x = pick.uniform(-1.0f, 1.0f);
      v = unit(v);
      for (size_t i = 0; i < v.size(); ++i) v[i] += g_dir[i];
      v = unit(v);
      const double h = 3e-3;
      auto loss_at = [&](double t) {
        std::vector<float> w = base;
        for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(base[i] + t * v[i]);
        p.copy_from(w);
        return loss_of(model, b);
      };
      const double lp = loss_at(h), lm = loss_at(-h), right = (lp - l0) / h, left = (l0 - lm) / h;
      smooth = std::fabs(right - left) <= 0.02 * std::max(std::fabs(right), std::fabs(left)) + 1e-4;
      numeric = (lp - lm) / (2 * h);
      analytic = 0;
      for (size_t i = 0; i < gf.size(); ++i) analytic += double(gf[i]) * v[i];
    }
    p.copy_from(base);
    EXPECT_TRUE(smooth) << name << ": every direction crossed a kink";
    // Float32 losses carry ~1e-7 relative noise, ~5e-5 in a slope at this h: floor 1e-3.
    const double err = std::fabs(analytic - numeric) / std::max(std::fabs(numeric), 1e-3);
    worst = std::max(worst, err);
    EXPECT_LE(err, 1e-2) << name << ": analytic " << analytic << " numeric " << numeric;
  }
  std::printf("worst relative directional-derivative error: %.2e\n", worst);
}

INSTANTIATE_TEST_SUITE_P(Questions, CoordinationGrad, ::testing::Values(0, 5));

// The workspace starts afresh for every image and pass: a batch's logits are each image's own,
// and a training pass without dropout computes what an evaluation pass does.
TEST(Coordination, WorkspaceIsPerImageAndPerPass) {
  Config c = coordination_micro(5);
  AiT model(c, cpu(), 3);
  ModelInputs b = random_inputs(c, 3, 4, 5);
  NoGradScope ng;
  std::vector<float> whole = model.forward(b.images, b.questions, b.labels, false, false, 0).logits.to_vector();
  std::vector<float> trained = model.forward(b.images, b.questions, b.labels, true, true, 0).logits.to_vector();
  EXPECT_EQ(whole, trained);
  for (int64_t i = 0; i < 3; ++i) {
    Tensor one = model.forward(slice(b.images, 0, i, 1), slice(b.questions, 0, i, 1), Tensor(), false, false, 0).logits;
    std::vector<float> want(whole.begin() + i * c.num_classes, whole.begin() + (i + 1) * c.num_classes);
    EXPECT_LT(rel_error(one.to_vector(), want), 1e-6) << "image " << i;
  }
  EXPECT_TRUE(model.memory().empty());
}

// ρ drops residual branches in training passes only, the same way for the same seed.
TEST(Coordination, ResidualDropoutActsInTrainingPassesOnly) {
  Config c = coordination_micro(0);
  c.write_dropout = 0.5;
  AiT model(c, cpu(), 3);
  ModelInputs b = random_inputs(c, 2, 4, 5);
  NoGradScope ng;
  auto logits = [&](bool training, uint32_t seed) {
    return model.forward(b.images, b.questions, b.labels, true, training, seed).logits.to_vector();
  };
  EXPECT_EQ(logits(true, 17), logits(true, 17));
  EXPECT_NE(logits(true, 17), logits(true, 18));
  EXPECT_NE(logits(true, 17), logits(false, 17));
  EXPECT_EQ(logits(false, 17), logits(false, 18));
}

TEST(Coordination, ConfigKeys) {
  Config c = coordination_micro(0);
  c.head_dim = 4;  // 3 heads of 4 != dim 15
  expect_throw_with([&] { c.validate(); }, "arch=coordination needs heads * head_dim = dim");
  c = coordination_micro(0);
  c.set("workspace_mlp_layers", "65");
  expect_throw_with([&] { c.validate(); }, "workspace_mlp_layers");
  Config a;  // arch=ait
  a.set("workspace_mlp_layers", "2");
  expect_throw_with([&] { a.validate(); }, "applies to arch=coordination only");
  // Written to JSON only when it differs from its default, so AiT files stay as they were.
  EXPECT_FALSE(Config().to_json().has("workspace_mlp_layers"));
  EXPECT_TRUE(coordination_micro(0).to_json().has("workspace_mlp_layers"));
}

// The preset at Goyal et al.'s Sort-of-CLEVR sizes (3×75×75 in 15×15 patches, 18 question
// features, 10 answers) against the count of tools/reference/coordination_reference.py.
TEST(Coordination, SharedWorkspacePresetParameterCount) {
  Config c = Config::preset("shared-workspace");
  EXPECT_EQ(c.arch, Arch::Coordination);
  c.channels = 3, c.image_height = c.image_width = 75, c.patch_size = 15, c.question_dim = 18, c.num_classes = 10;
  c.validate();
  EXPECT_EQ(parameter_count(c), 1895670);
  EXPECT_EQ(c.stored_values(), 1895670);  // nothing besides the parameters
}
