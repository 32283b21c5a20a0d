// The model: its tensors from the architecture's table (spec §5, §6), the blocks every
// architecture shares (embedding, LayerNorm, linear maps, self-attention), the forward dispatch
// and the loss (spec §2, §3), and the checkpoint file (spec §6).
#include "model/model.h"

#include <cmath>

#include "core/ops.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/arch.h"

namespace ait {

// ------------------------------------------------------------------ tensor tables (spec §5, §6)

void add_linear(TensorTable& t, const std::string& prefix, int64_t out, int64_t in, bool bias) {
  t.push_back({prefix + ".weight", {out, in}, Init::Uniform, in});
  if (bias) t.push_back({prefix + ".bias", {out}, Init::Uniform, in});
}

void add_norm(TensorTable& t, const std::string& prefix, int64_t n) {
  t.push_back({prefix + ".weight", {n}, Init::Ones});
  t.push_back({prefix + ".bias", {n}, Init::Zeros});
}

void add_embedding(TensorTable& t, const Config& c) {
  add_norm(t, "patch_embed.norm_in", c.patch_features());
  add_linear(t, "patch_embed.proj", c.dim, c.patch_features(), true);
  add_norm(t, "patch_embed.norm_out", c.dim);
  if (c.question_dim > 0) {
    add_norm(t, "question_embed.norm_in", c.question_dim);
    add_linear(t, "question_embed.proj", c.dim, c.question_dim, true);
    add_norm(t, "question_embed.norm_out", c.dim);
  }
}

std::string layer_name(int64_t i, const std::string& rest) { return "layers." + std::to_string(i) + "." + rest; }

TensorTable tensor_table(const Config& c) {
  switch (c.arch) {
    case Arch::ViT: return vit_tensors(c);
    case Arch::Coordination: return coordination_tensors(c);
    default: return ait_tensors(c);
  }
}

std::vector<std::pair<std::string, Shape>> checkpoint_tensors(const Config& c) {
  std::vector<std::pair<std::string, Shape>> params, buffers;
  for (const TensorEntry& e : tensor_table(c)) (e.buffer ? buffers : params).push_back({e.name, e.shape});
  params.insert(params.end(), buffers.begin(), buffers.end());
  return params;
}

int64_t parameter_count(const Config& c) {
  int64_t n = 0;
  for (const TensorEntry& e : tensor_table(c))
    if (!e.buffer) n += numel(e.shape);
  return n;
}

// ------------------------------------------------------------------ shared blocks (spec §2)

Tensor layer_norm(const AiT& m, const Tensor& x, const std::string& prefix, float eps) {
  return layernorm(x, m.param(prefix + ".weight"), m.param(prefix + ".bias"), eps);
}

Tensor dense(const AiT& m, const Tensor& x, const std::string& prefix, bool bias) {
  return linear(x, m.param(prefix + ".weight"), bias ? m.param(prefix + ".bias") : Tensor());
}

Tensor multi_head_attention(const AiT& m, const Tensor& x, const std::string& prefix, int64_t h, int64_t e) {
  const int64_t B = x.dim(0), T = x.dim(1);
  Tensor qkv = dense(m, x, prefix + ".qkv", false);
  qkv = reshape(permute(reshape(qkv, {B, T, 3, h, e}), {2, 0, 3, 1, 4}), {3, B * h, T, e});
  auto part = [&](int64_t j) { return reshape(slice(qkv, 0, j, 1), {B * h, T, e}); };
  Tensor att = softmax(matmul(part(0), part(1), false, true), 1.0f / std::sqrt(static_cast<float>(e)));
  Tensor heads_out = reshape(permute(reshape(matmul(att, part(2)), {B, h, T, e}), {0, 2, 1, 3}), {B, T, h * e});
  return dense(m, heads_out, prefix + ".out");
}

// Steps 1-3: patches [B, C, H, W] -> [B, T0, p·p·C] (features ordered row, column, channel),
// the patch embedding, and the question token prepended when the model has one.
Tensor embed_tokens(const AiT& m, const Tensor& images, const Tensor& questions) {
  const Config& c = m.config();
  const int64_t B = images.dim(0), p = c.patch_size, Hp = c.image_height / p, Wp = c.image_width / p;
  Tensor patches = reshape(images, {B, c.channels, Hp, p, Wp, p});
  patches = reshape(permute(patches, {0, 2, 4, 3, 5, 1}), {B, Hp * Wp, c.patch_features()});
  Tensor X = layer_norm(m, dense(m, layer_norm(m, patches, "patch_embed.norm_in"), "patch_embed.proj"),
                        "patch_embed.norm_out");
  if (c.question_dim == 0) return X;
  if (!questions.defined() || questions.shape() != Shape{B, c.question_dim})
    throw Error("model input 'questions' must be [" + std::to_string(B) + ", " + std::to_string(c.question_dim) + "]" +
                (questions.defined() ? ", got " + shape_str(questions.shape()) : ", got none"));
  Tensor q = layer_norm(m, dense(m, layer_norm(m, questions, "question_embed.norm_in"), "question_embed.proj"),
                        "question_embed.norm_out");
  return concat({reshape(q, {B, 1, c.dim}), X}, 1);
}

// ------------------------------------------------------------------ the model

Tensor AiT::add_param(const std::string& name, const Shape& shape) {
  Tensor t = Tensor::zeros(shape, dev_);
  t.set_name(name).set_requires_grad(true);
  index_[name] = params_.size();
  params_.push_back({name, t});
  return t;
}

AiT::AiT(const Config& cfg, Kernels& dev, uint64_t seed) : cfg_(cfg), dev_(&dev) {
  cfg_.validate();
  Rng rng(seed);
  for (const TensorEntry& e : tensor_table(cfg_)) {
    std::vector<float> v(static_cast<size_t>(numel(e.shape)), e.init == Init::Ones ? 1.0f : 0.0f);
    const float bound = e.init == Init::Uniform ? 1.0f / std::sqrt(static_cast<float>(e.fan_in)) : 0.0f;
    if (e.init == Init::Uniform)  // PyTorch's nn.Linear default
      for (float& x : v) x = rng.uniform(-bound, bound);
    if (e.init == Init::Normal)
      for (float& x : v) x = rng.normal();
    if (e.buffer) memory_.push_back(Tensor::from(e.shape, v, dev_).set_name(e.name));
    else add_param(e.name, e.shape).copy_from(v);
  }
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
  if (cfg_.memory_mode == MemoryMode::Reset) return;  // every pass writes from the initial γ (spec §2)
  // Written into the memory's own storage, as a module updates its buffers in place: the memory
  // stays one tensor for the model's life.
  for (size_t i = 0; i < memory_.size(); ++i) memory_[i].assign(r.new_memory[i]);
}

ForwardResult AiT::forward(const Tensor& images, const Tensor& questions, const Tensor& labels, bool write,
                           bool training, uint32_t dropout_seed) const {
  const Config& c = cfg_;
  Shape want{images.rank() == 4 ? images.dim(0) : -1, c.channels, c.image_height, c.image_width};
  if (images.rank() != 4 || images.shape() != want)
    throw Error("model input 'images' has shape " + shape_str(images.shape()) + ", expected [B, " +
                std::to_string(c.channels) + ", " + std::to_string(c.image_height) + ", " +
                std::to_string(c.image_width) + "]");
  Tensor X = embed_tokens(*this, images, questions);
  ForwardResult r;
  Tensor aux;
  const Pass pass{write, training, dropout_seed};
  switch (c.arch) {
    case Arch::ViT: r.logits = vit_forward(*this, X, pass, r, aux); break;
    case Arch::Coordination: r.logits = coordination_forward(*this, X, pass, r, aux); break;
    default: r.logits = ait_forward(*this, X, pass, r, aux);
  }
  if (labels.defined()) {
    r.ce = cross_entropy(r.logits, labels);
    r.balance = aux.defined() ? scale(aux, static_cast<float>(c.balance_coef)) : Tensor::zeros({}, dev_);
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
