#version 450
// SGEMM, 128 x 64 tile (M x N), K step 32 (48 KiB of shared memory: half the barriers of K step
// 16), 128 threads laid out 16 x 8 with 8 x 8 outputs each. Body: matmul.glsl.
#define BM 128
#define BN 64
#define BK 32
#define NT 128
#define WX 8
#include "matmul.glsl"
