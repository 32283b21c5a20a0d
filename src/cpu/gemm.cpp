// Blocked single-precision GEMM (GotoBLAS / BLIS structure).
//
//   for jc over N in NC-wide panels          (packed B panel KC x NC: L3)
//     for pc over K in KC-deep blocks
//       pack op(B)[pc, jc] -> Bp
//       for ic over M in MC-tall blocks      (packed A block MC x KC: L2)
//         pack op(A)[ic, pc] -> Ap
//         for jr over NC in NR steps         (one B micro-panel KC x NR, reused MC/MR times)
//           for ir over MC in MR steps
//             micro-kernel: MR x NR tile of C (+)= Ap[ir] * Bp[jr]
//
// Packing absorbs the four transpose combinations and the strides, and zero-pads the last
// micro-panels, so the micro-kernel always computes a full MR x NR tile and only the store to
// C is clipped. Every element of C is computed by the same instruction sequence whether its
// tile is full or clipped, and the K blocking depends only on K, so the result does not depend
// on how C is split between threads: results are bit-identical for any thread count.
#include "cpu/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cpu/threadpool.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace ait {
namespace {

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Each computes acc = sum_k Ap[k][0..MR) x Bp[k][0..NR) (an outer product per k)
// and then C[0..m)[0..n) = alpha * acc + beta * C (beta == 0: C = alpha * acc, C not read).
// Ap is MR floats per k, Bp is NR floats per k, both 64-byte aligned.
// ---------------------------------------------------------------------------------------------

#if defined(__AVX512F__)

// 14 x 32: 28 zmm accumulators + 2 for the B row + 1 for the broadcast A value = 31 of the 32
// registers, so nothing spills. 28 independent FMA chains cover the FMA latency on two 512-bit
// FMA pipes, and each k step needs only 2 vector loads + 14 broadcasts for 28 FMAs.
constexpr int MR = 14, NR = 32;

inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int m,
                         int n, float alpha, float beta) {
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

    // Start pulling in the C tile now; it is only touched after the k loop.
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i)
    if (i < m) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }

  // Column masks clip a partial tile; full tiles use all-ones masks, i.e. the same code.
  const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(n >= 32 ? 0xFFFF : n <= 16 ? 0 : (1u << (n - 16)) - 1);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* ci = c + i * ldc;
    __m512 r0, r1;
    if (beta == 0.0f) {
      r0 = _mm512_mul_ps(va, acc[i][0]);
      r1 = _mm512_mul_ps(va, acc[i][1]);
    } else {
      r0 = _mm512_fmadd_ps(va, acc[i][0], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, ci)));
      r1 = _mm512_fmadd_ps(va, acc[i][1], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16)));
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

#elif defined(__AVX2__) && defined(__FMA__)

// 6 x 16: 12 ymm accumulators + 2 for the B row + 1 broadcast = 15 of the 16 registers.
constexpr int MR = 6, NR = 16;

// The C update for one full tile; clipped tiles run it on a scratch copy, so both take the
// same arithmetic path.
inline void update_tile(const __m256 (&acc)[MR][2], float* c, int64_t ldc, float alpha, float beta) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int h = 0; h < 2; ++h) {
      const __m256 r = beta == 0.0f ? _mm256_mul_ps(va, acc[i][h])
                                    : _mm256_fmadd_ps(va, acc[i][h], _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8 * h)));
      _mm256_storeu_ps(ci + 8 * h, r);
    }
  }
}

inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int m,
                         int n, float alpha, float beta) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
  if (m == MR && n == NR) {
    update_tile(acc, c, ldc, alpha, beta);
    return;
  }
  alignas(32) float tmp[MR * NR];
  for (int i = 0; i < m; ++i) std::memcpy(tmp + i * NR, c + i * ldc, sizeof(float) * n);
  update_tile(acc, tmp, NR, alpha, beta);
  for (int i = 0; i < m; ++i) std::memcpy(c + i * ldc, tmp + i * NR, sizeof(float) * n);
}

#else

// Portable fallback: fixed-size loops the compiler can keep in vector registers (SSE2 at
// baseline x86-64: 4 x 8 = 8 accumulator registers).
constexpr int MR = 4, NR = 8;

