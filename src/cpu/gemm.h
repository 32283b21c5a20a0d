// Single-precision GEMM for the CPU backend: cache-blocked, packed panels, register-tiled
// micro-kernel, threaded over the pool in threadpool.h. Work is split over M and N only
// (never over K), so every element of C is summed in the same order whatever the thread
// count: results are bit-identical across thread counts.
#pragma once
#include <cstdint>

namespace ait {

// Row-major C[M,N] = alpha · op(A) · op(B) + beta · C.
// op(A) is [M,K]: A stored [M,K] with row stride lda, or [K,M] when trans_a.
// op(B) is [K,N]: B stored [K,N] with row stride ldb, or [N,K] when trans_b.
// beta == 0 overwrites C (NaN in C does not propagate). M, N or K may be 0.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace ait
