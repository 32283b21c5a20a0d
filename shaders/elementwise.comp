#version 450
// 1-D elementwise kernels, one element per thread. OP (specialization constant 0, modes.h):
//   AIT_ELEMENTWISE_FILL:          y[i] = a
//   AIT_ELEMENTWISE_AXPBY:         y[i] = a * x[i] + b * y[i]   (b == 0: y is not read, so NaN there is overwritten)
//   AIT_ELEMENTWISE_GELU:          y[i] = gelu(x[i])            (exact erf form)
//   AIT_ELEMENTWISE_GELU_BACKWARD: z[i] = y[i] * gelu'(x[i])    (x = input, y = dy, z = dx)
// Bindings: 0 x, 1 y, 2 z (unused ones are bound to a dummy buffer by the host).
#include "common.glsl"
#include "math.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint OP = AIT_ELEMENTWISE_FILL;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint n;
  float a;
  float b;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) buffer Y { float y[]; };
layout(binding = 2) writeonly buffer Z { float z[]; };

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (i >= pc.n) return;
  if (OP == AIT_ELEMENTWISE_FILL) {
    y[i] = pc.a;
  } else if (OP == AIT_ELEMENTWISE_AXPBY) {
    float r = pc.a * x[i];
    if (pc.b != 0.0) r += pc.b * y[i];
    y[i] = r;
  } else if (OP == AIT_ELEMENTWISE_GELU) {
    y[i] = gelu(x[i]);
  } else {  // AIT_ELEMENTWISE_GELU_BACKWARD
    z[i] = y[i] * gelu_grad(x[i]);
  }
}