inline void update_tile(const float (&acc)[MR][NR], float* c, int64_t ldc, float alpha, float beta) {
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, int m,
                         int n, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    a += MR;
    b += NR;
  }
  if (m == MR && n == NR) {
    update_tile(acc, c, ldc, alpha, beta);
    return;
  }
  float tmp[MR * NR];
  for (int i = 0; i < m; ++i) std::memcpy(tmp + i * NR, c + i * ldc, sizeof(float) * n);
  update_tile(acc, tmp, NR, alpha, beta);
  for (int i = 0; i < m; ++i) std::memcpy(c + i * ldc, tmp + i * NR, sizeof(float) * n);
}

#endif

// ---------------------------------------------------------------------------------------------
// Block sizes (tuned on Zen 5: 48 KiB L1d and 1 MiB L2 per core, shared L3).
//   KC: deep K blocks, because every K block costs one read-modify-write pass over C, and those
//       passes (C is rarely still cached) cost more than keeping the B micro-panel in L1 would
//       save. The KC x NR B micro-panel (192 KiB) and the MC x KC A block (504 KiB) both live
//       in L2, which feeds the kernel fast enough.
//   MC: keeps the A block plus the current B micro-panel inside L2.
//   NC: bounds the packed B panel (KC x NC, up to 12 MiB per thread, streamed from L3).
// ---------------------------------------------------------------------------------------------
constexpr int64_t KC = 1536;
constexpr int64_t MC = MR * (84 / MR);
constexpr int64_t NC = NR * (2048 / NR);

// Problems below this many multiply-adds skip packing and threading entirely.
constexpr int64_t kSmallMacs = 32 * 1024;
// Minimum multiply-adds per thread before another thread is woken (~ tens of microseconds).
constexpr int64_t kMacsPerThread = int64_t(1) << 22;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Per-thread packing buffer, 64-byte aligned, grown on demand and reused across calls.
struct PackBuffer {
  float* ptr = nullptr;
  size_t cap = 0;
  ~PackBuffer() { std::free(ptr); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(ptr);
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!ptr) throw std::bad_alloc();
      cap = n;
    }
    return ptr;
  }
};

// Two packing primitives cover all four transpose cases. Both write R-float rows per k:
//   pack_transpose: source row r (r < rows) is k-contiguous at src + r*ld;
//                   dst[k*R + r] = src[r*ld + k]  (A not transposed, B transposed)
//   pack_copy:      for each k, `cols` contiguous floats at src + k*ld;
//                   dst[k*R + s] = src[k*ld + s]  (A transposed, B not transposed)
// Lanes r >= rows (s >= cols) are zero-filled.
#if defined(__AVX512F__)

// One step of an in-register 16 x 16 transpose: rows i and i+S swap the off-diagonal S-wide
// halves of every 2S-wide column chunk. Steps S = 8, 4, 2, 1 transpose the whole block.
// (vpermt2ps rather than shuffles: GCC 12's shuffle intrinsics trip -Wmaybe-uninitialized.)
template <int S>
inline void transpose_step(__m512 (&r)[16]) {
  alignas(64) int32_t lo[16], hi[16];
  for (int c = 0; c < 16; ++c) {
    lo[c] = (c & S) ? 16 + c - S : c;  // row i keeps its own chunk, takes row i+S's
    hi[c] = (c & S) ? 16 + c : c + S;  // row i+S takes row i's other chunk, keeps its own
  }
  const __m512i ilo = _mm512_load_si512(lo), ihi = _mm512_load_si512(hi);
  for (int i = 0; i < 16; ++i) {
    if (i & S) continue;
    const __m512 x = r[i], y = r[i + S];
    r[i] = _mm512_permutex2var_ps(x, ilo, y);
    r[i + S] = _mm512_permutex2var_ps(x, ihi, y);
  }
}

inline void transpose16(__m512 (&r)[16]) {
  transpose_step<8>(r);
  transpose_step<4>(r);
  transpose_step<2>(r);
  transpose_step<1>(r);
}

