// arch=coordination: the shared-workspace Transformer of Goyal et al. (2022), docs/spec.md §13.
// One layer, applied `depth` times with the same parameters: its tokens compete (top-k) to
// write into M workspace slots per image, the slots are updated by attention, an MLP and
// LSTM-like gates, and the new slots are broadcast back to every token. The workspace starts
// afresh in every pass, so nothing is stored besides the parameters.
#include <cmath>

#include "core/ops.h"
#include "core/rng.h"
#include "model/arch.h"

namespace ait {

namespace {

const std::string kWorkspace = "layer.workspace.";

// relu, sigmoid and tanh composed from the op table, so they run on every backend.
// 1 where x > 0, else 0, without gradient: a count of positive entries over an axis of length 1.
Tensor positive_mask(const Tensor& x) { return reshape(count_positive(reshape(x, {1, x.numel()}), 0), x.shape()); }
Tensor relu(const Tensor& x) { return mul(x, positive_mask(x)); }
// σ(x) = e^x / (e^x + e^0): the first entry of a two-way softmax against 0.
Tensor sigmoid(const Tensor& x) {
  Tensor column = reshape(x, {x.numel(), 1});
  Tensor pair = softmax(concat({column, Tensor::zeros({x.numel(), 1}, &x.dev())}, 1));
  return reshape(slice(pair, 1, 0, 1), x.shape());
}
Tensor tanh_of(const Tensor& x) {
  return add(scale(sigmoid(scale(x, 2.0f)), 2.0f), Tensor::full({1}, -1.0f, &x.dev()));
}

// [B, N, h·w] -> [B·h, N, w] (head-major features) and back.
Tensor split_heads(const Tensor& x, int64_t h) {
  const int64_t B = x.dim(0), N = x.dim(1), w = x.dim(2) / h;
  return reshape(permute(reshape(x, {B, N, h, w}), {0, 2, 1, 3}), {B * h, N, w});
}
Tensor merge_heads(const Tensor& x, int64_t B) {
  const int64_t h = x.dim(0) / B, N = x.dim(1), w = x.dim(2);
  return reshape(permute(reshape(x, {B, h, N, w}), {0, 2, 1, 3}), {B, N, h * w});
}

// The workspace attention, §13.2 steps 2 and 6: heads of softmax(Q·Kᵀ)·V with queries from
// `queries` [B, R, D] and keys and values from `keys` [B, N, D] (no 1/√m scale). With `topk`,
// each row keeps its k' largest weights and zeroes the rest, without renormalising. The weights,
// [B, h, R, N] and detached, are appended to `weights` (ForwardResult's gates and read weights).
Tensor workspace_attention(const AiT& m, const Tensor& queries, const Tensor& keys, bool topk,
                           std::vector<Tensor>& weights) {
  const Config& c = m.config();
  const int64_t B = queries.dim(0), h = c.heads;
  Tensor Q = split_heads(dense(m, queries, kWorkspace + "q"), h);
  Tensor K = split_heads(dense(m, keys, kWorkspace + "k", false), h);
  Tensor V = split_heads(dense(m, keys, kWorkspace + "v"), h);
  Tensor S = matmul(Q, K, false, true);  // [B·h, R, N]
  Tensor P = softmax(S);
  if (topk) P = mul(P, positive_mask(topk_gate(S.detach(), c.bottleneck)));  // the kept entries are > 0
  weights.push_back(reshape(P.detach(), {B, h, queries.dim(1), keys.dim(1)}));
  return merge_heads(matmul(P, V), B);
}

// The input and forget gates (§13.2 step 4) from the projected tokens Xp [B, T, D] and the
// slots Γ [B, M, D] before this step; each [B, M, D].
std::pair<Tensor, Tensor> gates(const AiT& m, const Tensor& Xp, const Tensor& slots) {
  const int64_t B = Xp.dim(0), D = Xp.dim(2);
  Tensor pooled = mean(relu(mul(Xp, m.param(kWorkspace + "gate_input.scale"))), 1);              // [B, D]
  Tensor from_input = reshape(dense(m, pooled, kWorkspace + "gate_input.proj"), {B, 1, 2 * D});  // [B, 1, 2D]
  // A separate linear map per slot: [M, B, D]·W[s]ᵀ, batched over the slots.
  Tensor per_slot = matmul(permute(tanh_of(slots), {1, 0, 2}), m.param(kWorkspace + "gate_memory.weight"), false, true);
  Tensor from_slots = add(permute(per_slot, {1, 0, 2}), m.param(kWorkspace + "gate_memory.bias"));  // [B, M, 2D]
  Tensor g = add(from_slots, from_input);
  Tensor input_gate = sigmoid(add(slice(g, 2, 0, D), m.param(kWorkspace + "input_gate_bias")));
  Tensor forget_gate = sigmoid(add(slice(g, 2, D, D), m.param(kWorkspace + "forget_gate_bias")));
  return {input_gate, forget_gate};
}

// One step of the workspace (§13.2 steps 1-6) on the normalised tokens A [B, T, D]: updates
// `slots` and returns what is broadcast back to the tokens, [B, T, D]; records the write and read
// weights in r.gates and r.read_weights.
Tensor workspace_step(const AiT& m, const Tensor& A, Tensor& slots, ForwardResult& r) {
  const Config& c = m.config();
  Tensor Xp = dense(m, A, kWorkspace + "input");
  Tensor written =
      layer_norm(m, add(slots, workspace_attention(m, slots, Xp, true, r.gates)), kWorkspace + "write_norm");
  Tensor mlp = written;
  for (int64_t r = 0; r < c.workspace_mlp_layers; ++r) mlp = relu(dense(m, mlp, kWorkspace + "mlp"));
  Tensor candidate = layer_norm(m, add(written, mlp), kWorkspace + "mlp_norm");
  auto [input_gate, forget_gate] = gates(m, Xp, slots);
  slots = add(mul(input_gate, tanh_of(candidate)), mul(forget_gate, slots));
  return workspace_attention(m, Xp, slots, false, r.read_weights);
}

// σ(1)·PE [T, D] (§13.2 step 1): sin for even columns, cos for odd ones, of t·10000^(−2i/D).
Tensor position_table(int64_t T, int64_t D, Kernels& dev) {
  std::vector<float> v(static_cast<size_t>(T * D));
  const double gain = 1.0 / (1.0 + std::exp(-1.0));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < D; ++i) {
      const double angle = double(t) * std::pow(10000.0, -2.0 * double(i) / double(D));
      v[size_t(t * D + i)] = static_cast<float>(gain * (i % 2 == 0 ? std::sin(angle) : std::cos(angle)));
    }
  return Tensor::from({T, D}, v, &dev);
}

// The workspace every pass starts from: per image the identity [M, D], cut or zero-padded.
Tensor initial_slots(int64_t B, int64_t M, int64_t D, Kernels& dev) {
  std::vector<float> v(static_cast<size_t>(B * M * D), 0.0f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < std::min(M, D); ++s) v[size_t((b * M + s) * D + s)] = 1.0f;
  return Tensor::from({B, M, D}, v, &dev);
}

}  // namespace

