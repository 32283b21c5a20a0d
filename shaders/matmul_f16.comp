#version 450
// The matmul with fp16 A and B in storage, fp32 accumulation and fp32 C: matmul.glsl with
// AIT_MATMUL_F16_AB (see there). Used only on devices with storageBuffer16BitAccess.
#define AIT_MATMUL_F16_AB
#include "matmul.glsl"
