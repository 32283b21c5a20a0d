#version 450
// LayerNorm backward, input gradient, one workgroup per row:
//   xhat = (x - mean) * rstd;  g = dy * w
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// The parameter gradients (dw, db) are layernorm_backward_params.comp.
// Bindings: 0 x, 1 w, 2 mean, 3 rstd, 4 dy, 5 dx.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer W { float w[]; };
layout(binding = 2) readonly buffer Mean { float mean_in[]; };
layout(binding = 3) readonly buffer Rstd { float rstd_in[]; };
layout(binding = 4) readonly buffer DY { float dy[]; };
layout(binding = 5) writeonly buffer DX { float dx[]; };

shared float red[WG_SIZE];
AIT_DEFINE_TREE_REDUCE(tree_sum, ait_add)

void main() {
  uint row = WG_ID.x, lid = gl_LocalInvocationID.x;
  if (row >= pc.rows) return;
  uint base = row * pc.cols;
  float mean = mean_in[row], rstd = rstd_in[row];
  float sg = 0.0, sgx = 0.0;
  for (uint c = lid; c < pc.cols; c += WG_SIZE) {
    float xh = (x[base + c] - mean) * rstd;
    float g = dy[base + c] * w[c];
    sg += g;
    sgx += g * xh;
  }
  float inv = 1.0 / float(pc.cols);
  float mg = tree_sum(sg) * inv;
  float mgx = tree_sum(sgx) * inv;
  for (uint c = lid; c < pc.cols; c += WG_SIZE) {
    float xh = (x[base + c] - mean) * rstd;
    float g = dy[base + c] * w[c];
    dx[base + c] = rstd * (g - mg - xh * mgx);
  }
}
