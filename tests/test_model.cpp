// Model-level tests: finite-difference gradients of the whole AiT loss, the spec's structural
// promises (no gradient into W_v / W_out / LN_write, frozen eval independent of the batch),
// and the memory update's closed form.
#include <cmath>
#include <functional>

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

// Central differences of the training loss against the backward pass, a few entries of every
// parameter. `has_balance`: the config writes memory, so the balance term must be there.
void check_finite_differences(const Config& c, bool has_balance) {
  AiT model(c, cpu(), 42);
  ModelInputs b = random_inputs(c, 3, 5);
  ForwardResult r = model.forward(b.images, b.questions, b.labels, true, true, 0);
  if (has_balance) ASSERT_GT(r.balance.item(), 0.0f);
  else ASSERT_EQ(r.balance.item(), 0.0f);
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

}  // namespace

class ModelGrad : public ::testing::TestWithParam<int64_t> {};

TEST_P(ModelGrad, FiniteDifferences) { check_finite_differences(micro(GetParam()), true); }

INSTANTIATE_TEST_SUITE_P(Questions, ModelGrad, ::testing::Values(0, 5));

// The same check for each architecture and ablation switch of spec §1 (key=value over the micro
// model; the question token for the ViT).
class VariantGrad : public ::testing::TestWithParam<std::string> {};

Config variant(const std::string& kv, int64_t q = 0) {
  Config c = micro(q);
  c.set(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
  c.validate();
  return c;
}

TEST_P(VariantGrad, FiniteDifferences) {
  const Config c = variant(GetParam(), GetParam() == "arch=vit" ? 5 : 0);
  check_finite_differences(c, c.arch == Arch::AiT && c.memory_mode != MemoryMode::Learned);
}

INSTANTIATE_TEST_SUITE_P(Switches, VariantGrad,
                         ::testing::Values("self_attention=0", "hopfield_read=0", "topk_write=0", "memory_mode=reset",
                                           "memory_mode=learned", "arch=vit"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '=') ch = '_';
                           return n;
                         });

// memory_mode=reset writes (and reads) γ' in every training pass but never keeps it: the
// model's memory stays the initial γ. With ema the same pass replaces it.
TEST(Model, ResetModeNeverKeepsTheWrittenMemory) {
  for (const std::string mode : {"reset", "ema"}) {
    AiT model(variant("memory_mode=" + mode), cpu(), 7);
    ModelInputs b = random_inputs(model.config(), 3, 2);
    const std::vector<float> before = model.memory()[1].to_vector();
    NoGradScope ng;
    ForwardResult r = model.forward(b.images, {}, b.labels, true, true, 0);
    ASSERT_EQ(r.new_memory.size(), 2u);
    EXPECT_NE(r.new_memory[1].to_vector(), before) << mode;
    model.commit_memory(r);
    if (mode == "reset") EXPECT_EQ(model.memory()[1].to_vector(), before);
    else EXPECT_EQ(model.memory()[1].to_vector(), r.new_memory[1].to_vector());
  }
}

// Named values and switches: spelled as strings, refused with the key and the known values,
// written to JSON only when not at their default (a default config's JSON is the 19-key one).
// Config::tokens() against the sequence length each architecture's forward pass really has: the
// Hopfield read [B, T, M] of the AiT, the broadcast read [B, h, T, M] of Coordination, and the
// ViT's position embedding, which must cover every token for the pass to run at all.
TEST(ConfigKeys, TokenCountIsTheSequenceTheLayersSee) {
  for (int64_t q : {0, 3}) {
    Config ait = micro(q);
    AiT a(ait, cpu(), 1);
    ModelInputs in = random_inputs(ait, 2, 5);
    ForwardResult ra = a.forward(in.images, in.questions, {}, true, false, 0);
    ASSERT_FALSE(ra.read_weights.empty());
    ASSERT_TRUE(ra.read_weights[0].defined());
    EXPECT_EQ(ra.read_weights[0].dim(1), ait.tokens());
    Config coord = micro(q);
    coord.arch = Arch::Coordination;
    coord.head_dim = coord.dim / coord.heads;
    AiT co(coord, cpu(), 1);
    ForwardResult rc = co.forward(in.images, in.questions, {}, false, false, 0);
    ASSERT_FALSE(rc.read_weights.empty());
    ASSERT_TRUE(rc.read_weights[0].defined());
    EXPECT_EQ(rc.read_weights[0].dim(2), coord.tokens());
    EXPECT_EQ(coord.tokens(), ait.tokens() + 1);  // the class token
    Config vit = micro(q);
    vit.arch = Arch::ViT;
    AiT v(vit, cpu(), 1);
    EXPECT_EQ(v.param("pos_embedding").dim(1), vit.tokens());
    EXPECT_EQ(v.forward(in.images, in.questions, {}, false, false, 0).logits.dim(0), 2);
  }
}