TensorTable coordination_tensors(const Config& c) {
  TensorTable t;
  const int64_t D = c.dim, qk = c.heads * c.memory_dim, M = c.memory_slots;
  add_embedding(t, c);
  t.push_back({"cls_token", {D}, Init::Normal});
  add_norm(t, "layer.attn_norm", D);
  add_linear(t, kWorkspace + "input", D, D, true);
  add_linear(t, kWorkspace + "q", qk, D, true);
  add_linear(t, kWorkspace + "k", qk, D, false);
  add_linear(t, kWorkspace + "v", D, D, true);
  add_norm(t, kWorkspace + "write_norm", D);
  add_linear(t, kWorkspace + "mlp", D, D, true);
  add_norm(t, kWorkspace + "mlp_norm", D);
  t.push_back({kWorkspace + "gate_input.scale", {D}, Init::Normal});
  add_linear(t, kWorkspace + "gate_input.proj", 2 * D, D, true);
  // Their per-slot maps start at U(±1/√fan_out): the bound 1/√(2D).
  t.push_back({kWorkspace + "gate_memory.weight", {M, 2 * D, D}, Init::Uniform, 2 * D});
  t.push_back({kWorkspace + "gate_memory.bias", {M, 2 * D}, Init::Uniform, 2 * D});
  t.push_back({kWorkspace + "input_gate_bias", {1}, Init::Zeros});
  t.push_back({kWorkspace + "forget_gate_bias", {1}, Init::Ones});
  add_norm(t, "layer.ffn_norm", D);
  add_linear(t, "layer.fc1", c.mlp_dim, D, true);
  add_linear(t, "layer.fc2", D, c.mlp_dim, true);
  add_linear(t, "head.proj", c.num_classes, D, true);
  return t;
}

Tensor coordination_forward(const AiT& m, Tensor X, const Pass& pass, ForwardResult& r, Tensor&) {
  const Config& c = m.config();
  Kernels& dev = X.dev();
  const int64_t B = X.dim(0), D = c.dim;
  Tensor cls = add(reshape(m.param("cls_token"), {1, 1, D}), Tensor::zeros({B, 1, D}, &dev));
  X = concat({cls, X}, 1);
  X = add(X, position_table(X.dim(1), D, dev));
  Tensor slots = initial_slots(B, c.memory_slots, D, dev);
  const float rho = static_cast<float>(c.write_dropout);
  auto drop = [&](const Tensor& x, int64_t step, uint32_t branch) {
    if (!pass.training || rho <= 0) return x;
    return dropout(x, rho, hash32(pass.dropout_seed + 2 * static_cast<uint32_t>(step) + branch));
  };
  for (int64_t l = 0; l < c.depth; ++l) {
    X = add(X, drop(workspace_step(m, layer_norm(m, X, "layer.attn_norm"), slots, r), l, 0));
    Tensor h = relu(dense(m, layer_norm(m, X, "layer.ffn_norm"), "layer.fc1"));
    X = add(X, drop(dense(m, h, "layer.fc2"), l, 1));
  }
  return dense(m, reshape(slice(X, 1, 0, 1), {B, D}), "head.proj");  // the class token
}

}  // namespace ait
