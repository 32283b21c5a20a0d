#version 450
// Sum over the middle axis of x = [outer, n, inner], in chunks of `chunk` along n:
//   y[o, c, i] = scale * sum_{j in chunk c} f(x[o, j, i]),   c < nchunks
// f is the identity, or (COUNT) 1 when x > 0 else 0. The host calls it repeatedly (partial sums
// of partial sums, COUNT only on the first pass, scale only on the last) until nchunks == 1,
// so every summation order is fixed: results are deterministic run to run.
// MODE (specialization constant 0, modes.h):
//   AIT_REDUCE_ROWS (inner == 1): one workgroup per (c, o); 256 threads stride over the chunk,
//     then a shared-memory tree. Grid: x = c, y = o.
//   AIT_REDUCE_COLUMNS (inner > 1): a workgroup covers 64 consecutive i with 4 lanes along j
//     each; the lanes are combined in shared memory. Grid: x = i-block, y = c, z = o.
// Bindings: 0 x, 1 y.
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = AIT_REDUCE_ROWS;
layout(constant_id = 1) const bool COUNT = false;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint outer;
  uint n;
  uint inner;
  uint chunk;
  uint nchunks;
  float scale;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };

shared float red[WG_SIZE];
AIT_DEFINE_TREE_REDUCE(tree_sum, ait_add)

float f(float v) { return COUNT ? (v > 0.0 ? 1.0 : 0.0) : v; }

void main() {
  uint lid = gl_LocalInvocationID.x;
  if (MODE == AIT_REDUCE_ROWS) {
    uint c = WG_ID.x, o = WG_ID.y;
    uint j0 = c * pc.chunk, j1 = min(pc.n, j0 + pc.chunk);
    uint base = o * pc.n;
    float s = 0.0;
    for (uint j = j0 + lid; j < j1; j += WG_SIZE) s += f(x[base + j]);
    s = tree_sum(s);
    if (lid == 0) y[o * pc.nchunks + c] = pc.scale * s;
  } else {  // AIT_REDUCE_COLUMNS
    uint ti = lid & 63u, tj = lid >> 6;
    uint i = WG_ID.x * 64u + ti, c = WG_ID.y, o = WG_ID.z;
    uint j0 = c * pc.chunk, j1 = min(pc.n, j0 + pc.chunk);
    float s = 0.0;
    if (i < pc.inner) {
      uint base = o * pc.n * pc.inner + i;
      for (uint j = j0 + tj; j < j1; j += 4u) s += f(x[base + j * pc.inner]);
    }
    red[lid] = s;
    barrier();
    if (tj == 0 && i < pc.inner) {
      float t = (red[ti] + red[ti + 64u]) + (red[ti + 128u] + red[ti + 192u]);
      y[(o * pc.nchunks + c) * pc.inner + i] = pc.scale * t;
    }
  }
}
