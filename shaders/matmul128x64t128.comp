#version 450
// SGEMM, 128 x 64 tile (M x N), K step 16 (24 KiB of shared memory), 128 threads laid out
// 16 x 8 with 8 x 8 outputs each: more arithmetic per shared-memory read than the 256-thread
// 128 x 64 tile, and small workgroups that pack several to a compute unit. Body: matmul.glsl.
#define BM 128
#define BN 64
#define BK 16
#define NT 128
#define WX 8
#include "matmul.glsl"