inline __mmask16 lane_mask(int64_t n) { return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1); }

template <int R>
void pack_transpose(const float* src, int64_t ld, int rows, int64_t kc, float* dst) {
  for (int rb = 0; rb < R; rb += 16) {
    const __mmask16 smask = lane_mask(R - rb);
    const int nrows = std::max(0, std::min(16, rows - rb));
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int64_t kk = std::min<int64_t>(16, kc - k0);
      const __mmask16 lmask = lane_mask(kk);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < nrows ? _mm512_maskz_loadu_ps(lmask, src + (rb + i) * ld + k0) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t k = 0; k < kk; ++k) _mm512_mask_storeu_ps(dst + (k0 + k) * R + rb, smask, r[k]);
    }
  }
}

template <int R>
void pack_copy(const float* src, int64_t ld, int cols, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k, src += ld, dst += R)
    for (int sb = 0; sb < R; sb += 16)
      _mm512_mask_storeu_ps(dst + sb, lane_mask(R - sb), _mm512_maskz_loadu_ps(lane_mask(cols - sb), src + sb));
}

#else

template <int R>
void pack_transpose(const float* src, int64_t ld, int rows, int64_t kc, float* dst) {
  // Read each source row contiguously, write with stride R.
  for (int r = 0; r < rows; ++r)
    for (int64_t k = 0; k < kc; ++k) dst[k * R + r] = src[r * ld + k];
  for (int r = rows; r < R; ++r)
    for (int64_t k = 0; k < kc; ++k) dst[k * R + r] = 0.0f;
}

template <int R>
void pack_copy(const float* src, int64_t ld, int cols, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k, src += ld, dst += R) {
    for (int s = 0; s < cols; ++s) dst[s] = src[s];
    for (int s = cols; s < R; ++s) dst[s] = 0.0f;
  }
}

#endif

// Pack rows [i0, i0+mc) x depth [k0, k0+kc) of an operand into R-row micro-panels: panel p
// holds X(i0 + p*R + r, k0 + k) at dst[p*R*kc + k*R + r], zero for rows past mc. Element (i, k)
// is stored at X[k*ld + i] when k_major, else at X[i*ld + k]. op(A) packs its rows (k_major =
// trans_a), op(B) its columns (k_major = !trans_b).
template <int R>
void pack_panels(bool k_major, const float* X, int64_t ld, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  if (k_major) {
    // Walk k outermost so each stored row is read once, in order, rather than once per
    // micro-panel (large ld: one page per row).
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = X + (k0 + k) * ld + i0;
      for (int64_t p = 0; p < mc; p += R)
        pack_copy<R>(src + p, 0, static_cast<int>(std::min<int64_t>(R, mc - p)), 1, dst + p * kc + k * R);
    }
    return;
  }
  for (int64_t p = 0; p < mc; p += R)
    pack_transpose<R>(X + (i0 + p) * ld + k0, ld, static_cast<int>(std::min<int64_t>(R, mc - p)), kc, dst + p * kc);
}

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
};

// Compute the block C[m0:m1, n0:n1] (all of K) on the calling thread.
void gemm_region(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  thread_local PackBuffer abuf, bbuf;
  // K blocks of equal depth (<= KC), chosen from K alone so every thread sums in the same order.
  const int64_t kstep = ceil_div(p.K, ceil_div(p.K, KC));
  // Column panels of equal width (<= NC, whole micro-panels), so no panel is a thin remainder.
  const int64_t nstep = round_up(ceil_div(n1 - n0, ceil_div(n1 - n0, NC)), NR);
  float* Bp = bbuf.get(static_cast<size_t>(kstep * nstep));
  float* Ap = abuf.get(static_cast<size_t>(kstep * round_up(std::min(MC, m1 - m0), MR)));

  for (int64_t jc = n0; jc < n1; jc += nstep) {
    const int64_t nc = std::min(nstep, n1 - jc);
    for (int64_t pc = 0; pc < p.K; pc += kstep) {
      const int64_t kc = std::min(kstep, p.K - pc);
      // beta applies on the first K block only; later blocks accumulate onto C.
      const float beta = pc == 0 ? p.beta : 1.0f;
      pack_panels<NR>(!p.tb, p.B, p.ldb, jc, nc, pc, kc, Bp);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = std::min(MC, m1 - ic);
        pack_panels<MR>(p.ta, p.A, p.lda, ic, mc, pc, kc, Ap);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int n = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          const float* bp = Bp + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int m = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            micro_kernel(kc, Ap + ir * kc, bp, p.C + (ic + ir) * p.ldc + jc + jr, p.ldc, m, n, p.alpha, beta);
          }
        }
      }
    }
  }
}

