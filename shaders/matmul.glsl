// The tiled matmul, one source for every tile and for both operand precisions (included by
// matmul.comp, fp32 operands, and matmul_f16.comp, which defines AIT_MATMUL_F16_AB): the tile
// geometry comes from specialization constants the host fills from its tile table
// (VulkanKernels::matmul_tiles(); constant ids in modes.h):
//   BM x BN outputs per workgroup of NT threads laid out WY x WX (WX threads along N), BK-deep K
//   steps, and each thread computes a TM x TN = (BM / WY) x (BN / WX) register block (multiples
//   of 4). After specialization every loop bound and array size below is a constant, so the
//   driver compiles each tile as if it had been written out by hand.
// C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] for batch item b = workgroup z, row-major, with
// leading dimensions, batch strides (0: operand shared by the batch) and element offsets.
// beta == 0 never reads C (so NaN there is overwritten).
// Split-K: workgroup z = batch * splits + split; a split covers K range
// [split * k_len, (split + 1) * k_len) and writes its partial product at an extra offset
// split * split_stride_c (the host points C at a scratch buffer and adds the partial products
// with matmul_reduce.comp). Without split-K: splits = 1, k_len = K.
//
// Shared memory holds A as [BK][BM] and B as [BK][BN] (k-major, vec4 granules), double
// buffered: 2 * BK * (BM + BN) * 4 bytes (the host checks it against the device's limit). Each
// K step every thread loads LA vec4s of A and LB of B from global memory into registers
// (prefetching the next step while the current one is computed) and stores them transposed as
// needed, so the four transpose combinations share one inner loop. A thread's rows are
// {g * 4WY + ty * 4 + i} and its columns {g * 4WX + tx * 4 + j}, which makes its shared-memory
// reads whole vec4s.
// Flags: TRANS_A (A stored [K,M]), TRANS_B (B stored [N,K]); VEC_A / VEC_B: the host guarantees
// 16-byte alignment of every row and of the operand's contiguous extent (ld, offset, batch stride
// and the contiguous dimension all multiples of 4), so global loads are single vec4 loads;
// otherwise four bounds-checked scalar loads. HAS_BIAS: C[b, m, n] += bias[n] after alpha and
// beta (a linear layer's bias, fused).
// Bindings: 0 A, 1 B, 2 C (each bound once as float[] and, for A and B, aliased as vec4[]),
// 3 bias (unused without HAS_BIAS).
// AIT_MATMUL_F16_AB: A and B are fp16 in storage (float16_t[], f16vec4[]; the device must have
// storageBuffer16BitAccess enabled); each element is converted to fp32 as it is loaded, so
// shared memory, the products and the sums are fp32 exactly as without it (an fp16 x fp16 product
// is exact in fp32). No float16 arithmetic (shaderFloat16) is used. C and bias stay fp32; the
// host gives A's and B's leading dimensions, strides and offsets in fp16 elements.
#ifdef AIT_MATMUL_F16_AB
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "common.glsl"
#include "modes.h"

layout(constant_id = AIT_MATMUL_SPEC_TRANS_A) const bool TRANS_A = false;
layout(constant_id = AIT_MATMUL_SPEC_TRANS_B) const bool TRANS_B = false;
layout(constant_id = AIT_MATMUL_SPEC_VEC_A) const bool VEC_A = false;
layout(constant_id = AIT_MATMUL_SPEC_VEC_B) const bool VEC_B = false;
layout(constant_id = AIT_MATMUL_SPEC_HAS_BIAS) const bool HAS_BIAS = false;
// The defaults (a 64 x 64 tile, 16 KiB of shared memory) only make the module valid on its own;
// the host always passes a tile.
layout(constant_id = AIT_MATMUL_SPEC_TILE_M) const uint BM = 64;
layout(constant_id = AIT_MATMUL_SPEC_TILE_N) const uint BN = 64;
layout(constant_id = AIT_MATMUL_SPEC_TILE_K) const uint BK = 16;
layout(constant_id = AIT_MATMUL_SPEC_THREADS) const uint NT = 256;
layout(constant_id = AIT_MATMUL_SPEC_THREADS_N) const uint WX = 16;
layout(local_size_x_id = AIT_MATMUL_SPEC_THREADS) in;

