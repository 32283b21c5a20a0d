// ait-bench: performance sections for the CPU backend.
//
//   ait-bench            run every section
//   ait-bench gemm       run only the named section(s)
//
// Each section is a `void bench_xxx()` registered in kSections below; add new ones there.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gemm.h"
#include "rng.h"
#include "threadpool.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------------------------------
// OpenBLAS, opened at run time only: it is a comparison point, never a build dependency.
// ------------------------------------------------------------------------------------------
struct OpenBlas {
  // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
  using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                           float, float*, int);
  using SetThreadsFn = void (*)(int);
  using CorenameFn = char* (*)();
  SgemmFn sgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
  CorenameFn corename = nullptr;

  bool load() {
    // The environment of this machine pins OpenBLAS to a narrower core type and a small L2,
    // which roughly halves its speed. OpenBLAS reads these when the library is loaded, so
    // clear them (in this process only) before dlopen to compare against its best.
    for (const char* var : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}) {
      const char* v = std::getenv(var);
      std::printf("note: unsetenv(%s) in this process before loading OpenBLAS (was %s%s%s)\n", var,
                  v ? "\"" : "", v ? v : "not set", v ? "\"" : "");
      unsetenv(var);
    }
    void* h = nullptr;
    for (const char* name : {"libopenblas.so.0", "libopenblas.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!h) return false;
    sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
    corename = reinterpret_cast<CorenameFn>(dlsym(h, "openblas_get_corename"));
    return sgemm && set_threads;
  }
};

// ------------------------------------------------------------------------------------------
// GEMM: ours vs OpenBLAS on the transformer's shapes (d_model 768, 4096 tokens).
// ------------------------------------------------------------------------------------------
struct GemmShape {
  const char* what;
  bool ta, tb;
  int M, N, K;
};

void bench_gemm() {
  std::printf("== gemm (row-major C[M,N] = op(A)[M,K] * op(B)[K,N]) ==\n");
  OpenBlas ob;
  const bool have_ob = ob.load();
  if (!have_ob)
    std::printf("OpenBLAS not found (apt-get install libopenblas0) — ours only\n");
  else if (ob.corename)
    std::printf("OpenBLAS core: %s\n", ob.corename());

  const GemmShape shapes[] = {
      {"qkv    X[4096x768]*W[768x2304]", false, false, 4096, 2304, 768},
      {"mlp1   X[4096x768]*W[768x3072]", false, false, 4096, 3072, 768},
      {"mlp2   X[4096x3072]*W[3072x768]", false, false, 4096, 768, 3072},
      {"dX     dY[4096x2304]*W[2304x768]", false, false, 4096, 768, 2304},
      {"dW     dY^T[2304x4096]*X[4096x768]", true, false, 2304, 768, 4096},
      {"linear X[4096x768]*W^T (W 3072x768)", false, true, 4096, 3072, 768},
  };
  const int thread_counts[] = {1, 2};
  const int default_threads = ait::num_threads();
  constexpr int kReps = 8;  // timed runs per config; the best is kept

  std::printf("%-38s %9s %9s %9s %9s %8s\n", "shape (GFLOP/s)", "ours@1", "ours@2", "oblas@1", "oblas@2",
              "ratio@2");
  const auto t_section = Clock::now();
  for (const GemmShape& s : shapes) {
    const int64_t a_rows = s.ta ? s.K : s.M, a_cols = s.ta ? s.M : s.K;
    const int64_t b_rows = s.tb ? s.N : s.K, b_cols = s.tb ? s.K : s.N;
    std::vector<float> A(a_rows * a_cols), B(b_rows * b_cols), C(int64_t(s.M) * s.N);
    ait::Rng rng(42);
    for (float& x : A) x = rng.uniform(-1.0f, 1.0f);
    for (float& x : B) x = rng.uniform(-1.0f, 1.0f);
    const double flops = 2.0 * s.M * s.N * s.K;

    auto ours = [&] {
      ait::sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), a_cols, B.data(), b_cols, 0.0f, C.data(), s.N);
    };
    auto theirs = [&] {
      // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
      ob.sgemm(101, s.ta ? 112 : 111, s.tb ? 112 : 111, s.M, s.N, s.K, 1.0f, A.data(), int(a_cols), B.data(),
               int(b_cols), 0.0f, C.data(), s.N);
    };
    // Per thread count: warm-up (page faults, thread start-up, packing buffers), then timed
    // runs alternating ours / OpenBLAS (and which goes first) so that slow drift of the shared
    // machine hits both alike. The thread count stays fixed meanwhile: switching it rebuilds
    // the pool, whose fresh threads would have to fault in new packing buffers.
    double best_ours[2] = {1e30, 1e30}, best_ob[2] = {1e30, 1e30};
    for (int ti = 0; ti < 2; ++ti) {
      ait::set_num_threads(thread_counts[ti]);
      if (have_ob) ob.set_threads(thread_counts[ti]);
      ours();
      if (have_ob) theirs();
      for (int r = 0; r < kReps; ++r) {
        for (int turn = 0; turn < 2; ++turn) {
          const bool run_ours = (turn == 0) == (r % 2 == 0);
          if (!run_ours && !have_ob) continue;
          const auto t0 = Clock::now();
          run_ours ? ours() : theirs();
          double& best = run_ours ? best_ours[ti] : best_ob[ti];
          best = std::min(best, seconds_since(t0));
        }
      }
    }
    auto gf = [&](double t) { return flops / t * 1e-9; };
    if (have_ob)
      std::printf("%-38s %9.1f %9.1f %9.1f %9.1f %8.2f\n", s.what, gf(best_ours[0]), gf(best_ours[1]),
                  gf(best_ob[0]), gf(best_ob[1]), best_ob[1] / best_ours[1]);
    else
      std::printf("%-38s %9.1f %9.1f %9s %9s %8s\n", s.what, gf(best_ours[0]), gf(best_ours[1]), "-", "-", "-");
    std::fflush(stdout);
  }
  ait::set_num_threads(default_threads);
  std::printf("(best of %d runs after warm-up; ratio = ours / OpenBLAS at 2 threads; %.1f s)\n\n", kReps,
              seconds_since(t_section));
}

// ------------------------------------------------------------------------------------------
// Section registry: add further sections (attention, layernorm, training step, ...) here.
// ------------------------------------------------------------------------------------------
struct Section {
  const char* name;
  void (*run)();
};
const Section kSections[] = {
    {"gemm", bench_gemm},
    // {"attention", bench_attention},
};

}  // namespace

int main(int argc, char** argv) {
  bool ran = false;
  for (const Section& s : kSections) {
    bool selected = argc < 2;
    for (int i = 1; i < argc; ++i) selected |= std::strcmp(argv[i], s.name) == 0;
    if (selected) {
      s.run();
      ran = true;
    }
  }
  if (!ran) {
    std::fprintf(stderr, "usage: %s [section...]; sections:", argv[0]);
    for (const Section& s : kSections) std::fprintf(stderr, " %s", s.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  return 0;
}
