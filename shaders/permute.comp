#version 450
// y = x permuted. The host passes the output shape and, per output axis, the element stride of
// the input axis it comes from (unit axes dropped, axes that stay adjacent merged), so
// y[i] = x[sum_d coord_d(i) * stride[d]]. One output element per thread: writes are coalesced.
// Specialization constant 0 VEC4: the innermost output axis is contiguous in x with a length
// divisible by 4 and every other stride is too, so a thread moves 4 elements with one vec4 load
// and store, and does the index arithmetic (integer divisions, the cost here) once for them.
// Bindings: 0 x, 1 y (each also aliased as vec4[]).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rank;
  uint total;
  uint shape[6];
  uint stride[6];
} pc;

layout(constant_id = 0) const bool VEC4 = false;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };
layout(binding = 1) writeonly buffer Y4 { vec4 y4[]; };

void main() {
  uint t = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  uint i = VEC4 ? 4 * t : t;  // first output element of this thread
  if (i >= pc.total) return;
  uint rest = i, src = 0;
  for (int d = int(pc.rank) - 1; d >= 0; --d) {
    uint s = pc.shape[d];
    src += (rest % s) * pc.stride[d];
    rest /= s;
  }
  if (VEC4)
    y4[t] = x4[src >> 2];
  else
    y[i] = x[src];
}
