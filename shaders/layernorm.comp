#version 450
// LayerNorm forward; `lanes` threads per row, WG_SIZE / lanes rows per workgroup:
//   mean = x0 + sum(x - x0) / cols;  var = sum((x - mean)^2) / cols;  rstd = 1 / sqrt(var + eps)
//   y = (x - mean) * rstd * w + b;  saves mean[row], rstd[row]
// Two passes over the row (mean first, then the centred sum of squares) for accuracy.
// Bindings: 0 x, 1 w, 2 b, 3 y, 4 mean, 5 rstd.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
  uint lanes;
  float eps;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer W { float w[]; };
layout(binding = 2) readonly buffer Bb { float b[]; };
layout(binding = 3) writeonly buffer Yb { float y[]; };
layout(binding = 4) writeonly buffer Mean { float mean_out[]; };
layout(binding = 5) writeonly buffer Rstd { float rstd_out[]; };

shared float red[WG_SIZE];
AIT_DEFINE_SEG_REDUCE(seg_sum, ait_add)

void main() {
  uint lid = gl_LocalInvocationID.x, lanes = pc.lanes, lane = lid & (lanes - 1u);
  uint row = WG_ID.x * (WG_SIZE / lanes) + lid / lanes;
  bool in_range = row < pc.rows;
  uint cols = in_range ? pc.cols : 0u;
  uint base = row * pc.cols;
  // Deviations from the row's first element: a constant row gets its mean exactly and variance
  // exactly 0 (the CPU backend does the same).
  // Each loop takes four elements per step with independent partial sums, so a thread has four
  // loads in flight: rows far longer than the workgroup (e.g. the head's T * D) are bound by
  // memory latency, not bandwidth.
  float shift = in_range ? x[base] : 0.0;
  float s[4] = float[4](0.0, 0.0, 0.0, 0.0);
  for (uint c0 = lane; c0 < cols; c0 += 4 * lanes)
    [[unroll]] for (uint u = 0; u < 4; ++u) {
      uint c = c0 + u * lanes;
      if (c < cols) s[u] += x[base + c] - shift;
    }
  float mean = shift + seg_sum((s[0] + s[1]) + (s[2] + s[3]), lanes) / float(pc.cols);
  float q[4] = float[4](0.0, 0.0, 0.0, 0.0);
  for (uint c0 = lane; c0 < cols; c0 += 4 * lanes)
    [[unroll]] for (uint u = 0; u < 4; ++u) {
      uint c = c0 + u * lanes;
      if (c < cols) {
        float d = x[base + c] - mean;
        q[u] += d * d;
      }
    }
  float var = seg_sum((q[0] + q[1]) + (q[2] + q[3]), lanes) / float(pc.cols);
  float rstd = 1.0 / sqrt(var + pc.eps);
  for (uint c0 = lane; c0 < cols; c0 += 4 * lanes)
    [[unroll]] for (uint u = 0; u < 4; ++u) {
      uint c = c0 + u * lanes;
      if (c < cols) y[base + c] = (x[base + c] - mean) * rstd * w[c] + b[c];
    }
  if (in_range && lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}
