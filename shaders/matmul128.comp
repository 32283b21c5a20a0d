#version 450
// SGEMM, 128 x 128 tile, K step 8, 8 x 8 outputs per thread: the large-problem kernel.
// Body: matmul.glsl.
#define BM 128
#define BN 128
#define BK 8
#include "matmul.glsl"
