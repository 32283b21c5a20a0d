// Tiled SGEMM body shared by matmul64.comp and matmul128.comp, which define the tile:
//   BM x BN outputs per workgroup of 256 threads (16 x 16), BK-deep K steps, and each thread
//   computes a TM x TN = (BM/16) x (BN/16) register block.
// C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for batch item b = workgroup z, row-major, with
// leading dimensions, batch strides (0: operand shared by the batch) and element offsets.
// beta == 0 never reads C (so NaN there is overwritten).
// Split-K: workgroup z = batch * splits + split; a split covers K range
// [split * k_len, (split + 1) * k_len) and writes its partial product at an extra offset
// split * split_stride_c (the host points C at a scratch buffer and adds the partial products
// with matmul_reduce.comp). Without split-K: splits = 1, k_len = K.
//
// Shared memory holds A as [BK][BM] and B as [BK][BN] (k-major, vec4 granules), double
// buffered: 2 * BK * (BM + BN) * 4 bytes = 16 KiB for both tile shapes. Each K step every
// thread loads one vec4 of A and one of B from global memory into registers (prefetching the
// next step while the current one is computed) and stores them transposed as needed, so the
// four transpose combinations share one inner loop. A thread's rows are {g*64 + ty*4 + i} and
// its columns {g*64 + tx*4 + j}, which makes its shared-memory reads whole vec4s.
// Specialization constants: 0 TRANS_A (A stored [K,M]), 1 TRANS_B (B stored [N,K]),
// 2 VEC_A / 3 VEC_B: the host guarantees 16-byte alignment of every row and of the operand's
// contiguous extent (ld, offset, batch stride and the contiguous dimension all multiples of 4),
// so global loads are single vec4 loads; otherwise four bounds-checked scalar loads.
// Bindings: 0 A, 1 B, 2 C (each bound once as float[] and, for A and B, aliased as vec4[]).
#include "common.glsl"

#define TM (BM / 16)
#define TN (BN / 16)
#define GM (TM / 4)
#define GN (TN / 4)

layout(local_size_x = 256) in;
layout(constant_id = 0) const bool TRANS_A = false;
layout(constant_id = 1) const bool TRANS_B = false;
layout(constant_id = 2) const bool VEC_A = false;
layout(constant_id = 3) const bool VEC_B = false;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint M, N, K;
  uint lda, ldb, ldc;
  uint stride_a, stride_b, stride_c;
  uint off_a, off_b, off_c;
  float alpha, beta;
  uint k_len, splits, split_stride_c;
} pc;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(binding = 2) buffer C { float c[]; };

shared vec4 As[2][BK * BM / 4];
shared vec4 Bs[2][BK * BN / 4];

vec4 regA, regB;
uint abase, bbase;
uint m0, n0;
uint kend;  // end of this workgroup's K range

void load_tile(uint k0) {
  uint t = gl_LocalInvocationID.x;
  if (!TRANS_A) {
    uint r = t / (BK / 4), gk = k0 + (t % (BK / 4)) * 4, gm = m0 + r;
    if (VEC_A) {
      regA = (gm < pc.M && gk < kend) ? a4[(abase + gm * pc.lda + gk) >> 2] : vec4(0.0);
    } else {
      uint idx = abase + gm * pc.lda + gk;
      bool row_ok = gm < pc.M;
      regA.x = (row_ok && gk < kend) ? a[idx] : 0.0;
      regA.y = (row_ok && gk + 1 < kend) ? a[idx + 1] : 0.0;
      regA.z = (row_ok && gk + 2 < kend) ? a[idx + 2] : 0.0;
      regA.w = (row_ok && gk + 3 < kend) ? a[idx + 3] : 0.0;
    }
  } else {
    uint gk = k0 + t / (BM / 4), gm = m0 + (t % (BM / 4)) * 4;
    if (VEC_A) {
      regA = (gk < kend && gm < pc.M) ? a4[(abase + gk * pc.lda + gm) >> 2] : vec4(0.0);
    } else {
      uint idx = abase + gk * pc.lda + gm;
      bool k_ok = gk < kend;
      regA.x = (k_ok && gm < pc.M) ? a[idx] : 0.0;
      regA.y = (k_ok && gm + 1 < pc.M) ? a[idx + 1] : 0.0;
      regA.z = (k_ok && gm + 2 < pc.M) ? a[idx + 2] : 0.0;
      regA.w = (k_ok && gm + 3 < pc.M) ? a[idx + 3] : 0.0;
    }
  }
  if (!TRANS_B) {
    uint gk = k0 + t / (BN / 4), gn = n0 + (t % (BN / 4)) * 4;
    if (VEC_B) {
      regB = (gk < kend && gn < pc.N) ? b4[(bbase + gk * pc.ldb + gn) >> 2] : vec4(0.0);
    } else {
      uint idx = bbase + gk * pc.ldb + gn;
      bool k_ok = gk < kend;
      regB.x = (k_ok && gn < pc.N) ? b[idx] : 0.0;
      regB.y = (k_ok && gn + 1 < pc.N) ? b[idx + 1] : 0.0;
      regB.z = (k_ok && gn + 2 < pc.N) ? b[idx + 2] : 0.0;
      regB.w = (k_ok && gn + 3 < pc.N) ? b[idx + 3] : 0.0;
    }
  } else {
    uint r = t / (BK / 4), gk = k0 + (t % (BK / 4)) * 4, gn = n0 + r;
    if (VEC_B) {
      regB = (gn < pc.N && gk < kend) ? b4[(bbase + gn * pc.ldb + gk) >> 2] : vec4(0.0);
    } else {
      uint idx = bbase + gn * pc.ldb + gk;
      bool row_ok = gn < pc.N;
      regB.x = (row_ok && gk < kend) ? b[idx] : 0.0;
      regB.y = (row_ok && gk + 1 < kend) ? b[idx + 1] : 0.0;
      regB.z = (row_ok && gk + 2 < kend) ? b[idx + 2] : 0.0;
      regB.w = (row_ok && gk + 3 < kend) ? b[idx + 3] : 0.0;
    }
  }
}

