#version 450
// Row L2 normalisation and its backward; `lanes` threads per row, WG_SIZE / lanes rows per
// workgroup.
// MODE (specialization constant 0, modes.h):
//   AIT_MODE_FORWARD:  norm = max(sqrt(sum(x^2)), 1e-12); y = x / norm
//                      bindings 0 x, 1 norm (out), 2 y (out), 3 unused
//   AIT_MODE_BACKWARD: dx = (dy - y * sum(y * dy)) / norm
//                      bindings 0 y, 1 norm, 2 dy, 3 dx
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = AIT_MODE_FORWARD;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
  uint lanes;
} pc;

layout(binding = 0) readonly buffer In0 { float in0[]; };
layout(binding = 1) buffer Norm { float norm[]; };
layout(binding = 2) buffer B2 { float b2[]; };
layout(binding = 3) writeonly buffer DX { float dx[]; };

shared float red[WG_SIZE];
AIT_DEFINE_SEG_REDUCE(seg_sum, ait_add)

void main() {
  uint lid = gl_LocalInvocationID.x, lanes = pc.lanes, lane = lid & (lanes - 1u);
  uint row = WG_ID.x * (WG_SIZE / lanes) + lid / lanes;
  bool in_range = row < pc.rows;
  uint cols = in_range ? pc.cols : 0u;
  uint base = row * pc.cols;
  if (MODE == AIT_MODE_FORWARD) {
    float s = 0.0;
    for (uint c = lane; c < cols; c += lanes) {
      float v = in0[base + c];
      s += v * v;
    }
    float nrm = max(sqrt(seg_sum(s, lanes)), 1e-12);
    for (uint c = lane; c < cols; c += lanes) b2[base + c] = in0[base + c] / nrm;
    if (in_range && lane == 0) norm[row] = nrm;
  } else {  // AIT_MODE_BACKWARD
    float d = 0.0;
    for (uint c = lane; c < cols; c += lanes) d += in0[base + c] * b2[base + c];
    d = seg_sum(d, lanes);
    float nrm = in_range ? norm[row] : 1.0;
    for (uint c = lane; c < cols; c += lanes) dx[base + c] = (b2[base + c] - in0[base + c] * d) / nrm;
  }
}
