#version 450
// LayerNorm backward, input gradient; `lanes` threads per row, WG_SIZE / lanes rows per
// workgroup:
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
  uint lanes;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer W { float w[]; };
layout(binding = 2) readonly buffer Mean { float mean_in[]; };
layout(binding = 3) readonly buffer Rstd { float rstd_in[]; };
layout(binding = 4) readonly buffer DY { float dy[]; };
layout(binding = 5) writeonly buffer DX { float dx[]; };

shared float red[WG_SIZE];
AIT_DEFINE_SEG_REDUCE(seg_sum, ait_add)

void main() {
  uint lid = gl_LocalInvocationID.x, lanes = pc.lanes, lane = lid & (lanes - 1u);
  uint row = WG_ID.x * (WG_SIZE / lanes) + lid / lanes;
  bool in_range = row < pc.rows;
  uint cols = in_range ? pc.cols : 0u;
  uint base = row * pc.cols;
  float mean = in_range ? mean_in[row] : 0.0, rstd = in_range ? rstd_in[row] : 0.0;
  // Four elements per loop step with independent partial sums (as in layernorm.comp): four
  // loads in flight per thread on long rows.
  float sg[4] = float[4](0.0, 0.0, 0.0, 0.0), sgx[4] = float[4](0.0, 0.0, 0.0, 0.0);
  for (uint c0 = lane; c0 < cols; c0 += 4 * lanes)
    [[unroll]] for (uint u = 0; u < 4; ++u) {
      uint c = c0 + u * lanes;
      if (c < cols) {
        float xh = (x[base + c] - mean) * rstd;
        float g = dy[base + c] * w[c];
        sg[u] += g;
        sgx[u] += g * xh;
      }
    }
  float inv = 1.0 / float(pc.cols);
  float mg = seg_sum((sg[0] + sg[1]) + (sg[2] + sg[3]), lanes) * inv;
  float mgx = seg_sum((sgx[0] + sgx[1]) + (sgx[2] + sgx[3]), lanes) * inv;
  for (uint c0 = lane; c0 < cols; c0 += 4 * lanes)
    [[unroll]] for (uint u = 0; u < 4; ++u) {
      uint c = c0 + u * lanes;
      if (c < cols) {
        float xh = (x[base + c] - mean) * rstd;
        float g = dy[base + c] * w[c];
        dx[base + c] = rstd * (g - mg - xh * mgx);
      }
    }
}
