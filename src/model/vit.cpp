// arch=vit: the Vision Transformer baseline of docs/spec.md §2.7 (the authors' vit_org.py):
// the shared patch embedding and question token, a class token and a learned position
// embedding, L pre-norm blocks of self-attention and a GELU feed-forward, class-token head.
#include "core/ops.h"
#include "model/arch.h"

namespace ait {

TensorTable vit_tensors(const Config& c) {
  TensorTable t;
  const int64_t D = c.dim, inner = c.heads * c.head_dim;
  add_embedding(t, c);
  t.push_back({"pos_embedding", {1, c.tokens(), D}, Init::Normal});  // class token included
  t.push_back({"cls_token", {1, 1, D}, Init::Normal});
  for (int64_t i = 0; i < c.depth; ++i) {
    auto L = [&](const std::string& rest) { return layer_name(i, rest); };
    add_norm(t, L("attn_norm"), D);
    add_linear(t, L("attn.qkv"), 3 * inner, D, false);
    add_linear(t, L("attn.out"), D, inner, true);
    add_norm(t, L("ffn_norm"), D);
    add_linear(t, L("ffn.fc1"), c.mlp_dim, D, true);
    add_linear(t, L("ffn.fc2"), D, c.mlp_dim, true);
  }
  add_norm(t, "head.norm", D);
  add_linear(t, "head.proj", c.num_classes, D, true);
  return t;
}

Tensor vit_forward(const AiT& m, Tensor X, const Pass&, ForwardResult&, Tensor&) {
  const Config& c = m.config();
  const int64_t B = X.dim(0), D = c.dim;
  // The class token first (broadcast over the batch), then the position embedding over all T+1.
  Tensor cls = add(m.param("cls_token"), Tensor::zeros({B, 1, D}, &X.dev()));
  X = add(concat({cls, X}, 1), m.param("pos_embedding"));
  for (int64_t i = 0; i < c.depth; ++i) {
    X = add(X, multi_head_attention(m, layer_norm(m, X, layer_name(i, "attn_norm")), layer_name(i, "attn"), c.heads,
                                    c.head_dim));
    Tensor h = gelu(dense(m, layer_norm(m, X, layer_name(i, "ffn_norm")), layer_name(i, "ffn.fc1")));
    X = add(X, dense(m, h, layer_name(i, "ffn.fc2")));
  }
  Tensor pooled = reshape(slice(X, 1, 0, 1), {B, D});  // the class token
  return dense(m, layer_norm(m, pooled, "head.norm"), "head.proj");
}

}  // namespace ait
