#version 450
// Row L2 normalisation and its backward, one workgroup per row.
// MODE (specialization constant 0):
//   0 forward:  norm = max(sqrt(sum(x^2)), 1e-12); y = x / norm        bindings 0 x, 1 norm (out), 2 y (out), 3 unused
//   1 backward: dx = (dy - y * sum(y * dy)) / norm          bindings 0 y, 1 norm, 2 dy, 3 dx
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = 0;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
} pc;

layout(binding = 0) readonly buffer In0 { float in0[]; };
layout(binding = 1) buffer Norm { float norm[]; };
layout(binding = 2) buffer B2 { float b2[]; };
layout(binding = 3) writeonly buffer DX { float dx[]; };

shared float red[WG_SIZE];
AIT_DEFINE_TREE_REDUCE(tree_sum, ait_add)

void main() {
  uint row = WG_ID.x, lid = gl_LocalInvocationID.x;
  if (row >= pc.rows) return;
  uint base = row * pc.cols;
  if (MODE == 0) {
    float s = 0.0;
    for (uint c = lid; c < pc.cols; c += WG_SIZE) {
      float v = in0[base + c];
      s += v * v;
    }
    float nrm = max(sqrt(tree_sum(s)), 1e-12);
    for (uint c = lid; c < pc.cols; c += WG_SIZE) b2[base + c] = in0[base + c] / nrm;
    if (lid == 0) norm[row] = nrm;
  } else {
    float d = 0.0;
    for (uint c = lid; c < pc.cols; c += WG_SIZE) d += in0[base + c] * b2[base + c];
    d = tree_sum(d);
    float nrm = norm[row];
    for (uint c = lid; c < pc.cols; c += WG_SIZE) dx[base + c] = (b2[base + c] - in0[base + c] * d) / nrm;
  }
}