// Unpacked path for tiny products: no buffers, no threads. Sums over k in order, per element.
void gemm_small(const Problem& p) {
  constexpr int64_t JB = 64;
  float acc[JB];
  for (int64_t i = 0; i < p.M; ++i) {
    for (int64_t j0 = 0; j0 < p.N; j0 += JB) {
      const int64_t nb = std::min(JB, p.N - j0);
      for (int64_t j = 0; j < nb; ++j) acc[j] = 0.0f;
      for (int64_t k = 0; k < p.K; ++k) {
        const float a = p.ta ? p.A[k * p.lda + i] : p.A[i * p.lda + k];
        if (p.tb) {
          const float* b = p.B + j0 * p.ldb + k;
          for (int64_t j = 0; j < nb; ++j) acc[j] += a * b[j * p.ldb];
        } else {
          const float* b = p.B + k * p.ldb + j0;
          for (int64_t j = 0; j < nb; ++j) acc[j] += a * b[j];
        }
      }
      float* c = p.C + i * p.ldc + j0;
      if (p.beta == 0.0f) {
        for (int64_t j = 0; j < nb; ++j) c[j] = p.alpha * acc[j];
      } else {
        for (int64_t j = 0; j < nb; ++j) c[j] = p.alpha * acc[j] + p.beta * c[j];
      }
    }
  }
}

// C = beta * C (K == 0 or alpha == 0: A and B are not read).
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      std::fill(c, c + N, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const Problem p{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  const int64_t macs = M * N * K;
  if (macs < kSmallMacs) {
    gemm_small(p);
    return;
  }

  // Static 2-D split of C into tm x tn rectangles on MR / NR boundaries (never over K). Each
  // thread packs the A rows and B columns of its own rectangle, so pick the factorisation of
  // the thread count that minimises the largest rectangle's multiply-adds plus its packing
  // (weighted: a packed element costs about as much as kPackWeight multiply-adds). Ties go to
  // splitting M.
  constexpr int64_t kPackWeight = 16;
  const int64_t mt = ceil_div(M, MR), nt = ceil_div(N, NR);
  const int64_t want = std::max<int64_t>(1, std::min<int64_t>(num_threads(), macs / kMacsPerThread));
  const int threads = static_cast<int>(std::min<int64_t>(want, mt * nt));
  if (threads == 1) {
    gemm_region(p, 0, M, 0, N);
    return;
  }
  int best_tm = 1;
  int64_t best_cost = -1;
  for (int tm = threads; tm >= 1; --tm) {
    if (threads % tm) continue;
    const int tn = threads / tm;
    const int64_t rows = ceil_div(mt, tm) * MR, cols = ceil_div(nt, tn) * NR;
    const int64_t cost = rows * cols + kPackWeight * (rows * ceil_div(cols, NC) + cols);  // per unit of K
    if (best_cost < 0 || cost < best_cost) best_cost = cost, best_tm = tm;
  }
  const int tm = best_tm, tn = threads / tm;
  pool().run([&](int task, int) {
    if (task >= threads) return;
    const int64_t ti = task / tn, tj = task % tn;
    const int64_t m0 = std::min(M, mt * ti / tm * MR), m1 = std::min(M, mt * (ti + 1) / tm * MR);
    const int64_t n0 = std::min(N, nt * tj / tn * NR), n1 = std::min(N, nt * (tj + 1) / tn * NR);
    if (m0 < m1 && n0 < n1) gemm_region(p, m0, m1, n0, n1);
  });
}

}  // namespace ait
