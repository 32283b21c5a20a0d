#version 450
// SGEMM, 128 x 64 tile (M x N), K step 8 (12 KiB of shared memory, for devices that offer only
// 16 KiB), 128 threads laid out 16 x 8 with 8 x 8 outputs each. Body: matmul.glsl.
#define BM 128
#define BN 64
#define BK 8
#define NT 128
#define WX 8
#include "matmul.glsl"
