#version 450
// SGEMM, 64 x 64 tile, K step 16 (16 KiB of shared memory), 64 threads laid out 8 x 8 with
// 8 x 8 outputs each: the 8 x 8 register block in workgroups small enough to fill a GPU on
// medium problems. Body: matmul.glsl.
#define BM 64
#define BN 64
#define BK 16
#define NT 64
#define WX 8
#include "matmul.glsl"
