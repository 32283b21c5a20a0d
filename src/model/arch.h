// What each architecture (Config::arch) provides to the model: its parameter table (spec §5
// initialisation and §6 checkpoint layout, one source for both) and its forward pass from the
// embedded tokens to the logits. The shared building blocks (LayerNorm and linear maps by
// parameter name, multi-head self-attention, the patch and question embedding) live here too.
#pragma once
#include <string>
#include <vector>

#include "model/model.h"

namespace ait {

// How a tensor of the table starts (spec §5). Entries are drawn from the seeded generator in
// table order: a linear weight then its bias, each U(−1/√fan_in, 1/√fan_in); Normal is N(0, 1).
enum class Init { Ones, Zeros, Uniform, Normal };

struct TensorEntry {
  std::string name;
  Shape shape;
  Init init;
  int64_t fan_in = 0;   // Uniform: the bound is 1/√fan_in
  bool buffer = false;  // memory γ: saved, no gradient, after all parameters in the checkpoint
};
using TensorTable = std::vector<TensorEntry>;

// Table builders: a linear map [out, in] (+ bias [out]) and a LayerNorm (weight 1, bias 0).
void add_linear(TensorTable& t, const std::string& prefix, int64_t out, int64_t in, bool bias);
void add_norm(TensorTable& t, const std::string& prefix, int64_t n);
// patch_embed.* and (q > 0) question_embed.*: the embedding every architecture starts with.
void add_embedding(TensorTable& t, const Config& c);
std::string layer_name(int64_t i, const std::string& rest);  // "layers.<i>.<rest>"

// The whole table of `c` in initialisation order (dispatches on c.arch). Every architecture's
// table must hold Config's ranges to sizes that fit int64 and grow affinely with depth
// (Config::stored_values() extrapolates from depths 1 and 2).
TensorTable tensor_table(const Config& c);
TensorTable ait_tensors(const Config& c);
TensorTable vit_tensors(const Config& c);
TensorTable coordination_tensors(const Config& c);  // src/model/coordination.cpp

// One pass's switches, as AiT::forward received them.
struct Pass {
  bool write = false;     // bottleneck write and memory update (training; eval with memory_eval=update)
  bool training = false;  // write dropout on
  uint32_t dropout_seed = 0;
};

// Forward passes from the embedded tokens X [B, T, D] (§2.1-2.3) to the logits [B, K]. They
// fill r.new_memory / r.gates / r.read_weights as they apply and return the unscaled auxiliary
// loss in `aux` (undefined when the architecture has none); AiT::forward scales it by λ.
Tensor ait_forward(const AiT& m, Tensor X, const Pass& pass, ForwardResult& r, Tensor& aux);
Tensor vit_forward(const AiT& m, Tensor X, const Pass& pass, ForwardResult& r, Tensor& aux);
Tensor coordination_forward(const AiT& m, Tensor X, const Pass& pass, ForwardResult& r, Tensor& aux);

// Shared blocks, reading the model's parameters by name.
Tensor layer_norm(const AiT& m, const Tensor& x, const std::string& prefix, float eps = 1e-5f);
Tensor dense(const AiT& m, const Tensor& x, const std::string& prefix, bool bias = true);
// Multi-head self-attention of already normalised tokens: `prefix`.qkv (no bias, head-major
// q|k|v), softmax(q·kᵀ/√e)·v, heads concatenated, `prefix`.out. Returns [B, T, D] (no residual).
Tensor multi_head_attention(const AiT& m, const Tensor& x, const std::string& prefix, int64_t heads, int64_t head_dim);
// Patches, patch embedding and the question token (§2.1-2.3): [B, T, D].
Tensor embed_tokens(const AiT& m, const Tensor& images, const Tensor& questions);

}  // namespace ait
