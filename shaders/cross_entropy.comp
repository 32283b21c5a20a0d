#version 450
// Cross entropy (fused log-softmax + NLL) and its backward. labels are int32.
// MODE (specialization constant 0):
//   0 forward, one workgroup per row:  m = max(x), s = sum(ait_exp(x - m)),
//     lse = m + log(s),  loss[r] = lse - x[label],  probs = ait_exp(x - lse)
//     bindings 0 logits, 1 labels, 2 loss (out), 3 probs (out)
//     A label outside [0, classes) gives loss NaN (the op layer rejects such labels first).
//   1 backward, one element per thread:  dlogits = dloss[r] * (probs - onehot(label[r]))
//     bindings 0 probs, 1 labels, 2 dloss, 3 dlogits (out)
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = 0;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint classes;
} pc;

layout(binding = 0) readonly buffer In0 { float in0[]; };
layout(binding = 1) readonly buffer Labels { int labels[]; };
layout(binding = 2) buffer B2 { float b2[]; };
layout(binding = 3) buffer Out { float outv[]; };

shared float red[WG_SIZE];
AIT_DEFINE_TREE_REDUCE(tree_sum, ait_add)
AIT_DEFINE_TREE_REDUCE(tree_max, max)

void main() {
  uint lid = gl_LocalInvocationID.x;
  if (MODE == 0) {
    uint row = WG_ID.x;
    if (row >= pc.rows) return;
    uint base = row * pc.classes;
    float m = -1.0 / 0.0;
    for (uint c = lid; c < pc.classes; c += WG_SIZE) m = max(m, in0[base + c]);
    m = tree_max(m);
    float s = 0.0;
    for (uint c = lid; c < pc.classes; c += WG_SIZE) s += ait_exp(in0[base + c] - m);
    float lse = m + log(tree_sum(s));
    for (uint c = lid; c < pc.classes; c += WG_SIZE) outv[base + c] = ait_exp(in0[base + c] - lse);
    if (lid == 0) {
      int label = labels[row];
      float picked = (label >= 0 && uint(label) < pc.classes) ? in0[base + uint(label)] : (0.0 / 0.0);
      b2[row] = lse - picked;
    }
  } else {
    uint i = WG_ID.x * WG_SIZE + lid;
    if (i >= pc.rows * pc.classes) return;
    uint r = i / pc.classes, c = i - r * pc.classes;
    float onehot = (labels[r] == int(c)) ? 1.0 : 0.0;
    outv[i] = b2[r] * (in0[i] - onehot);
  }
}
