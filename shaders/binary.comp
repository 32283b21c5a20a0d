#version 450
// Broadcasting binary op over a strided N-d grid (rank <= 6, the host has already dropped unit
// axes and merged contiguous ones): y[i] = a[ia(i)] OP b[ib(i)], i the row-major index over
// `shape`, ia/ib the dot products of i's coordinates with the element strides (0 on broadcast
// axes). OP (specialization constant 0): AIT_BINARY_ADD, _SUB, _MUL or _DIV (modes.h).
// Bindings: 0 a, 1 b, 2 y. One element per thread.
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint OP = AIT_BINARY_ADD;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rank;
  uint total;
  uint shape[6];
  uint sa[6];
  uint sb[6];
} pc;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (i >= pc.total) return;
  uint rest = i, ia = 0, ib = 0;
  for (int d = int(pc.rank) - 1; d >= 0; --d) {
    uint s = pc.shape[d];
    uint c = rest % s;
    rest /= s;
    ia += c * pc.sa[d];
    ib += c * pc.sb[d];
  }
  float u = a[ia], v = b[ib];
  float r;
  if (OP == AIT_BINARY_ADD) r = u + v;
  else if (OP == AIT_BINARY_SUB) r = u - v;
  else if (OP == AIT_BINARY_MUL) r = u * v;
  else r = u / v;  // AIT_BINARY_DIV
  y[i] = r;
}