TEST(ConfigKeys, NamedValuesAndSwitches) {
  auto has = [](const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; };
  Config c;
  EXPECT_EQ(c.to_json().dump().find("arch"), std::string::npos);
  EXPECT_EQ(c.to_json().as_object().size(), 19u);
  c.set("arch", "vit");
  EXPECT_EQ(c.arch, Arch::ViT);
  EXPECT_TRUE(has(c.to_json().dump(), "\"arch\":\"vit\"")) << c.to_json().dump();
  Config back;
  back.update(c.to_json(), "round trip");
  EXPECT_TRUE(back.differences(c).empty());
  auto error_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Config d;
  EXPECT_TRUE(
      has(error_of([&] { d.set("arch", "resnet"); }), "'arch' is 'resnet'; known values: ait, vit, coordination"));
  EXPECT_TRUE(has(error_of([&] { d.update(Json::parse("{\"memory_mode\": 1}", "j"), "f.json"); }),
                  "f.json: config key 'memory_mode' must be a string, one of: ema, reset, learned"));
  EXPECT_TRUE(has(error_of([&] { d.set("topk_write", "2"); }), "key 'topk_write' is 2, outside its range [0, 1]"));
  Config uneven_workspace = micro(0);
  uneven_workspace.arch = Arch::Coordination;
  uneven_workspace.head_dim = uneven_workspace.dim / uneven_workspace.heads + 1;
  EXPECT_TRUE(has(error_of([&] { uneven_workspace.validate(); }), "arch=coordination needs heads * head_dim = dim"));
  Config vit_ablated = variant("arch=vit");
  vit_ablated.hopfield_read = false;
  EXPECT_TRUE(has(error_of([&] { vit_ablated.validate("cfg"); }),
                  "cfg: key 'hopfield_read' is 0, but it applies to arch=ait only"));
  Config learned_unread = variant("memory_mode=learned");
  learned_unread.hopfield_read = false;
  EXPECT_TRUE(has(error_of([&] { learned_unread.validate(); }), "needs hopfield_read=1"));
  // The 19-key JSON of a default config reads back as that config.
  Config from_old;
  from_old.update(Json::parse(Config().to_json().dump(), "old"), "old.json");
  EXPECT_TRUE(from_old.differences(Config()).empty());
}

