#version 450
// SGEMM, 64 x 128 tile (M x N), K step 16 (24 KiB of shared memory), 128 threads laid out
// 8 x 16 with 8 x 8 outputs each. Body: matmul.glsl.
#define BM 64
#define BN 128
#define BK 16
#define NT 128
#include "matmul.glsl"
