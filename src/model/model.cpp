// AiT forward pass and loss, step by step as in docs/spec.md section 2 and 3.
#include "model/model.h"

#include <cmath>

#include "core/ops.h"
#include "core/rng.h"
#include "io/safetensors.h"

namespace ait {

namespace {
Tensor P(const AiT& m, const std::string& name) { return m.param(name); }
std::string L(int64_t i, const std::string& rest) { return "layers." + std::to_string(i) + "." + rest; }

Tensor LN(const AiT& m, const Tensor& x, const std::string& prefix, float eps = 1e-5f) {
  return layernorm(x, P(m, prefix + ".weight"), P(m, prefix + ".bias"), eps);
}
Tensor Linear(const AiT& m, const Tensor& x, const std::string& prefix, bool bias = true) {
  return linear(x, P(m, prefix + ".weight"), bias ? P(m, prefix + ".bias") : Tensor());
}

// CV²(x) = var(x) / (mean(x)² + 1e-10) over the last axis, unbiased variance, 0 for one entry.
Tensor cv_squared(const Tensor& x) {
  Tensor mu = mean(x, -1);
  return div(variance(x, -1), add(mul(mu, mu), Tensor::full({1}, 1e-10f, &x.dev())));
}
}  // namespace

// ------------------------------------------------------------------ parameters (spec §5, §6)

Tensor AiT::add_param(const std::string& name, const Shape& shape) {
  Tensor t = Tensor::zeros(shape, dev_);
  t.set_name(name).set_requires_grad(true);
  index_[name] = params_.size();
  params_.push_back({name, t});
  return t;
}

AiT::AiT(const Config& cfg, Kernels& dev, uint64_t seed) : cfg_(cfg), dev_(&dev) {
  cfg_.validate();
  const Config& c = cfg_;
  Rng rng(seed);
  auto linear_param = [&](const std::string& prefix, int64_t out, int64_t in, bool bias) {
    float bound = 1.0f / std::sqrt(static_cast<float>(in));  // PyTorch's nn.Linear default
    std::vector<float> w(out * in);
    for (float& v : w) v = rng.uniform(-bound, bound);
    add_param(prefix + ".weight", {out, in}).copy_from(w);
    if (bias) {
      std::vector<float> b(out);
      for (float& v : b) v = rng.uniform(-bound, bound);
      add_param(prefix + ".bias", {out}).copy_from(b);
    }
  };
  auto norm_param = [&](const std::string& prefix, int64_t n) {
    add_param(prefix + ".weight", {n}).copy_from(std::vector<float>(n, 1.0f));
    add_param(prefix + ".bias", {n});
  };
  const int64_t D = c.dim, pf = c.patch_features(), inner = c.heads * c.head_dim, wm = c.memory_heads * c.memory_dim;
  norm_param("patch_embed.norm_in", pf);
  linear_param("patch_embed.proj", D, pf, true);
  norm_param("patch_embed.norm_out", D);
  if (c.question_dim > 0) {
    norm_param("question_embed.norm_in", c.question_dim);
    linear_param("question_embed.proj", D, c.question_dim, true);
    norm_param("question_embed.norm_out", D);
  }
  for (int64_t i = 0; i < c.depth; ++i) {
    norm_param(L(i, "attn_norm"), D);
    linear_param(L(i, "attn.qkv"), 3 * inner, D, false);
    linear_param(L(i, "attn.out"), D, inner, true);
    norm_param(L(i, "gwl_norm"), D);
    linear_param(L(i, "gwl.fc1"), c.mlp_dim, D, true);
    linear_param(L(i, "gwl.fc2"), D, c.mlp_dim, true);
    norm_param(L(i, "gwl.ffn_norm"), D);
    linear_param(L(i, "gwl.write.q"), wm, c.memory_dim, false);
    linear_param(L(i, "gwl.write.k"), wm, D, false);
    linear_param(L(i, "gwl.write.v"), wm, D, false);
    linear_param(L(i, "gwl.write.out"), c.memory_dim, wm, false);
    norm_param(L(i, "gwl.write.norm"), c.memory_dim);
    linear_param(L(i, "gwl.read"), D, c.memory_dim, true);
    std::vector<float> g(c.memory_slots * c.memory_dim);
    for (float& v : g) v = rng.normal();  // γ ~ N(0, 1), normalised only by its first update
    memory_.push_back(Tensor::from({c.memory_slots, c.memory_dim}, g, dev_).set_name(L(i, "gwl.memory")));
  }
  norm_param("head.norm", c.tokens() * D);
  linear_param("head.proj", c.num_classes, c.tokens() * D, true);
}

const Tensor& AiT::param(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("model has no parameter '" + name + "'");
  return params_[it->second].second;
}

int64_t AiT::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : params_) n += t.numel();
  return n;
}

