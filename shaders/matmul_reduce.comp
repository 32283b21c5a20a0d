#version 450
// Split-K epilogue: C[b, m, n] = alpha * sum_s T[s, b, m, n] + beta * C[b, m, n], the partial
// products T ([splits, batch, M, N], contiguous) added in split order (deterministic).
// beta == 0 never reads C. One output element per thread. Specialization constant 0 HAS_BIAS:
// then C[b, m, n] += bias[n].
// Bindings: 0 T, 1 C, 2 bias (unused without HAS_BIAS).
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint M, N, batch, splits;
  uint ldc, stride_c, off_c;
  float alpha, beta;
} pc;

layout(constant_id = 0) const bool HAS_BIAS = false;

layout(binding = 0) readonly buffer T { float t[]; };
layout(binding = 1) buffer C { float c[]; };
layout(binding = 2) readonly buffer Bias { float bias[]; };

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  uint mn = pc.M * pc.N;
  if (i >= pc.batch * mn) return;
  uint b = i / mn, r = i - b * mn;
  uint m = r / pc.N, n = r - m * pc.N;
  uint step = pc.batch * mn;
  float s = 0.0;
  for (uint k = 0; k < pc.splits; ++k) s += t[k * step + i];
  uint idx = pc.off_c + b * pc.stride_c + m * pc.ldc + n;
  float v = pc.alpha * s;
  if (pc.beta != 0.0) v += pc.beta * c[idx];
  if (HAS_BIAS) v += bias[n];
  c[idx] = v;
}
