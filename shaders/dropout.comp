#version 450
// Dropout with the portable counter-based hash of src/rng.h (lowbias32), so both backends draw
// the same mask: u = (hash32(i * 0x9E3779B9 ^ hash32(seed)) >> 8) / 2^24 (exact in fp32),
// mask[i] = u >= p ? scale : 0 with scale = 1 / (1 - p) computed on the host (GPU division is
// not correctly rounded, the host's is, so the mask matches bit for bit), y[i] = x[i] * mask[i].
// `idx_base` is the global index of element 0 of this (possibly split) range. The seed hash
// changes every step: it is a per-run value (src/vulkan/vk_runtime.h), read from slots[slot].
// Bindings: 0 x, 1 y, 2 mask, 3 slots.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint n;
  uint idx_base;
  float p;
  float scale;
  uint slot;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };
layout(binding = 2) writeonly buffer M { float mask[]; };
layout(binding = 3) readonly buffer S { uint slots[]; };

uint hash32(uint v) {
  v ^= v >> 16;
  v *= 0x7feb352du;
  v ^= v >> 15;
  v *= 0x846ca68bu;
  v ^= v >> 16;
  return v;
}

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (i >= pc.n) return;
  uint g = pc.idx_base + i;
  uint seed_hash = slots[pc.slot];
  float u = float(hash32(g * 0x9E3779B9u ^ seed_hash) >> 8) * (1.0 / 16777216.0);
  float m = u >= pc.p ? pc.scale : 0.0;
  mask[i] = m;
  y[i] = x[i] * m;
}
