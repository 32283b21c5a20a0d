#version 450
// Row softmax and its backward, one workgroup per row (256 threads striding over the columns).
// MODE (specialization constant 0):
//   0 forward:  y = softmax(scale * x):  m = max(scale*x), e = ait_exp(scale*x - m), y = e / sum(e)
//               bindings 0 x, 1 (unused), 2 y
//   1 backward: dx = scale * y * (dy - sum(y * dy))
//               bindings 0 y, 1 dy, 2 dx
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = 0;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
  float scale;
} pc;

layout(binding = 0) readonly buffer In0 { float in0[]; };
layout(binding = 1) readonly buffer In1 { float in1[]; };
layout(binding = 2) buffer Out { float outv[]; };

shared float red[WG_SIZE];
AIT_DEFINE_TREE_REDUCE(tree_sum, ait_add)
AIT_DEFINE_TREE_REDUCE(tree_max, max)

void main() {
  uint row = WG_ID.x, lid = gl_LocalInvocationID.x;
  if (row >= pc.rows) return;
  uint base = row * pc.cols;
  if (MODE == 0) {
    float m = -1.0 / 0.0;
    for (uint c = lid; c < pc.cols; c += WG_SIZE) m = max(m, pc.scale * in0[base + c]);
    m = tree_max(m);
    float s = 0.0;
    for (uint c = lid; c < pc.cols; c += WG_SIZE) {
      float e = ait_exp(pc.scale * in0[base + c] - m);
      outv[base + c] = e;
      s += e;
    }
    s = tree_sum(s);
    float inv = 1.0 / s;
    for (uint c = lid; c < pc.cols; c += WG_SIZE) outv[base + c] = outv[base + c] * inv;
  } else {
    float d = 0.0;
    for (uint c = lid; c < pc.cols; c += WG_SIZE) d += in0[base + c] * in1[base + c];
    d = tree_sum(d);
    for (uint c = lid; c < pc.cols; c += WG_SIZE)
      outv[base + c] = pc.scale * in0[base + c] * (in1[base + c] - d);
  }
}
