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
#include <vector>

#include "vulkan/device.h"
#include "core/rng.h"
#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"

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
                               {"dW dY^T[2304x4096]*X", true, false, 2304, 768, 4096},
                               {"proj X[4096x768]*W^T", false, true, 4096, 768, 768},
                               {"dW fc1 dY^T[3072x4096]*X", true, false, 3072, 768, 4096},
                               {"dW proj dY^T[768x4096]*X", true, false, 768, 768, 4096}};
  struct Config {
    int variant, splits;
  };
  std::vector<Config> configs = {{0, 0}};
  const int ntiles = static_cast<int>(ait::VulkanKernels::matmul_tiles().size());
  const uint32_t shared = vk->context().limits().max_shared_memory;
  for (int v = 1; v <= ntiles; ++v) {
    if (ait::VulkanKernels::matmul_tiles()[v - 1].shared_bytes > shared) continue;
    for (int s : {1, 2, 3, 4, 6, 8}) configs.push_back({v, s});
  }
  if (slow) configs = {{0, 0}, {1, 1}, {2, 1}, {2, 3}, {3, 1}, {4, 1}, {4, 2}, {5, 1}};
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
        vk->set_matmul_variant(configs[ci].variant);
        vk->set_matmul_splits(configs[ci].splits);
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
    // One line per tile: GFLOP/s by split count; the largest error.
    std::printf("\n%s  M %d N %d K %d   auto: %.1f GFLOP/s\n%-22s", sh.what, M, N, K, best[0], "tile");
    std::vector<int> split_cols;
    for (const Config& cf : configs)
      if (cf.variant > 0 && std::find(split_cols.begin(), split_cols.end(), cf.splits) == split_cols.end())
        split_cols.push_back(cf.splits);
    std::sort(split_cols.begin(), split_cols.end());
    for (int sp : split_cols) std::printf("  split%-3d", sp);
    std::printf("  max rel err\n");
    size_t bi = 0;
    for (size_t ci = 1; ci < configs.size(); ++ci) {
      if (best[ci] > best[bi]) bi = ci;
      if (configs[ci - 1].variant == configs[ci].variant) continue;  // one line per tile
      std::printf("%d %-20s", configs[ci].variant, ait::VulkanKernels::matmul_tiles()[configs[ci].variant - 1].shader);
      double row_err = 0;
      for (int sp : split_cols) {
        double g = -1;
        for (size_t cj = ci; cj < configs.size() && configs[cj].variant == configs[ci].variant; ++cj)
          if (configs[cj].splits == sp) {
            g = best[cj];
            row_err = std::max(row_err, err[cj]);
          }
        if (g < 0)
          std::printf("  %8s", "-");
        else
          std::printf("  %8.1f", g);
      }
      std::printf("  %.2g\n", row_err);
    }
    std::printf("best: variant %d (%s) splits %d: %.1f GFLOP/s; auto %.1f\n", configs[bi].variant,
                configs[bi].variant ? ait::VulkanKernels::matmul_tiles()[configs[bi].variant - 1].shader : "auto",
                configs[bi].splits, best[bi], best[0]);
  }
  vk->set_matmul_variant(0);
  vk->set_matmul_splits(0);
  return 0;
#endif
}
