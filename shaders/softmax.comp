#version 450
// Row softmax and its backward; `lanes` threads per row, WG_SIZE / lanes rows per workgroup.
// MODE (specialization constant 0, modes.h):
//   AIT_MODE_FORWARD:   y = softmax(scale * x):  m = max(scale*x), e = ait_exp(scale*x - m),
//                       y = e / sum(e); bindings 0 x, 1 (unused), 2 y
//   AIT_MODE_BACKWARD: dx = scale * y * (dy - sum(y * dy)); bindings 0 y, 1 dy, 2 dx
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = AIT_MODE_FORWARD;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
  uint lanes;
  float scale;
} pc;

layout(binding = 0) readonly buffer In0 { float in0[]; };
layout(binding = 1) readonly buffer In1 { float in1[]; };
layout(binding = 2) buffer Out { float outv[]; };

shared float red[WG_SIZE];
AIT_DEFINE_SEG_REDUCE(seg_sum, ait_add)
AIT_DEFINE_SEG_REDUCE(seg_max, max)

void main() {
  uint lid = gl_LocalInvocationID.x, lanes = pc.lanes, lane = lid & (lanes - 1u);
  uint row = WG_ID.x * (WG_SIZE / lanes) + lid / lanes;
  bool in_range = row < pc.rows;
  uint cols = in_range ? pc.cols : 0u;  // inactive threads skip the loops but join the barriers
  uint base = row * pc.cols;
  if (MODE == AIT_MODE_FORWARD) {
    float m = -1.0 / 0.0;
    for (uint c = lane; c < cols; c += lanes) m = max(m, pc.scale * in0[base + c]);
    m = seg_max(m, lanes);
    float s = 0.0;
    for (uint c = lane; c < cols; c += lanes) {
      float e = ait_exp(pc.scale * in0[base + c] - m);
      outv[base + c] = e;
      s += e;
    }
    s = seg_sum(s, lanes);
    float inv = 1.0 / s;
    for (uint c = lane; c < cols; c += lanes) outv[base + c] = outv[base + c] * inv;
  } else {  // AIT_MODE_BACKWARD
    float d = 0.0;
    for (uint c = lane; c < cols; c += lanes) d += in0[base + c] * in1[base + c];
    d = seg_sum(d, lanes);
    for (uint c = lane; c < cols; c += lanes) outv[base + c] = pc.scale * in0[base + c] * (in1[base + c] - d);
  }
}