TEST(Model, FrozenEvalDependsOnlyOnItsImage) {
  Config c = micro(0);
  AiT model(c, cpu(), 1);
  ModelInputs b = random_inputs(c, 3, 9);
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
  ModelInputs in = random_inputs(c, 2, 4);
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

// ------------------------------------------------------------------ hostile checkpoints

namespace {

// A checkpoint file of the given metadata and tensors, as an attacker could write it.
std::string write_checkpoint(const std::string& path, const std::map<std::string, std::string>& metadata,
                             const std::map<std::string, StTensor>& tensors = {}) {
  SafeTensors st;
  st.metadata = metadata;
  for (const auto& [name, t] : tensors) st.add(name, t);
  write_safetensors(path, st);
  return path;
}

std::map<std::string, std::string> ait_metadata(const std::string& config) {
  return {{"format", "ait"}, {"version", "1"}, {"config", config}};
}

// The AiT::load error for `path`, which must name the file.
std::string load_error(const std::string& path) {
  const std::string e = error_of([&] { AiT::load(path, cpu()); });
  EXPECT_NE(e.find(path), std::string::npos) << "the message names no file: " << e;
  return e;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

// The audit's 461-byte file: a config of a billion layers and one small tensor. The config is
// refused by its range before any model is built.
TEST(Checkpoint, ConfigOutOfRangeIsRefusedBeforeBuilding) {
  const std::string dir = test_tmpdir();
  const std::map<std::string, StTensor> one = {{"head.proj.bias", StTensor::from_f32({2}, {0, 0})}};
  struct Case {
    std::string config, want;
  };
  const std::vector<Case> cases = {
      {R"({"depth": 1000000000})", "key 'depth' is 1000000000, outside its range [1, 1024]"},
      {R"({"channels": 4294967296})", "key 'channels' is 4294967296, outside its range [1, 65536]"},
      {R"({"patch_size": 65536, "image_height": 65536, "image_width": 65536})",
       "key 'image_height' is 65536, outside its range [1, 16384]"},
      {R"({"patch_size": 1, "image_height": 512, "image_width": 512})",
       "key 'patch_size' is 1: the model would have 262144 tokens per image, more than the limit of 65536"},
      {R"({"dim": 65536, "mlp_dim": 65536, "depth": 1024})", "more than the limit of 4294967296"},
      {R"({"dim": -3})", "key 'dim' is -3, outside its range [1, 65536]"},
      {R"({"heads": 1e300})", "key 'heads' is 1.0000000000000001e+300, outside its range [1, 1024]"},
      {R"({"hopfield_beta": 1e308})", "key 'hopfield_beta' is 1e+308, outside its range [0, 10000]"},
      {R"({"write_dropout": 1})", "key 'write_dropout' is 1, outside its range [0, 1)"},
      {R"({"bottleneck": 0.5})", "config key 'bottleneck' must be an integer, not 0.5"},
  };
  for (const Case& c : cases) {
    const std::string path = write_checkpoint(dir + "/hostile.safetensors", ait_metadata(c.config), one);
    const std::string e = load_error(path);
    EXPECT_TRUE(has(e, c.want)) << "want: " << c.want << "\ngot:  " << e;
  }
}

// A valid config that asks for more values than the file's tensors hold is refused on the sizes
// alone; one that fits the bytes still needs every tensor by name, dtype and shape.
TEST(Checkpoint, TensorTableIsCheckedAgainstTheFileSize) {
  const std::string dir = test_tmpdir();
  Config big;  // tiny's defaults with 1000 layers: 2.5e8 values, 1 GB of float32
  big.depth = 1000;
  const std::string path = write_checkpoint(dir + "/big.safetensors", ait_metadata(big.to_json().dump()),
                                            {{"head.proj.bias", StTensor::from_f32({10}, std::vector<float>(10))}});
  const std::string e = load_error(path);
  EXPECT_TRUE(has(e, "the config needs " + std::to_string(big.stored_values()) + " F32 values (" +
                         std::to_string(big.stored_values() * 4) +
                         " bytes), the file's tensors hold 40 bytes; "
                         "tensor 'patch_embed.norm_in.weight' is missing"))
      << e;
  // The same total in one wrong tensor: the names decide.
  Config c = micro_config(0);
  const std::string blob =
      write_checkpoint(dir + "/blob.safetensors", ait_metadata(c.to_json().dump()),
                       {{"blob", StTensor::from_f32({c.stored_values()}, std::vector<float>(c.stored_values()))}});
  EXPECT_TRUE(has(load_error(blob), ": tensor 'patch_embed.norm_in.weight' is missing")) << load_error(blob);
}

// checkpoint_tensors() (computed, nothing allocated) lists what the constructor builds, in the
// same order, and stored_values() is the sum of their sizes.
TEST(Checkpoint, TensorListMatchesTheModel) {
  Config deep = micro_config(0);
  deep.depth = 3, deep.heads = 3, deep.memory_heads = 1;
  std::vector<Config> configs = {micro_config(0), micro_config(5), deep};
  for (const char* kv : {"arch=vit", "self_attention=0", "hopfield_read=0", "memory_mode=learned"}) {
    Config c = deep;
    c.set(std::string(kv).substr(0, std::string(kv).find('=')), std::string(kv).substr(std::string(kv).find('=') + 1));
    configs.push_back(c);
  }
  for (const Config& c : configs) {
    AiT model(c, cpu(), 1);
    std::vector<std::pair<std::string, Shape>> built;
    for (auto& [name, t] : model.params()) built.push_back({name, t.shape()});
    for (const Tensor& g : model.memory()) built.push_back({g.name(), g.shape()});
    EXPECT_EQ(checkpoint_tensors(c), built);
    int64_t total = 0;
    for (auto& [name, shape] : built) total += numel(shape);
    EXPECT_EQ(c.stored_values(), total);
    EXPECT_EQ(parameter_count(c), model.parameter_count());
  }
}

// data_mean / data_std must be one finite number per channel, a std above 0 (it divides the
// pixels); each refusal names the file and the key.
TEST(Checkpoint, NormalisationIsChecked) {
  const std::string dir = test_tmpdir(), good = dir + "/good.safetensors";
  AiT model(micro_config(0), cpu(), 4);
  model.save(good);
  struct Case {
    std::string key, value, want;
  };
  const std::vector<Case> cases = {
      {"data_std", "[0]", "__metadata__ data_std[0] is 0; it must be a finite number above 0"},
      {"data_std", "[-0.5]", "data_std[0] is -0.5; it must be a finite number above 0"},
      {"data_std", "[1e39]", "; it must be a finite number above 0"},   // no float
      {"data_std", "[1e-45]", "; it must be a finite number above 0"},  // 1/std is no float
      {"data_mean", "[\"x\"]", "__metadata__ data_mean[0] is a string, not a number"},
      {"data_mean", "[0.1, 0.2]", "__metadata__ data_mean must be a JSON array of 1 number(s), one per channel"},
      {"data_mean", "{}", "__metadata__ data_mean must be a JSON array"},
      {"data_mean", "[NaN]", "__metadata__ data_mean"},
  };
  for (const Case& c : cases) {
    SafeTensors st = read_safetensors(good);
    st.metadata["data_mean"] = "[0.5]";
    st.metadata["data_std"] = "[0.25]";
    st.metadata[c.key] = c.value;
    const std::string bad = dir + "/bad.safetensors";
    write_safetensors(bad, st);
    const std::string e = load_error(bad);
    EXPECT_TRUE(has(e, c.want)) << "want: " << c.want << "\ngot:  " << e;
  }
  SafeTensors st = read_safetensors(good);
  st.metadata["data_std"] = "[0.25]";
  write_safetensors(dir + "/half.safetensors", st);
  EXPECT_TRUE(has(load_error(dir + "/half.safetensors"), "data_std without data_mean"));
}

// Every key refuses NaN and values just outside its range, naming the key; the edges are fine.
TEST(Model, ConfigValidationRanges) {
  struct Edge {
    const char* key;
    double below, above;  // the nearest refused values
    double lo, hi;        // accepted edges (each alone keeps the config valid)
  };
  const std::vector<Edge> edges = {
      {"channels", 0, 65537, 1, 65536},
      {"question_dim", -1, 65537, 0, 65536},
      {"dim", 0, 65537, 1, 4096},
      {"depth", 0, 1025, 1, 1024},
      {"heads", 0, 1025, 1, 1024},
      {"head_dim", 0, 65537, 1, 65536},
      {"mlp_dim", 0, 65537, 1, 65536},
      {"num_classes", 0, 65537, 1, 65536},
      {"memory_slots", 0, 65537, 1, 65536},
      {"memory_dim", 0, 65537, 1, 1024},
      {"memory_heads", 0, 1025, 1, 1024},
      {"bottleneck", 0, 1073741825, 1, 1073741824},
      {"hopfield_beta", -1e-9, 10000.001, 0, 1e4},
      {"balance_coef", -1e-9, 10000.001, 0, 1e4},
      {"write_dropout", -1e-9, 1, 0, 0.999},
      {"memory_momentum", 0, 1, 1e-9, 0.999999},
  };
  for (const Edge& e : edges) {
    for (double v : {e.below, e.above, std::nan("")}) {
      Config c;
      Json j = Json::object();
      j.set(e.key, v);
      const std::string err = error_of([&] {
        if (std::isnan(v)) c.set(e.key, "nan");
        else c.update(j, "test");
        c.validate();
      });
      EXPECT_TRUE(has(err, std::string("'") + e.key + "'")) << e.key << " = " << v << ": " << err;
    }
    for (double v : {e.lo, e.hi}) {
      Config c;
      Json j = Json::object();
      j.set(e.key, v);
      EXPECT_EQ(error_of([&] { c.update(j, "test"), c.validate(); }), "(no error)") << e.key << " = " << v;
    }
  }
}
