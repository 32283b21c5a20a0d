#version 450
// LayerNorm backward, parameter gradients: dw[c] += sum_r dy[r,c] * xhat[r,c], db[c] += sum_r dy[r,c].
// A deterministic two-pass column reduction (no float atomics):
// MODE (specialization constant 0, modes.h):
//   AIT_LN_PARAMS_PARTIAL: workgroup (column block of 64, row chunk); 4 lanes per column stride
//     over the chunk's rows, combined in shared memory. With one chunk the sums go straight
//     into dw/db; otherwise to tmp[(chunk*2 + {0,1}) * cols + c].  Grid: x = column block, y = chunk.
//   AIT_LN_PARAMS_FINAL: one thread per column adds the chunks' partial sums in chunk order.
// Bindings: 0 x, 1 mean, 2 rstd, 3 dy, 4 dw, 5 db, 6 tmp.
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = AIT_LN_PARAMS_PARTIAL;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
  uint chunk_rows;
  uint nchunks;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Mean { float mean_in[]; };
layout(binding = 2) readonly buffer Rstd { float rstd_in[]; };
layout(binding = 3) readonly buffer DY { float dy[]; };
layout(binding = 4) buffer DW { float dw[]; };
layout(binding = 5) buffer DB { float db[]; };
layout(binding = 6) buffer T { float tmp[]; };

shared float red_w[WG_SIZE];
shared float red_b[WG_SIZE];

void main() {
  uint lid = gl_LocalInvocationID.x;
  if (MODE == AIT_LN_PARAMS_PARTIAL) {
    uint ti = lid & 63u, tj = lid >> 6;
    uint c = WG_ID.x * 64u + ti, chunk = WG_ID.y;
    uint r0 = chunk * pc.chunk_rows, r1 = min(pc.rows, r0 + pc.chunk_rows);
    float sw = 0.0, sb = 0.0;
    if (c < pc.cols) {
      for (uint r = r0 + tj; r < r1; r += 4u) {
        float d = dy[r * pc.cols + c];
        sw += d * ((x[r * pc.cols + c] - mean_in[r]) * rstd_in[r]);
        sb += d;
      }
    }
    red_w[lid] = sw;
    red_b[lid] = sb;
    barrier();
    if (tj == 0 && c < pc.cols) {
      float tw = (red_w[ti] + red_w[ti + 64u]) + (red_w[ti + 128u] + red_w[ti + 192u]);
      float tb = (red_b[ti] + red_b[ti + 64u]) + (red_b[ti + 128u] + red_b[ti + 192u]);
      if (pc.nchunks == 1u) {
        dw[c] += tw;
        db[c] += tb;
      } else {
        tmp[(chunk * 2u) * pc.cols + c] = tw;
        tmp[(chunk * 2u + 1u) * pc.cols + c] = tb;
      }
    }
  } else {  // AIT_LN_PARAMS_FINAL
    uint c = WG_ID.x * WG_SIZE + lid;
    if (c >= pc.cols) return;
    float tw = 0.0, tb = 0.0;
    for (uint k = 0; k < pc.nchunks; ++k) {
      tw += tmp[(k * 2u) * pc.cols + c];
      tb += tmp[(k * 2u + 1u) * pc.cols + c];
    }
    dw[c] += tw;
    db[c] += tb;
  }
}