void store_tile(uint buf) {
  uint t = gl_LocalInvocationID.x;
  if (!TRANS_A) {
    uint r = t / (BK / 4), kq = (t % (BK / 4)) * 4;
    uint col = r >> 2, comp = r & 3u;
    As[buf][(kq + 0) * (BM / 4) + col][comp] = regA.x;
    As[buf][(kq + 1) * (BM / 4) + col][comp] = regA.y;
    As[buf][(kq + 2) * (BM / 4) + col][comp] = regA.z;
    As[buf][(kq + 3) * (BM / 4) + col][comp] = regA.w;
  } else {
    As[buf][t] = regA;  // t = kr * (BM/4) + mq
  }
  if (!TRANS_B) {
    Bs[buf][t] = regB;  // t = kr * (BN/4) + nq
  } else {
    uint r = t / (BK / 4), kq = (t % (BK / 4)) * 4;
    uint col = r >> 2, comp = r & 3u;
    Bs[buf][(kq + 0) * (BN / 4) + col][comp] = regB.x;
    Bs[buf][(kq + 1) * (BN / 4) + col][comp] = regB.y;
    Bs[buf][(kq + 2) * (BN / 4) + col][comp] = regB.z;
    Bs[buf][(kq + 3) * (BN / 4) + col][comp] = regB.w;
  }
}

void main() {
  uint lid = gl_LocalInvocationID.x;
  uint tx = lid & 15u, ty = lid >> 4;
  uvec3 wg = WG_ID;
  n0 = wg.x * BN;
  m0 = wg.y * BM;
  uint split = wg.z % pc.splits, batch = wg.z / pc.splits;
  abase = pc.off_a + batch * pc.stride_a;
  bbase = pc.off_b + batch * pc.stride_b;
  uint cbase = pc.off_c + batch * pc.stride_c + split * pc.split_stride_c;
  uint kbeg = split * pc.k_len;
  kend = min(pc.K, kbeg + pc.k_len);

  vec4 acc[TM * GN];
  [[unroll]] for (uint i = 0; i < TM * GN; ++i) acc[i] = vec4(0.0);

  uint nk = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
  if (nk > 0) {
    load_tile(kbeg);
    store_tile(0);
  }
  barrier();
  for (uint kt = 0; kt < nk; ++kt) {
    uint cur = kt & 1u;
    bool more = kt + 1 < nk;
    if (more) load_tile(kbeg + (kt + 1) * BK);
    [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
      vec4 av[GM], bv[GN];
      [[unroll]] for (uint g = 0; g < GM; ++g) av[g] = As[cur][kk * (BM / 4) + g * 16 + ty];
      [[unroll]] for (uint g = 0; g < GN; ++g) bv[g] = Bs[cur][kk * (BN / 4) + g * 16 + tx];
      [[unroll]] for (uint gi = 0; gi < GM; ++gi) {
        [[unroll]] for (uint i = 0; i < 4; ++i) {
          [[unroll]] for (uint gj = 0; gj < GN; ++gj) {
            acc[(gi * 4 + i) * GN + gj] += av[gi][i] * bv[gj];
          }
        }
      }
    }
    if (more) store_tile(cur ^ 1u);
    barrier();
  }

  [[unroll]] for (uint gi = 0; gi < GM; ++gi) {
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      uint m = m0 + gi * 64 + ty * 4 + i;
      if (m < pc.M) {
        [[unroll]] for (uint gj = 0; gj < GN; ++gj) {
          vec4 v = acc[(gi * 4 + i) * GN + gj];
          [[unroll]] for (uint j = 0; j < 4; ++j) {
            uint n = n0 + gj * 64 + tx * 4 + j;
            if (n < pc.N) {
              uint idx = cbase + m * pc.ldc + n;
              float r = pc.alpha * v[j];
              if (pc.beta != 0.0) r += pc.beta * c[idx];
              c[idx] = r;
            }
          }
        }
      }
    }
  }
}
