#version 450
// The matmul with fp32 operands: matmul.glsl (see there).
#include "matmul.glsl"
