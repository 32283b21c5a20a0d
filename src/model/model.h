// The Associative Transformer (AiT), as docs/spec.md defines it, and the architectures it is
// measured against (Config::arch): the class holds any of them. associative.cpp reads like the
// spec's section 2: patch embedding, optional question token, L layers of self-attention and
// Global Workspace Layer (bottleneck write, memory update, Hopfield read), flatten head;
// vit.cpp is the ViT baseline of §2.7.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "io/json.h"

namespace ait {

// Spec section 1: the architecture (`arch`) and what the Global Workspace Layer keeps between
// batches (`memory_mode`). Named values in JSON and --set; spec order.
enum class Arch { AiT, ViT, Coordination };
enum class MemoryMode { Ema, Reset, Learned };

// Spec section 1. Every key can be set by name (--set key=value, a JSON file, a checkpoint).
// validate() holds every key to a range (spec §1) so that the sizes below cannot overflow.
struct Config {
  static constexpr int64_t kMaxTokens = int64_t(1) << 16;        // T, tokens per image
  static constexpr int64_t kMaxStoredValues = int64_t(1) << 32;  // parameters + memory, all layers

  int64_t channels = 1, image_height = 28, image_width = 28, patch_size = 4, question_dim = 0;
  int64_t dim = 128, depth = 2, heads = 4, head_dim = 32, mlp_dim = 256, num_classes = 10;
  int64_t memory_slots = 16, memory_dim = 32, memory_heads = 4, bottleneck = 128;
  double hopfield_beta = 1.0, memory_momentum = 0.9, balance_coef = 0.01, write_dropout = 0.1;
  // Keys added after the first 19: written to JSON only when they differ from these defaults,
  // so the files of a default model are what they were before the keys existed.
  Arch arch = Arch::AiT;
  MemoryMode memory_mode = MemoryMode::Ema;
  bool self_attention = true, hopfield_read = true, topk_write = true;  // AiT ablation switches (0/1)
  int64_t workspace_mlp_layers = 4;  // Coordination: passes of the slot MLP's one map (spec §13.1)

  int64_t patch_tokens() const { return (image_height / patch_size) * (image_width / patch_size); }
  // Tokens the layers see: the patches, the question token (q > 0), and the class token that the
  // ViT and Coordination put in front (spec §2.7, §13.2: their T + 1).
  int64_t tokens() const { return patch_tokens() + (question_dim > 0 ? 1 : 0) + (arch == Arch::AiT ? 0 : 1); }
  int64_t patch_features() const { return patch_size * patch_size * channels; }

  Json to_json() const;
  // Keys absent from `j` keep their current value; an unknown key or bad value throws naming it.
  void update(const Json& j, const std::string& source);
  void set(const std::string& key, const std::string& value);  // one `key=value` override
  // Throws "<source>: key 'K' ..." naming the first key outside its range (or the limit hit).
  void validate(const std::string& source = "config") const;
  // Parameter and memory values a checkpoint of this config stores (saturates instead of
  // overflowing, so it can be called on an unchecked config).
  int64_t stored_values() const;
  static std::vector<std::string> keys();                           // every key, in spec order
  double value(const std::string& key) const;                       // a named value as its index in the key's list
  std::string value_text(const std::string& key) const;             // "vit", "0.9", ... as JSON would spell it
  std::vector<std::string> differences(const Config& other) const;  // keys whose values differ
  // This config with the keys a training dataset sets (C, H, W, q, K) taken from `data`.
  Config with_data_keys_of(const Config& data) const;
  // The preset that, given this config's data keys, is this config; "" when none is.
  std::string matching_preset() const;
  static Config preset(const std::string& name);  // tiny, coordination, small, medium, base
  static std::vector<std::string> preset_names();
};

// Every tensor a checkpoint of `c` holds, in spec §6 order (parameters, then the memory
// buffers), computed from the architecture's parameter table without allocating anything;
// `c` must be valid.
std::vector<std::pair<std::string, Shape>> checkpoint_tensors(const Config& c);
// Trainable values of `c` (what AiT::parameter_count() would say), nothing allocated; `c` valid.
int64_t parameter_count(const Config& c);

enum class MemoryEval { Frozen, Update };

struct ForwardResult {
  Tensor logits;                   // [B, C]
  Tensor ce, balance, loss;        // [] each; defined when labels were given
  std::vector<Tensor> new_memory;  // γ' per layer when the pass wrote memory
  // For pictures and inspection (no extra work: the pass computes them anyway):
  std::vector<Tensor> gates;         // per layer, the bottleneck gate A [H, M, B·T] (writing passes)
  std::vector<Tensor> read_weights;  // per layer, the Hopfield read softmax [B, T, M]
};

class AiT {
public:
  AiT(const Config& cfg, Kernels& dev, uint64_t seed);  // spec section 5 initialisation

  // images [B, C, H, W] (already normalised), questions [B, q] when q > 0, labels int32 [B]
  // (optional). `write` runs the bottleneck write and the memory update (training, and eval
  // under memory_eval=update); `dropout_seed` drives write dropout when `training`.
  ForwardResult forward(const Tensor& images, const Tensor& questions, const Tensor& labels, bool write, bool training,
                        uint32_t dropout_seed) const;
  void commit_memory(const ForwardResult& r);  // γ ← γ' for every layer (in place, as a buffer update)

  const Config& config() const { return cfg_; }
  Kernels& device() const { return *dev_; }
  // Parameters in spec order with spec names; memory buffers apart (no gradient).
  std::vector<std::pair<std::string, Tensor>>& params() { return params_; }
  const std::vector<std::pair<std::string, Tensor>>& params() const { return params_; }
  std::vector<Tensor>& memory() { return memory_; }  // buffers γ per layer (none for arch=vit, memory_mode=learned)
  const std::vector<Tensor>& memory() const { return memory_; }
  const Tensor& param(const std::string& name) const;
  int64_t parameter_count() const;
  // Names of the parameters that never receive a gradient (their output only reaches memory).
  static bool receives_no_gradient(const std::string& name);

  // Checkpoint I/O (spec section 6), atomic write; load checks every tensor's name and shape.
  void save(const std::string& path) const;
  static AiT load(const std::string& path, Kernels& dev);
  static Config read_config(const std::string& path);

  // Per-channel input normalisation of the training data (metadata "data_mean"/"data_std"),
  // so that eval and predict normalise new data exactly as training did. Empty: use the data's.
  std::vector<float> data_mean, data_std;

private:
  Tensor add_param(const std::string& name, const Shape& shape);
  Config cfg_;
  Kernels* dev_;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::map<std::string, size_t> index_;
  std::vector<Tensor> memory_;
};

}  // namespace ait
