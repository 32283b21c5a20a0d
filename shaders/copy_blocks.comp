#version 450
// Strided block copy: for o < outer, j < inner:
//   dst[dst_off + o*dst_stride + j] (+)= src[src_off + o*src_stride + j]
// ACCUM (specialization constant 0) selects += . One element per thread over outer*inner.
// Bindings: 0 src, 1 dst (offsets are relative to the bound ranges).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const bool ACCUM = false;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint outer;
  uint inner;
  uint src_off;
  uint src_stride;
  uint dst_off;
  uint dst_stride;
} pc;

layout(binding = 0) readonly buffer S { float src[]; };
layout(binding = 1) buffer D { float dst[]; };

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (i >= pc.outer * pc.inner) return;
  uint o = i / pc.inner, j = i - o * pc.inner;
  uint d = pc.dst_off + o * pc.dst_stride + j;
  float v = src[pc.src_off + o * pc.src_stride + j];
  if (ACCUM) v += dst[d];
  dst[d] = v;
}
