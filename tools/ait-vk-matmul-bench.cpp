// Vulkan matmul tile / split-K sweep at the AiT-Small training shapes: every tile variant and
// split count of VulkanKernels::matmul side by side in one process (plus the automatic choice),
// with each result checked against the 128x128 tile without split-K. For tuning the automatic
// choice on a GPU; not part of the test suite.
//   AIT_BENCH_VK_DEVICE=vulkan:0 ait-vk-matmul-bench [seconds per measurement, default 0.05]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "device.h"
#include "rng.h"
#include "vk_kernels.h"

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

int main(int argc, char** argv) {
#ifndef AIT_VULKAN
  std::printf("built without Vulkan\n");
  return 0;
#else
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // complete lines survive a timeout
  double min_s = argc > 1 ? std::atof(argv[1]) : 0.05;
  const char* spec = std::getenv("AIT_BENCH_VK_DEVICE");
  ait::Kernels* dev = nullptr;
  try {
    dev = ait::select_device(spec ? spec : "vulkan");
  } catch (const std::exception& e) {
    std::printf("no Vulkan device (%s)\n", e.what());
    return 1;
  }
  auto* vk = dynamic_cast<ait::VulkanKernels*>(dev);
  if (!vk) return 1;
  bool slow = dev->name().find("llvmpipe") != std::string::npos;
  std::printf("device: %s\n", dev->name().c_str());
  struct Shape {
    const char* what;
    bool ta, tb;
    int M, N, K;
  };
  std::vector<Shape> shapes = {{"qkv X[4096x768]*W^T", false, true, 4096, 2304, 768},
                               {"mlp1 X[4096x768]*W^T", false, true, 4096, 3072, 768},
                               {"mlp2 X[4096x3072]*W^T", false, true, 4096, 768, 3072},
                               {"dX dY[4096x2304]*W", false, false, 4096, 768, 2304},
                               {"dW dY^T[2304x4096]*X", true, false, 2304, 768, 4096}};
  std::vector<std::pair<int, int>> configs = {{0, 0}};
  for (int v : {2, 3})
    for (int s : {1, 2, 3, 4, 5, 6, 7, 8}) configs.push_back({v, s});
  for (int s : {1, 2, 4}) configs.push_back({1, s});
  if (slow) configs = {{0, 0}, {1, 1}, {2, 1}, {2, 3}, {3, 1}, {3, 2}};
  const int rounds = 2;
  for (Shape sh : shapes) {
    if (slow) sh.M /= 16;
    const int M = sh.M, N = sh.N, K = sh.K;
    ait::BufferPtr a = dev->alloc(size_t(M) * K), b = dev->alloc(size_t(N) * K), c = dev->alloc(size_t(M) * N);
    std::vector<float> ha(size_t(M) * K), hb(size_t(N) * K);
    ait::Rng rng(7);
    for (float& x : ha) x = rng.normal();
    for (float& x : hb) x = rng.normal();
    dev->upload(*a, ha.data(), ha.size());
    dev->upload(*b, hb.data(), hb.size());
    ait::MatmulArgs m;
    m.M = M, m.N = N, m.K = K, m.trans_a = sh.ta, m.trans_b = sh.tb;
    m.lda = sh.ta ? M : K, m.ldb = sh.tb ? K : N, m.ldc = N;
    // Reference: the 128x128 tile, no split-K.
    std::vector<float> ref(size_t(M) * N), got(size_t(M) * N);
    vk->set_matmul_variant(2);
    vk->set_matmul_splits(1);
    dev->matmul(*a, *b, *c, m);
    dev->download(*c, ref.data(), ref.size());
    double ref_norm = 0;
    for (float x : ref) ref_norm = std::max(ref_norm, double(std::fabs(x)));
    std::vector<double> best(configs.size(), 0.0);
    std::vector<double> err(configs.size(), 0.0);
    for (int round = 0; round < rounds; ++round)
      for (size_t ci = 0; ci < configs.size(); ++ci) {
        vk->set_matmul_variant(configs[ci].first);
        vk->set_matmul_splits(configs[ci].second);
        dev->matmul(*a, *b, *c, m);
        dev->matmul(*a, *b, *c, m);
        dev->sync();
        if (round == 0) {
          dev->download(*c, got.data(), got.size());
          double e = 0;
          for (size_t i = 0; i < got.size(); ++i) e = std::max(e, double(std::fabs(got[i] - ref[i])));
          err[ci] = std::isfinite(e) ? e / std::max(ref_norm, 1e-30) : INFINITY;
        }
        int reps = 0;
        auto t0 = Clock::now();
        while (since(t0) < min_s || reps < 10) {
          for (int i = 0; i < 10; ++i) dev->matmul(*a, *b, *c, m);
          dev->sync();
          reps += 10;
        }
        best[ci] = std::max(best[ci], 2.0 * M * N * K * reps / since(t0) / 1e9);
      }
    std::printf("\n%s  M %d N %d K %d\n%-10s %7s %10s %10s\n", sh.what, M, N, K, "variant", "splits", "GFLOP/s",
                "rel err");
    size_t bi = 0;
    for (size_t ci = 0; ci < configs.size(); ++ci) {
      std::printf("%-10d %7d %10.1f %10.2g\n", configs[ci].first, configs[ci].second, best[ci], err[ci]);
      if (best[ci] > best[bi]) bi = ci;
    }
    std::printf("best: variant %d splits %d %.1f GFLOP/s (auto %.1f)\n", configs[bi].first, configs[bi].second,
                best[bi], best[0]);
  }
  vk->set_matmul_variant(0);
  vk->set_matmul_splits(0);
  return 0;
#endif
}