const uint WY = NT / WX;
const uint TM = BM / WY;
const uint TN = BN / WX;
const uint GM = TM / 4;
const uint GN = TN / 4;
// vec4 granules of a tile and granules loaded per thread and step
const uint QA = BK * BM / 4;
const uint QB = BK * BN / 4;
const uint LA = (QA + NT - 1) / NT;
const uint LB = (QB + NT - 1) / NT;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint M, N, K;
  uint lda, ldb, ldc;
  uint stride_a, stride_b, stride_c;
  uint off_a, off_b, off_c;
  float alpha, beta;
  uint k_len, splits, split_stride_c;
} pc;

#ifdef AIT_MATMUL_F16_AB
layout(binding = 0) readonly buffer A { float16_t a[]; };
layout(binding = 0) readonly buffer A4 { f16vec4 a4[]; };
layout(binding = 1) readonly buffer B { float16_t b[]; };
layout(binding = 1) readonly buffer B4 { f16vec4 b4[]; };
#define AIT_OPERAND(x) float(x)
#define AIT_OPERAND4(x) vec4(x)
#else
layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 1) readonly buffer B4 { vec4 b4[]; };
#define AIT_OPERAND(x) x
#define AIT_OPERAND4(x) x
#endif
layout(binding = 2) buffer C { float c[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };

shared vec4 As[2][QA];
shared vec4 Bs[2][QB];

vec4 regA[LA], regB[LB];
uint abase, bbase;
uint m0, n0;
uint kend;  // end of this workgroup's K range

// NAME(row, col, row_end, col_end) loads 4 consecutive elements of an operand stored [rows, cols]
// (row-major, leading dimension LD, from BASE; buffer S, aliased as S4): `row` and `col` (the
// first of the 4 columns) are tile-relative plus origin; the four columns are valid below
// `col_end`, the row below `row_end`. A macro because GLSL cannot pass a buffer.
#define AIT_DEFINE_LOAD(NAME, VEC, S, S4, BASE, LD)                                                  \
  vec4 NAME(uint row, uint col, uint row_end, uint col_end) {                                        \
    if (VEC)                                                                                         \
      return (row < row_end && col < col_end) ? AIT_OPERAND4(S4[(BASE + row * LD + col) >> 2]) : vec4(0.0); \
    uint idx = BASE + row * LD + col;                                                                \
    bool ok = row < row_end;                                                                         \
    vec4 v;                                                                                          \
    v.x = (ok && col < col_end) ? AIT_OPERAND(S[idx]) : 0.0;                                         \
    v.y = (ok && col + 1 < col_end) ? AIT_OPERAND(S[idx + 1]) : 0.0;                                 \
    v.z = (ok && col + 2 < col_end) ? AIT_OPERAND(S[idx + 2]) : 0.0;                                 \
    v.w = (ok && col + 3 < col_end) ? AIT_OPERAND(S[idx + 3]) : 0.0;                                 \
    return v;                                                                                        \
  }
AIT_DEFINE_LOAD(load_a, VEC_A, a, a4, abase, pc.lda)
AIT_DEFINE_LOAD(load_b, VEC_B, b, b4, bbase, pc.ldb)

// Granule l of a K-contiguous tile: (row, first K of the quad). (Giving consecutive threads
// consecutive rows instead, so that the transposing stores below hit distinct banks, measured
// 5-15% slower on an H200.)
uvec2 k_granule(uint l) { return uvec2(l / (BK / 4), (l % (BK / 4)) * 4); }

void load_tile(uint k0) {
  uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint r = 0; r < LA; ++r) {
    uint l = t + r * NT;
    if (QA % NT == 0 || l < QA) {
      if (!TRANS_A) {  // granule = (m, k quad)
        uvec2 g = k_granule(l);
        regA[r] = load_a(m0 + g.x, k0 + g.y, pc.M, kend);
      } else  // granule = (k, m quad)
        regA[r] = load_a(k0 + l / (BM / 4), m0 + (l % (BM / 4)) * 4, kend, pc.M);
    }
  }
  [[unroll]] for (uint r = 0; r < LB; ++r) {
    uint l = t + r * NT;
    if (QB % NT == 0 || l < QB) {
      if (!TRANS_B)  // granule = (k, n quad)
        regB[r] = load_b(k0 + l / (BN / 4), n0 + (l % (BN / 4)) * 4, kend, pc.N);
      else {  // granule = (n, k quad)
        uvec2 g = k_granule(l);
        regB[r] = load_b(n0 + g.x, k0 + g.y, pc.N, kend);
      }
    }
  }
}

