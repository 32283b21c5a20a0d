#version 450
// As matmul128x64t128 (128 x 64 tile, K step 16, 128 threads with 8 x 8 outputs each), with
// the K loop unrolled by two so that the shared-memory buffer index is a constant at each use.
// Body: matmul.glsl.
#define BM 128
#define BN 64
#define BK 16
#define NT 128
#define WX 8
#define PINGPONG
#include "matmul.glsl"
