#version 450
// SGEMM, 64 x 64 tile, K step 16, 4 x 4 outputs per thread: for small or thin problems, where
// the 128 x 128 tile would leave the device idle. Body: matmul.glsl.
#define BM 64
#define BN 64
#define BK 16
#include "matmul.glsl"
