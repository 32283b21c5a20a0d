#version 450
// AdamW (PyTorch form, torch.optim.AdamW's operation order), one parameter per thread:
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// decay = 1 - lr*wd, c1 = 1 - b1, c2 = 1 - b2, step = lr / bc1 and bc2_sqrt = sqrt(bc2) are
// computed on the host, as the CPU backend does. decay, step and bc2_sqrt change every step: they
// are per-run values (src/vulkan/vk_runtime.h), read from slots[slot..slot+2], so that a recorded
// step can run again with the next step's values.
// Bindings: 0 p, 1 g, 2 m, 3 v, 4 slots.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint n;
  float beta1;
  float beta2;
  float c1;
  float c2;
  float eps;
  uint slot;
} pc;

layout(binding = 0) buffer P { float p[]; };
layout(binding = 1) readonly buffer G { float g[]; };
layout(binding = 2) buffer M { float m[]; };
layout(binding = 3) buffer V { float v[]; };
layout(binding = 4) readonly buffer S { uint slots[]; };

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (i >= pc.n) return;
  float decay = uintBitsToFloat(slots[pc.slot]);
  float step = uintBitsToFloat(slots[pc.slot + 1u]);
  float bc2_sqrt = uintBitsToFloat(slots[pc.slot + 2u]);
  float gi = g[i];
  float pi = p[i] * decay;
  float mi = pc.beta1 * m[i] + pc.c1 * gi;
  float vi = pc.beta2 * v[i] + pc.c2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  float denom = sqrt(vi) / bc2_sqrt + pc.eps;
  p[i] = pi - step * mi / denom;
}