void store_tile(uint buf) {
  uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint r = 0; r < LA; ++r) {
    uint l = t + r * NT;
    if (QA % NT == 0 || l < QA) {
      if (!TRANS_A) {
        uvec2 g = k_granule(l);
        uint m = g.x, kq = g.y;
        uint col = m >> 2, comp = m & 3u;
        As[buf][(kq + 0) * (BM / 4) + col][comp] = regA[r].x;
        As[buf][(kq + 1) * (BM / 4) + col][comp] = regA[r].y;
        As[buf][(kq + 2) * (BM / 4) + col][comp] = regA[r].z;
        As[buf][(kq + 3) * (BM / 4) + col][comp] = regA[r].w;
      } else {
        As[buf][l] = regA[r];  // l = k * (BM/4) + m quad
      }
    }
  }
  [[unroll]] for (uint r = 0; r < LB; ++r) {
    uint l = t + r * NT;
    if (QB % NT == 0 || l < QB) {
      if (!TRANS_B) {
        Bs[buf][l] = regB[r];  // l = k * (BN/4) + n quad
      } else {
        uvec2 g = k_granule(l);
        uint n = g.x, kq = g.y;
        uint col = n >> 2, comp = n & 3u;
        Bs[buf][(kq + 0) * (BN / 4) + col][comp] = regB[r].x;
        Bs[buf][(kq + 1) * (BN / 4) + col][comp] = regB[r].y;
        Bs[buf][(kq + 2) * (BN / 4) + col][comp] = regB[r].z;
        Bs[buf][(kq + 3) * (BN / 4) + col][comp] = regB[r].w;
      }
    }
  }
}

vec4 acc[TM * GN];  // this thread's TM x TN outputs, as TM * GN vec4s
uint tx, ty;

// One K step from shared-memory buffer `cur`.
void compute_step(uint cur) {
  [[unroll]] for (uint kk = 0; kk < BK; ++kk) {
    vec4 av[GM], bv[GN];
    [[unroll]] for (uint g = 0; g < GM; ++g) av[g] = As[cur][kk * (BM / 4) + g * WY + ty];
    [[unroll]] for (uint g = 0; g < GN; ++g) bv[g] = Bs[cur][kk * (BN / 4) + g * WX + tx];
    [[unroll]] for (uint gi = 0; gi < GM; ++gi) {
      [[unroll]] for (uint i = 0; i < 4; ++i) {
        [[unroll]] for (uint gj = 0; gj < GN; ++gj) {
          acc[(gi * 4 + i) * GN + gj] += av[gi][i] * bv[gj];
        }
      }
    }
  }
}

void main() {
  uint lid = gl_LocalInvocationID.x;
  tx = lid % WX;
  ty = lid / WX;
  uvec3 wg = WG_ID;
  n0 = wg.x * BN;
  m0 = wg.y * BM;
  uint split = wg.z % pc.splits, batch = wg.z / pc.splits;
  abase = pc.off_a + batch * pc.stride_a;
  bbase = pc.off_b + batch * pc.stride_b;
  uint cbase = pc.off_c + batch * pc.stride_c + split * pc.split_stride_c;
  uint kbeg = split * pc.k_len;
  kend = min(pc.K, kbeg + pc.k_len);

  [[unroll]] for (uint i = 0; i < TM * GN; ++i) acc[i] = vec4(0.0);

  uint nk = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;
  if (nk > 0) {
    load_tile(kbeg);
    store_tile(0);
  }
  barrier();
  // (Unrolling this loop by two, so that the buffer index is a constant at each use, made the
  // AiT-Small training step 7% slower on an H200.)
  for (uint kt = 0; kt < nk; ++kt) {
    uint cur = kt & 1u;
    bool more = kt + 1 < nk;
    if (more) load_tile(kbeg + (kt + 1) * BK);
    compute_step(cur);
    if (more) store_tile(cur ^ 1u);
    barrier();
  }

  [[unroll]] for (uint gi = 0; gi < GM; ++gi) {
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      uint m = m0 + gi * (4 * WY) + ty * 4 + i;
      if (m < pc.M) {
        [[unroll]] for (uint gj = 0; gj < GN; ++gj) {
          vec4 v = acc[(gi * 4 + i) * GN + gj];
          [[unroll]] for (uint j = 0; j < 4; ++j) {
            uint n = n0 + gj * (4 * WX) + tx * 4 + j;
            if (n < pc.N) {
              uint idx = cbase + m * pc.ldc + n;
              float r = pc.alpha * v[j];
              if (pc.beta != 0.0) r += pc.beta * c[idx];
              if (HAS_BIAS) r += bias[n];
              c[idx] = r;
            }
          }
        }
      }
    }
  }
}
