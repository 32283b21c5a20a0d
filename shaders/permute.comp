#version 450
// y = x permuted. The host passes the output shape and, per output axis, the element stride of
// the input axis it comes from (unit axes dropped, axes that stay adjacent merged), so
// y[i] = x[sum_d coord_d(i) * stride[d]]. One output element per thread: writes are coalesced.
// Bindings: 0 x, 1 y.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rank;
  uint total;
  uint shape[6];
  uint stride[6];
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (i >= pc.total) return;
  uint rest = i, src = 0;
  for (int d = int(pc.rank) - 1; d >= 0; --d) {
    uint s = pc.shape[d];
    src += (rest % s) * pc.stride[d];
    rest /= s;
  }
  y[i] = x[src];
}