bool AiT::receives_no_gradient(const std::string& name) {
  for (const char* s : {".gwl.write.v.", ".gwl.write.out.", ".gwl.write.norm."})
    if (name.find(s) != std::string::npos) return true;
  return false;
}

void AiT::commit_memory(const ForwardResult& r) {
  if (r.new_memory.size() != memory_.size()) return;  // the pass did not write
  // Written into the memory's own storage, as a module updates its buffers in place: the memory
  // stays one tensor for the model's life.
  for (size_t i = 0; i < memory_.size(); ++i) memory_[i].assign(r.new_memory[i]);
}

// ------------------------------------------------------------------ forward (spec §2, §3)

namespace {

// Steps 1-3: patches [B, C, H, W] -> [B, T0, p·p·C] (features ordered row, column, channel),
// the patch embedding, and the question token prepended when the model has one.
Tensor embed(const AiT& m, const Tensor& images, const Tensor& questions) {
  const Config& c = m.config();
  const int64_t B = images.dim(0), p = c.patch_size, Hp = c.image_height / p, Wp = c.image_width / p;
  Tensor patches = reshape(images, {B, c.channels, Hp, p, Wp, p});
  patches = reshape(permute(patches, {0, 2, 4, 3, 5, 1}), {B, Hp * Wp, c.patch_features()});
  Tensor X = LN(m, Linear(m, LN(m, patches, "patch_embed.norm_in"), "patch_embed.proj"), "patch_embed.norm_out");
  if (c.question_dim == 0) return X;
  if (!questions.defined() || questions.shape() != Shape{B, c.question_dim})
    throw Error("model input 'questions' must be [" + std::to_string(B) + ", " + std::to_string(c.question_dim) + "]" +
                (questions.defined() ? ", got " + shape_str(questions.shape()) : ", got none"));
  Tensor q =
      LN(m, Linear(m, LN(m, questions, "question_embed.norm_in"), "question_embed.proj"), "question_embed.norm_out");
  return concat({reshape(q, {B, 1, c.dim}), X}, 1);
}

// Self-attention of layer i: qkv head-major, softmax(q·kᵀ/√e)·v, heads concatenated, out
// projection; returns the residual stream after it.
Tensor self_attention(const AiT& m, const Tensor& X, int64_t i) {
  const Config& c = m.config();
  const int64_t B = X.dim(0), T = X.dim(1), h = c.heads, e = c.head_dim;
  Tensor qkv = Linear(m, LN(m, X, L(i, "attn_norm")), L(i, "attn.qkv"), false);
  qkv = reshape(permute(reshape(qkv, {B, T, 3, h, e}), {2, 0, 3, 1, 4}), {3, B * h, T, e});
  auto part = [&](int64_t j) { return reshape(slice(qkv, 0, j, 1), {B * h, T, e}); };
  Tensor att = softmax(matmul(part(0), part(1), false, true), 1.0f / std::sqrt(static_cast<float>(e)));
  Tensor heads_out = reshape(permute(reshape(matmul(att, part(2)), {B, h, T, e}), {0, 2, 1, 3}), {B, T, h * e});
  return add(X, Linear(m, heads_out, L(i, "attn.out")));
}

// The bottleneck write of layer i: memory rows attend to their top-k of the batch's squashed
// tokens Ξ [B·T, D] per head. Returns the updated memory γ' (EMA, then unit rows; reached only
// through stopgrad) and adds the layer's balance term (CV² of each token's total gate and of
// how many rows picked it) to `balance`.
Tensor bottleneck_write(const AiT& m, const Tensor& Xi, const Tensor& gamma, int64_t i, bool training,
                        uint32_t dropout_seed, Tensor& balance, std::vector<Tensor>& gates) {
  const Config& c = m.config();
  const int64_t BT = Xi.dim(0), H = c.memory_heads, md = c.memory_dim, M = c.memory_slots;
  Tensor Q = permute(reshape(Linear(m, gamma, L(i, "gwl.write.q"), false), {M, H, md}), {1, 0, 2});  // [H, M, m]
  Tensor K = permute(reshape(Linear(m, Xi, L(i, "gwl.write.k"), false), {BT, H, md}), {1, 0, 2});    // [H, BT, m]
  Tensor A = topk_gate(matmul(Q, K, false, true), c.bottleneck, 1.0f / std::sqrt(static_cast<float>(md)));
  gates.push_back(A.detach());  // [H, M, BT]
  Tensor layer_balance = add(sum_all(cv_squared(sum(A, 1))), sum_all(cv_squared(count_positive(A, 1))));
  balance = balance.defined() ? add(balance, layer_balance) : layer_balance;
  // G reaches the memory only through stopgrad: no graph needed for V, O, W_out, LN_write.
  NoGradScope stopgrad;
  Tensor V = permute(reshape(Linear(m, Xi, L(i, "gwl.write.v"), false), {BT, H, md}), {1, 0, 2});  // [H, BT, m]
  Tensor O = reshape(permute(matmul(A.detach(), V), {1, 0, 2}), {M, H * md});                      // heads concatenated
  Tensor out = Linear(m, O, L(i, "gwl.write.out"), false);
  if (training && c.write_dropout > 0)
    out = dropout(out, static_cast<float>(c.write_dropout), hash32(dropout_seed + static_cast<uint32_t>(i)));
  Tensor G = LN(m, add(out, gamma), L(i, "gwl.write.norm"), 1e-6f);
  const float mu = static_cast<float>(c.memory_momentum);
  return l2_normalize(axpby(mu, gamma, 1.0f - mu, G));
}

}  // namespace

