// arch=ait: the Associative Transformer, step by step as in docs/spec.md section 2 and 3, with
// the ablation switches of §1 (self_attention, hopfield_read, topk_write, memory_mode).
#include <cmath>

#include "core/ops.h"
#include "core/rng.h"
#include "model/arch.h"

namespace ait {

TensorTable ait_tensors(const Config& c) {
  TensorTable t;
  const int64_t D = c.dim, inner = c.heads * c.head_dim, wm = c.memory_heads * c.memory_dim, m = c.memory_dim;
  add_embedding(t, c);
  for (int64_t i = 0; i < c.depth; ++i) {
    auto L = [&](const std::string& rest) { return layer_name(i, rest); };
    add_norm(t, L("attn_norm"), D);  // kept without self-attention: the block is then X + LN(X)
    if (c.self_attention) {
      add_linear(t, L("attn.qkv"), 3 * inner, D, false);
      add_linear(t, L("attn.out"), D, inner, true);
    }
    add_norm(t, L("gwl_norm"), D);
    add_linear(t, L("gwl.fc1"), c.mlp_dim, D, true);
    add_linear(t, L("gwl.fc2"), D, c.mlp_dim, true);
    add_norm(t, L("gwl.ffn_norm"), D);
    if (c.memory_mode != MemoryMode::Learned) {
      add_linear(t, L("gwl.write.q"), wm, m, false);
      add_linear(t, L("gwl.write.k"), wm, D, false);
      add_linear(t, L("gwl.write.v"), wm, D, false);
      add_linear(t, L("gwl.write.out"), m, wm, false);
      add_norm(t, L("gwl.write.norm"), m);
    }
    if (c.hopfield_read) add_linear(t, L("gwl.read"), D, m, true);
    // γ ~ N(0, 1), normalised only by its first update; a parameter when learned.
    t.push_back({L("gwl.memory"), {c.memory_slots, m}, Init::Normal, 0, c.memory_mode != MemoryMode::Learned});
  }
  add_norm(t, "head.norm", c.tokens() * D);
  add_linear(t, "head.proj", c.num_classes, c.tokens() * D, true);
  return t;
}

namespace {

// CV²(x) = var(x) / (mean(x)² + 1e-10) over the last axis, unbiased variance, 0 for one entry.
Tensor cv_squared(const Tensor& x) {
  Tensor mu = mean(x, -1);
  return div(variance(x, -1), add(mul(mu, mu), Tensor::full({1}, 1e-10f, &x.dev())));
}

// The bottleneck write of layer i: memory rows attend to their top-k of the batch's squashed
// tokens Ξ [B·T, D] per head (every token with topk_write=0). Returns the updated memory γ'
// (EMA, then unit rows; reached only through stopgrad) and adds the layer's balance term (CV²
// of each token's total gate and of how many rows picked it) to `balance`.
Tensor bottleneck_write(const AiT& m, const Tensor& Xi, const Tensor& gamma, int64_t i, const Pass& pass,
                        Tensor& balance, std::vector<Tensor>& gates) {
  const Config& c = m.config();
  const int64_t BT = Xi.dim(0), H = c.memory_heads, md = c.memory_dim, M = c.memory_slots;
  Tensor Q =
      permute(reshape(dense(m, gamma, layer_name(i, "gwl.write.q"), false), {M, H, md}), {1, 0, 2});       // [H, M, m]
  Tensor K = permute(reshape(dense(m, Xi, layer_name(i, "gwl.write.k"), false), {BT, H, md}), {1, 0, 2});  // [H, BT, m]
  const int64_t k = c.topk_write ? c.bottleneck : BT;
  Tensor A = topk_gate(matmul(Q, K, false, true), k, 1.0f / std::sqrt(static_cast<float>(md)));
  gates.push_back(A.detach());  // [H, M, BT]
  Tensor layer_balance = add(sum_all(cv_squared(sum(A, 1))), sum_all(cv_squared(count_positive(A, 1))));
  balance = balance.defined() ? add(balance, layer_balance) : layer_balance;
  // G reaches the memory only through stopgrad: no graph needed for V, O, W_out, LN_write.
  NoGradScope stopgrad;
  Tensor V = permute(reshape(dense(m, Xi, layer_name(i, "gwl.write.v"), false), {BT, H, md}), {1, 0, 2});  // [H, BT, m]
  Tensor O = reshape(permute(matmul(A.detach(), V), {1, 0, 2}), {M, H * md});  // heads concatenated
  Tensor out = dense(m, O, layer_name(i, "gwl.write.out"), false);
  if (pass.training && c.write_dropout > 0)
    out = dropout(out, static_cast<float>(c.write_dropout), hash32(pass.dropout_seed + static_cast<uint32_t>(i)));
  Tensor G = layer_norm(m, add(out, gamma), layer_name(i, "gwl.write.norm"), 1e-6f);
  const float mu = static_cast<float>(c.memory_momentum);
  return l2_normalize(axpby(mu, gamma, 1.0f - mu, G));
}

}  // namespace

Tensor ait_forward(const AiT& m, Tensor X, const Pass& pass, ForwardResult& r, Tensor& balance) {
  const Config& c = m.config();
  const int64_t B = X.dim(0), D = c.dim, T = c.tokens();
  const bool learned = c.memory_mode == MemoryMode::Learned;
  for (int64_t i = 0; i < c.depth; ++i) {
    Tensor Xn = layer_norm(m, X, layer_name(i, "attn_norm"));
    X = add(X, c.self_attention ? multi_head_attention(m, Xn, layer_name(i, "attn"), c.heads, c.head_dim) : Xn);
    // Global Workspace Layer: FFN, then squash all tokens of the batch into one set Ξ.
    Tensor Z = layer_norm(m, X, layer_name(i, "gwl_norm"));
    Tensor U = layer_norm(m, dense(m, gelu(dense(m, Z, layer_name(i, "gwl.fc1"))), layer_name(i, "gwl.fc2")),
                          layer_name(i, "gwl.ffn_norm"));
    Tensor gamma_read = learned ? m.param(layer_name(i, "gwl.memory")) : m.memory()[size_t(i)];
    if (pass.write && !learned) {
      gamma_read = bottleneck_write(m, reshape(U, {B * T, D}), gamma_read, i, pass, balance, r.gates);
      r.new_memory.push_back(gamma_read);
    }
    X = add(X, U);
    if (!c.hopfield_read) continue;
    // Hopfield read: one update step against the memory read in this pass.
    Tensor Y = dense(m, gamma_read, layer_name(i, "gwl.read"));                             // [M, D]
    Tensor read = softmax(matmul(U, Y, false, true), static_cast<float>(c.hopfield_beta));  // [B, T, M]
    r.read_weights.push_back(read.detach());
    X = add(X, matmul(read, Y));
  }
  // 5. Head: flatten every token, LayerNorm, project.
  return dense(m, layer_norm(m, reshape(X, {B, T * D}), "head.norm"), "head.proj");
}

}  // namespace ait
