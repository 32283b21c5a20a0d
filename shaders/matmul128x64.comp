#version 450
// SGEMM, 128 x 64 tile (M x N), K step 8, 256 threads with 8 x 4 outputs each: twice the
// workgroups of the 128 x 128 tile for outputs that would fill the device unevenly.
// Body: matmul.glsl.
#define BM 128
#define BN 64
#define BK 8
#include "matmul.glsl"