ForwardResult AiT::forward(const Tensor& images, const Tensor& questions, const Tensor& labels, bool write,
                           bool training, uint32_t dropout_seed) const {
  const Config& c = cfg_;
  const AiT& m = *this;
  Shape want{images.rank() == 4 ? images.dim(0) : -1, c.channels, c.image_height, c.image_width};
  if (images.rank() != 4 || images.shape() != want)
    throw Error("model input 'images' has shape " + shape_str(images.shape()) + ", expected [B, " +
                std::to_string(c.channels) + ", " + std::to_string(c.image_height) + ", " +
                std::to_string(c.image_width) + "]");
  const int64_t B = images.dim(0), D = c.dim, T = c.tokens();
  Tensor X = embed(m, images, questions);
  ForwardResult r;
  Tensor balance;
  for (int64_t i = 0; i < c.depth; ++i) {
    X = self_attention(m, X, i);
    // Global Workspace Layer: FFN, then squash all tokens of the batch into one set Ξ.
    Tensor Z = LN(m, X, L(i, "gwl_norm"));
    Tensor U = LN(m, Linear(m, gelu(Linear(m, Z, L(i, "gwl.fc1"))), L(i, "gwl.fc2")), L(i, "gwl.ffn_norm"));
    Tensor gamma_read = memory_[i];
    if (write) {
      gamma_read = bottleneck_write(m, reshape(U, {B * T, D}), memory_[i], i, training, dropout_seed, balance, r.gates);
      r.new_memory.push_back(gamma_read);
    }
    // Hopfield read: one update step against the memory read in this pass.
    Tensor Y = Linear(m, gamma_read, L(i, "gwl.read"));                                     // [M, D]
    Tensor read = softmax(matmul(U, Y, false, true), static_cast<float>(c.hopfield_beta));  // [B, T, M]
    r.read_weights.push_back(read.detach());
    X = add(add(X, U), matmul(read, Y));
  }
  // 5. Head: flatten every token, LayerNorm, project.
  r.logits = Linear(m, LN(m, reshape(X, {B, T * D}), "head.norm"), "head.proj");
  if (labels.defined()) {
    r.ce = cross_entropy(r.logits, labels);
    r.balance = balance.defined() ? scale(balance, static_cast<float>(c.balance_coef)) : Tensor::zeros({}, dev_);
    r.loss = add(r.ce, r.balance);
  }
  return r;
}

}  // namespace ait

