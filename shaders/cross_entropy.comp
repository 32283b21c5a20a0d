#version 450
// Cross entropy (fused log-softmax + NLL) and its backward. labels are int32.
// MODE (specialization constant 0, modes.h):
//   AIT_MODE_FORWARD, `lanes` threads per row (WG_SIZE / lanes rows per workgroup):
//     m = max(x), s = sum(ait_exp(x - m)),
//     lse = m + log(s),  loss[r] = lse - x[label],  probs = ait_exp(x - lse)
//     bindings 0 logits, 1 labels, 2 loss (out), 3 probs (out)
//     A label outside [0, classes) gives loss NaN (the op layer rejects such labels first).
//   AIT_MODE_BACKWARD, one element per thread:  dlogits = dloss[r] * (probs - onehot(label[r]))
//     bindings 0 probs, 1 labels, 2 dloss, 3 dlogits (out)
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = AIT_MODE_FORWARD;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint classes;
  uint lanes;
} pc;

layout(binding = 0) readonly buffer In0 { float in0[]; };
layout(binding = 1) readonly buffer Labels { int labels[]; };
layout(binding = 2) buffer B2 { float b2[]; };
layout(binding = 3) buffer Out { float outv[]; };

shared float red[WG_SIZE];
AIT_DEFINE_SEG_REDUCE(seg_sum, ait_add)
AIT_DEFINE_SEG_REDUCE(seg_max, max)

void main() {
  uint lid = gl_LocalInvocationID.x;
  if (MODE == AIT_MODE_FORWARD) {
    uint lanes = pc.lanes, lane = lid & (lanes - 1u);
    uint row = WG_ID.x * (WG_SIZE / lanes) + lid / lanes;
    bool in_range = row < pc.rows;
    uint classes = in_range ? pc.classes : 0u;
    uint base = row * pc.classes;
    float m = -1.0 / 0.0;
    for (uint c = lane; c < classes; c += lanes) m = max(m, in0[base + c]);
    m = seg_max(m, lanes);
    float s = 0.0;
    for (uint c = lane; c < classes; c += lanes) s += ait_exp(in0[base + c] - m);
    float lse = m + log(seg_sum(s, lanes));
    for (uint c = lane; c < classes; c += lanes) outv[base + c] = ait_exp(in0[base + c] - lse);
    if (in_range && lane == 0) {
      int label = labels[row];
      float picked = (label >= 0 && uint(label) < pc.classes) ? in0[base + uint(label)] : (0.0 / 0.0);
      b2[row] = lse - picked;
    }
  } else {  // AIT_MODE_BACKWARD
    uint i = WG_ID.x * WG_SIZE + lid;
    if (i >= pc.rows * pc.classes) return;
    uint r = i / pc.classes, c = i - r * pc.classes;
    float onehot = (labels[r] == int(c)) ? 1.0 : 0.0;
    outv[i] = b2[r] * (in0[i] - onehot);
  }
}
