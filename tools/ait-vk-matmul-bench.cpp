// Vulkan matmul tile / split-K sweep at the AiT-Small training shapes: every tile of
// VulkanKernels::matmul_tiles() (by name) and split count side by side in one process (plus the
// automatic choice), with each result checked against the matmul128 tile without split-K. For
// tuning the automatic choice on a GPU; not part of the test suite.
//   AIT_BENCH_VK_DEVICE=vulkan:0 ait-vk-matmul-bench [seconds per measurement, default 0.05]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/rng.h"
#include "vulkan/device.h"
#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"

#ifdef AIT_VULKAN
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Shape {
  const char* what;
  bool ta, tb;
  int M, N, K;
};

// A tile ("" for the automatic choice) and a split-K setting (0 automatic).
struct Config {
  std::string tile;
  int splits;
};

// What one configuration achieved on one shape.
struct Result {
  double gflops = 0, err = 0;
};

constexpr const char* kReferenceTile = "matmul128";

std::vector<Config> configs_for(ait::VulkanKernels& vk, bool slow) {
  if (slow)  // lavapipe: a few, to check the tool runs
    return {{"", 0},
            {"matmul64", 1},
            {"matmul128", 1},
            {"matmul128", 3},
            {"matmul128x64", 1},
            {"matmul128x64t128", 1},
            {"matmul128x64t128", 2},
            {"matmul128x64t128k8", 1}};
  std::vector<Config> configs = {{"", 0}};
  const uint32_t shared = vk.context().limits().max_shared_memory;
  for (const auto& t : ait::VulkanKernels::matmul_tiles()) {
    if (t.shared_bytes() > shared) continue;
    for (int s : {1, 2, 3, 4, 6, 8}) configs.push_back({t.name, s});
  }
  return configs;
}

void set_config(ait::VulkanKernels& vk, const Config& c) {
  vk.set_matmul_tile(c.tile);
  vk.set_matmul_splits(c.splits);
}

// GFLOP/s of the best of `rounds` timings per configuration, and (first round) the largest error
// relative to the reference tile's largest output.
std::vector<Result> measure(ait::VulkanKernels& vk, const Shape& sh, const std::vector<Config>& configs, double min_s) {
  const int M = sh.M, N = sh.N, K = sh.K;
  ait::Kernels& dev = vk;
  ait::BufferPtr a = dev.alloc(size_t(M) * K), b = dev.alloc(size_t(N) * K), c = dev.alloc(size_t(M) * N);
  std::vector<float> ha(size_t(M) * K), hb(size_t(N) * K);
  ait::Rng rng(7);
  for (float& x : ha) x = rng.normal();
  for (float& x : hb) x = rng.normal();
  dev.upload(*a, ha.data(), ha.size());
  dev.upload(*b, hb.data(), hb.size());
  ait::MatmulArgs m;
  m.M = M, m.N = N, m.K = K, m.trans_a = sh.ta, m.trans_b = sh.tb;
  m.lda = sh.ta ? M : K, m.ldb = sh.tb ? K : N, m.ldc = N;
  std::vector<float> ref(size_t(M) * N), got(size_t(M) * N);
  set_config(vk, {kReferenceTile, 1});
  dev.matmul(*a, *b, *c, m);
  dev.download(*c, ref.data(), ref.size());
  double ref_norm = 0;
  for (float x : ref) ref_norm = std::max(ref_norm, double(std::fabs(x)));
  std::vector<Result> res(configs.size());
  for (int round = 0; round < 2; ++round)
    for (size_t ci = 0; ci < configs.size(); ++ci) {
      set_config(vk, configs[ci]);
      dev.matmul(*a, *b, *c, m);
      dev.matmul(*a, *b, *c, m);
      dev.sync();
      if (round == 0) {
        dev.download(*c, got.data(), got.size());
        double e = 0;
        for (size_t i = 0; i < got.size(); ++i) e = std::max(e, double(std::fabs(got[i] - ref[i])));
        res[ci].err = std::isfinite(e) ? e / std::max(ref_norm, 1e-30) : INFINITY;
      }
      int reps = 0;
      auto t0 = Clock::now();
      while (since(t0) < min_s || reps < 10) {
        for (int i = 0; i < 10; ++i) dev.matmul(*a, *b, *c, m);
        dev.sync();
        reps += 10;
      }
      res[ci].gflops = std::max(res[ci].gflops, 2.0 * M * N * K * reps / since(t0) / 1e9);
    }
  return res;
}

// One line per tile: GFLOP/s by split count and the largest error; then the best configuration.
void print_table(const Shape& sh, const std::vector<Config>& configs, const std::vector<Result>& res) {
  std::printf("\n%s  M %d N %d K %d   auto: %.1f GFLOP/s\n%-22s", sh.what, sh.M, sh.N, sh.K, res[0].gflops, "tile");
  std::vector<int> split_cols;
  for (const Config& cf : configs)
    if (!cf.tile.empty() && std::find(split_cols.begin(), split_cols.end(), cf.splits) == split_cols.end())
      split_cols.push_back(cf.splits);
  std::sort(split_cols.begin(), split_cols.end());
  for (int sp : split_cols) std::printf("  split%-3d", sp);
  std::printf("  max rel err\n");
  size_t best = 0;
  for (size_t ci = 1; ci < configs.size(); ++ci) {
    if (res[ci].gflops > res[best].gflops) best = ci;
    if (configs[ci - 1].tile == configs[ci].tile) continue;  // one line per tile
    std::printf("%-22s", configs[ci].tile.c_str());
    double row_err = 0;
    for (int sp : split_cols) {
      double g = -1;
      for (size_t cj = ci; cj < configs.size() && configs[cj].tile == configs[ci].tile; ++cj)
        if (configs[cj].splits == sp) {
          g = res[cj].gflops;
          row_err = std::max(row_err, res[cj].err);
        }
      if (g < 0) std::printf("  %8s", "-");
      else std::printf("  %8.1f", g);
    }
    std::printf("  %.2g\n", row_err);
  }
  std::printf("best: %s splits %d: %.1f GFLOP/s; auto %.1f\n",
              configs[best].tile.empty() ? "auto" : configs[best].tile.c_str(), configs[best].splits, res[best].gflops,
              res[0].gflops);
}
}  // namespace
#endif

int main(int argc, char** argv) {
#ifndef AIT_VULKAN
  (void)argc;
  (void)argv;
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
  const bool slow = dev->name().find("llvmpipe") != std::string::npos;
  std::printf("device: %s\n", dev->name().c_str());
  std::vector<Shape> shapes = {{"qkv X[4096x768]*W^T", false, true, 4096, 2304, 768},
                               {"mlp1 X[4096x768]*W^T", false, true, 4096, 3072, 768},
                               {"mlp2 X[4096x3072]*W^T", false, true, 4096, 768, 3072},
                               {"dX dY[4096x2304]*W", false, false, 4096, 768, 2304},
                               {"dW dY^T[2304x4096]*X", true, false, 2304, 768, 4096},
                               {"proj X[4096x768]*W^T", false, true, 4096, 768, 768},
                               {"dW fc1 dY^T[3072x4096]*X", true, false, 3072, 768, 4096},
                               {"dW proj dY^T[768x4096]*X", true, false, 768, 768, 4096}};
  const std::vector<Config> configs = configs_for(*vk, slow);
  try {
    for (Shape sh : shapes) {
      if (slow) sh.M /= 16;
      print_table(sh, configs, measure(*vk, sh, configs, min_s));
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  set_config(*vk, {"", 0});
  return 0;
#endif
}