// ------------------------------------------------------------------ checkpoint (spec §6)

namespace ait {

void AiT::save(const std::string& path) const {
  SafeTensors st;
  st.metadata["format"] = "ait";
  st.metadata["version"] = "1";
  st.metadata["config"] = cfg_.to_json().dump();
  if (!data_mean.empty()) {
    Json m = Json::array(), d = Json::array();
    for (size_t i = 0; i < data_mean.size(); ++i) m.push_back(data_mean[i]), d.push_back(data_std[i]);
    st.metadata["data_mean"] = m.dump();
    st.metadata["data_std"] = d.dump();
  }
  for (auto& [name, t] : params_) st.add(name, StTensor::from_f32(t.shape(), t.to_vector()));
  for (const Tensor& g : memory_) st.add(g.name(), StTensor::from_f32(g.shape(), g.to_vector()));
  write_safetensors(path, st);  // temporary file + rename
}

std::vector<std::pair<std::string, Shape>> checkpoint_tensors(const Config& c) {
  std::vector<std::pair<std::string, Shape>> out;
  auto linear = [&](const std::string& prefix, int64_t n_out, int64_t n_in, bool bias) {
    out.push_back({prefix + ".weight", {n_out, n_in}});
    if (bias) out.push_back({prefix + ".bias", {n_out}});
  };
  auto norm = [&](const std::string& prefix, int64_t n) {
    out.push_back({prefix + ".weight", {n}});
    out.push_back({prefix + ".bias", {n}});
  };
  const int64_t D = c.dim, pf = c.patch_features(), inner = c.heads * c.head_dim, wm = c.memory_heads * c.memory_dim;
  norm("patch_embed.norm_in", pf);
  linear("patch_embed.proj", D, pf, true);
  norm("patch_embed.norm_out", D);
  if (c.question_dim > 0) {
    norm("question_embed.norm_in", c.question_dim);
    linear("question_embed.proj", D, c.question_dim, true);
    norm("question_embed.norm_out", D);
  }
  for (int64_t i = 0; i < c.depth; ++i) {
    norm(L(i, "attn_norm"), D);
    linear(L(i, "attn.qkv"), 3 * inner, D, false);
    linear(L(i, "attn.out"), D, inner, true);
    norm(L(i, "gwl_norm"), D);
    linear(L(i, "gwl.fc1"), c.mlp_dim, D, true);
    linear(L(i, "gwl.fc2"), D, c.mlp_dim, true);
    norm(L(i, "gwl.ffn_norm"), D);
    linear(L(i, "gwl.write.q"), wm, c.memory_dim, false);
    linear(L(i, "gwl.write.k"), wm, D, false);
    linear(L(i, "gwl.write.v"), wm, D, false);
    linear(L(i, "gwl.write.out"), c.memory_dim, wm, false);
    norm(L(i, "gwl.write.norm"), c.memory_dim);
    linear(L(i, "gwl.read"), D, c.memory_dim, true);
  }
  norm("head.norm", c.tokens() * D);
  linear("head.proj", c.num_classes, c.tokens() * D, true);
  for (int64_t i = 0; i < c.depth; ++i) out.push_back({L(i, "gwl.memory"), {c.memory_slots, c.memory_dim}});
  return out;
}

namespace {

Config config_of(const SafeTensors& st) {
  auto meta = [&](const std::string& key) -> const std::string& {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end()) throw Error(st.source + ": not an AiT checkpoint (no '" + key + "' in __metadata__)");
    return it->second;
  };
  if (meta("format") != "ait")
    throw Error(st.source + ": __metadata__ format is '" + meta("format") + "', expected 'ait'");
  if (meta("version") != "1")
    throw Error(st.source + ": unknown checkpoint version '" + meta("version") + "' (this build reads 1)");
  Config c;
  c.update(Json::parse(meta("config"), st.source + " config"), st.source + " config");
  c.validate(st.source + " config");
  return c;
}

// The first tensor of the config that the file lacks or holds with another dtype or shape, or
// the first tensor the config does not have; "" when the tables agree.
std::string table_mismatch(const SafeTensors& st, const Config& c) {
  std::map<std::string, Shape> want;
  for (auto& [name, shape] : checkpoint_tensors(c)) {
    if (!st.has(name)) return "tensor '" + name + "' is missing";
    const StTensor& s = st.get(name);
    if (s.dtype != "F32") return "tensor '" + name + "' has dtype " + s.dtype + ", expected F32";
    if (s.shape != shape)
      return "tensor '" + name + "' has shape " + shape_str(s.shape) + ", the config needs " + shape_str(shape);
    want[name] = shape;
  }
  for (auto& [name, s] : st.tensors)
    if (!want.count(name)) return "unexpected tensor '" + name + "' (not part of this config)";
  return "";
}

// The file's tensors against those the config implies, and the values the config needs against
// the bytes the file holds, before the model is built: a small file with a large config is
// refused without allocating anything of that size. (The config's ranges bound the table.)
void check_tensor_table(const SafeTensors& st, const Config& c) {
  uint64_t file_bytes = 0;
  for (const auto& [name, t] : st.tensors) file_bytes += t.bytes.size();
  const uint64_t need = uint64_t(c.stored_values()) * sizeof(float);
  const std::string problem = table_mismatch(st, c);
  if (need > file_bytes)
    throw Error(st.source + ": the config needs " + std::to_string(c.stored_values()) + " F32 values (" +
                std::to_string(need) + " bytes), the file's tensors hold " + std::to_string(file_bytes) + " bytes" +
                (problem.empty() ? "" : "; " + problem));
  if (!problem.empty()) throw Error(st.source + ": " + problem);
}

// __metadata__ `key` (data_mean or data_std): a JSON array of one number per channel, each
// finite as a float; a std must also be positive with a finite inverse (it divides the pixels).
std::vector<float> normalisation(const SafeTensors& st, const std::string& key, int64_t channels) {
  const std::string where = st.source + ": __metadata__ " + key;
  const Json j = Json::parse(st.metadata.at(key), where);
  if (!j.is_array() || j.size() != static_cast<size_t>(channels))
    throw Error(where + " must be a JSON array of " + std::to_string(channels) + " number(s), one per channel");
  std::vector<float> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string item = where + "[" + std::to_string(i) + "]";
    if (!j[i].is_number()) throw Error(item + " is " + Json::type_name(j[i].type()) + ", not a number");
    const double v = j[i].as_number();
    const float f = static_cast<float>(std::isfinite(v) && std::fabs(v) <= 3.4e38 ? v : NAN);
    const bool is_std = key == "data_std";
    if (!std::isfinite(f) || (is_std && !(f > 0 && std::isfinite(1.0f / f))))
      throw Error(item + " is " + j[i].dump() + "; it must be a finite " +
                  (is_std ? "number above 0 (it divides the pixels)" : "number"));
    out.push_back(f);
  }
  return out;
}

}  // namespace

Config AiT::read_config(const std::string& path) { return config_of(read_safetensors(path)); }

AiT AiT::load(const std::string& path, Kernels& dev) {
  SafeTensors st = read_safetensors(path);
  const Config cfg = config_of(st);
  check_tensor_table(st, cfg);
  const bool has_mean = st.metadata.count("data_mean") != 0, has_std = st.metadata.count("data_std") != 0;
  if (has_mean != has_std)
    throw Error(path + ": __metadata__ has " +
                (has_mean ? "data_mean without data_std" : "data_std without data_mean"));
  std::vector<float> means, stds;
  if (has_mean)
    means = normalisation(st, "data_mean", cfg.channels), stds = normalisation(st, "data_std", cfg.channels);
  AiT model(cfg, dev, 0);
  for (auto& [name, t] : model.params_) t.copy_from(st.get(name).f32());
  for (Tensor& g : model.memory_) g.copy_from(st.get(g.name()).f32());
  model.data_mean = std::move(means);
  model.data_std = std::move(stds);
  return model;
}

}  // namespace ait
