// The Vulkan matmul against a host double-precision product (suite VulkanMatmulTest): every tile
// of VulkanKernels::matmul_tiles() that fits the device's shared memory, all four transpose
// combinations, sizes that are not a multiple of the tile (1, 3, 13, 127, one past a tile) with
// both the scalar and the vec4 load paths, split-K (forced, automatic, fewer pieces than asked
// for, K = 0), batch strides (including a B shared by the batch), offsets, padded leading
// dimensions, alpha, beta (beta = 0 must overwrite NaN in C) and the fused bias.
//
// Metric, per output element: |v - r| <= (K + 4) * 2^-23 * s, where r is the product in double
// precision and s = |alpha| * sum_k |a_mk b_kn| + |beta c_mn| + |bias_n| the magnitude the
// float32 result is built from: the worst-case rounding of a K-term float32 sum in any order
// (at most K units of 2^-24 times s) plus the alpha, beta and bias steps, with a factor of 2 to
// spare. An indexing mistake gives errors of the order of s. Every element of C outside the
// M x N blocks (the leading offset, row padding, a trailing guard) must come back bit-equal.
// The worst error / bound per tile is printed at the end ("vulkan matmul parity").
//
// Shapes are small: on lavapipe a test's time goes to compiling pipelines (one per tile,
// transposes, vec4 flags and bias), so each test compiles as few as its coverage needs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/kernels.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "testutil.h"
#include "vulkan/device.h"
#include "vulkan_fixture.h"
#ifdef AIT_VULKAN
#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"
#endif

using namespace ait;

#ifdef AIT_VULKAN
namespace {

// Validation must be requested before the first Vulkan instance is created.
const bool g_validation_env = [] {
  setenv("AIT_VK_VALIDATION", "1", /*overwrite=*/0);
  return true;
}();

constexpr size_t kGuard = 37;
constexpr float kSentinel = -1234.5f;

// Worst error / bound per tile over all cases.
std::map<std::string, double>& parity() {
  static std::map<std::string, double> m;
  return m;
}
class ParityPrinter : public ::testing::Environment {
public:
  void TearDown() override {
    if (parity().empty()) return;
    printf("\nvulkan matmul parity (largest error / rounding bound per tile; must be <= 1):\n");
    for (auto& [tile, worst] : parity()) printf("  %-28s %.3g\n", tile.c_str(), worst);
  }
};
[[maybe_unused]] ::testing::Environment* const g_printer = ::testing::AddGlobalTestEnvironment(new ParityPrinter);

// One product: C = alpha op(A) op(B) + beta C (+ bias), batch items at the given strides.
struct Case {
  int64_t batch, M, N, K;
  bool ta = false, tb = false;
  bool shared_b = false;  // B's batch stride 0
  int64_t pad = 0;        // leading-dimension padding of A, B and C
  int64_t off = 0;        // element offset of A and B; C's is off + 3
  float alpha = 1.0f, beta = 0.0f;
  bool bias = false;
};

Case shape(int64_t batch, int64_t M, int64_t N, int64_t K, int transposes) {
  Case c{batch, M, N, K};
  c.ta = transposes & 1;
  c.tb = transposes & 2;
  return c;
}

std::string describe(const Case& t, const std::string& tile, int splits) {
  char buf[256];
  snprintf(buf, sizeof buf, "tile %s splits %d: batch %lld M %lld N %lld K %lld%s%s%s%s pad %lld off %lld",
           tile.c_str(), splits, (long long)t.batch, (long long)t.M, (long long)t.N, (long long)t.K, t.ta ? " Aᵀ" : "",
           t.tb ? " Bᵀ" : "", t.shared_b ? " shared-B" : "", t.bias ? " bias" : "", (long long)t.pad, (long long)t.off);
  return std::string(buf) + " alpha " + std::to_string(t.alpha) + " beta " + std::to_string(t.beta);
}

MatmulArgs args_for(const Case& t) {
  MatmulArgs g;
  g.batch = t.batch;
  g.M = t.M;
  g.N = t.N;
  g.K = t.K;
  g.trans_a = t.ta;
  g.trans_b = t.tb;
  g.lda = (t.ta ? t.M : t.K) + t.pad;
  g.ldb = (t.tb ? t.K : t.N) + t.pad;
  g.ldc = t.N + t.pad;
  g.stride_a = (t.ta ? t.K : t.M) * g.lda;
  g.stride_b = t.shared_b ? 0 : (t.tb ? t.N : t.K) * g.ldb;
  g.stride_c = t.M * g.ldc;
  g.off_a = g.off_b = t.off;
  g.off_c = t.off + 3;
  g.alpha = t.alpha;
  g.beta = t.beta;
  return g;
}

std::vector<float> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (float& x : v) x = r.normal();
  return v;
}

struct HostOperands {
  std::vector<float> a, b, c, bias;
};

// Element (m, k) of op(A) and (k, n) of op(B) for batch item bi.
float a_at(const HostOperands& h, const MatmulArgs& g, int64_t bi, int64_t m, int64_t k) {
  return h.a[g.off_a + bi * g.stride_a + (g.trans_a ? k * g.lda + m : m * g.lda + k)];
}
float b_at(const HostOperands& h, const MatmulArgs& g, int64_t bi, int64_t k, int64_t n) {
  return h.b[g.off_b + bi * g.stride_b + (g.trans_b ? n * g.ldb + k : k * g.ldb + n)];
}

// Compares the device's C with the double-precision product; returns the worst error / bound.
double check_product(const HostOperands& h, const MatmulArgs& g, const std::vector<float>& got,
                     const std::string& ctx) {
  std::vector<bool> in_block(got.size(), false);
  const double bound_per_s = (g.K + 4) * std::ldexp(1.0, -23);
  double worst = 0;
  size_t bad = 0, not_finite = 0;
  for (int64_t bi = 0; bi < g.batch; ++bi)
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) {
        double sum = 0, mag = 0;
        for (int64_t k = 0; k < g.K; ++k) {
          double p = double(a_at(h, g, bi, m, k)) * double(b_at(h, g, bi, k, n));
          sum += p;
          mag += std::fabs(p);
        }
        const size_t idx = static_cast<size_t>(g.off_c + bi * g.stride_c + m * g.ldc + n);
        double want = g.alpha * sum, scale = std::fabs(g.alpha) * mag;
        if (g.beta != 0.0f) {
          want += double(g.beta) * h.c[idx];
          scale += std::fabs(double(g.beta) * h.c[idx]);
        }
        if (g.bias) {
          want += h.bias[n];
          scale += std::fabs(h.bias[n]);
        }
        in_block[idx] = true;
        if (!std::isfinite(got[idx])) {
          ++not_finite;
          continue;
        }
        const double ratio = std::fabs(got[idx] - want) / std::max(bound_per_s * scale, 1e-30);
        worst = std::max(worst, ratio);
        if (ratio > 1.0 && bad++ < 3)
          ADD_FAILURE() << ctx << ": C[" << bi << "][" << m << "][" << n << "] = " << got[idx] << ", want " << want
                        << " (bound " << bound_per_s * scale << ")";
      }
  EXPECT_EQ(not_finite, 0u) << ctx << ": NaN/inf in the output";
  EXPECT_EQ(bad, 0u) << ctx << ": elements past the rounding bound";
  size_t touched = 0;
  for (size_t i = 0; i < got.size(); ++i) touched += !in_block[i] && std::memcmp(&got[i], &h.c[i], 4) != 0;
  EXPECT_EQ(touched, 0u) << ctx << ": elements outside the M x N blocks were written";
  return worst;
}

// Runs one product on the device with `tile` ("" automatic) and `splits` (0 automatic) and checks
// it against the host; records the worst error under the tile that ran.
void run_case(VulkanKernels& vk, const Case& t, const std::string& tile, int splits, uint64_t seed) {
  vk.set_matmul_tile(tile);
  vk.set_matmul_splits(splits);
  MatmulArgs g = args_for(t);
  const int64_t b_items = t.shared_b ? 1 : t.batch;
  HostOperands h;
  h.a = randn(static_cast<size_t>(g.off_a + t.batch * g.stride_a), seed);
  h.b = randn(static_cast<size_t>(g.off_b + b_items * (t.tb ? t.N : t.K) * g.ldb), seed + 1);
  h.c = randn(static_cast<size_t>(g.off_c + t.batch * g.stride_c), seed + 2);
  h.bias = randn(static_cast<size_t>(t.N), seed + 3);
  if (t.beta == 0.0f)
    for (size_t i = static_cast<size_t>(g.off_c); i < h.c.size(); i += 3) h.c[i] = NAN;  // must not be read
  for (int64_t i = 0; i < g.off_c; ++i) h.c[static_cast<size_t>(i)] = kSentinel;
  h.c.insert(h.c.end(), kGuard, kSentinel);
  auto upload = [&](const std::vector<float>& v) {
    BufferPtr buf = vk.alloc(std::max<size_t>(v.size(), 1));
    if (!v.empty()) vk.upload(*buf, v.data(), v.size());
    return buf;
  };
  BufferPtr a = upload(h.a), b = upload(h.b), c = upload(h.c), bias = upload(h.bias);
  if (t.bias) g.bias = bias.get();
  vk.matmul(*a, *b, *c, g);
  std::vector<float> got(h.c.size());
  vk.download(*c, got.data(), got.size());
  const std::string ran =
      vk.choose_matmul_tile(static_cast<uint64_t>(t.M), static_cast<uint64_t>(t.N), static_cast<uint64_t>(t.batch))
          .name;
  double worst = check_product(h, g, got, describe(t, ran, splits));
  double& w = parity()[ran + (splits > 1 ? " split-K" : "")];
  w = std::max(w, worst);
}

class VulkanMatmulTest : public test::VulkanKernelsTest {};

}  // namespace

// The table itself: unique names found by name, and geometry the shader can run (per-thread
// blocks of whole vec4s, tiles covered exactly by the threads, K steps that divide the split-K
// piece length of 32).
TEST(VulkanMatmulTiles, TableIsConsistent) {
  std::set<std::string> names;
  for (const auto& t : VulkanKernels::matmul_tiles()) {
    SCOPED_TRACE(t.name);
    EXPECT_TRUE(names.insert(t.name).second) << "duplicate tile name";
    EXPECT_EQ(&VulkanKernels::matmul_tile(t.name), &t);
    EXPECT_EQ(t.thread_m % 4, 0u);
    EXPECT_EQ(t.thread_n % 4, 0u);
    EXPECT_EQ(t.tile_m % t.thread_m, 0u);
    EXPECT_EQ(t.tile_n % t.thread_n, 0u);
    EXPECT_EQ(uint64_t(t.threads()) * t.thread_m * t.thread_n, uint64_t(t.tile_m) * t.tile_n);
    EXPECT_TRUE(t.tile_k == 4 || t.tile_k == 8 || t.tile_k == 16 || t.tile_k == 32) << t.tile_k;
    EXPECT_LE(t.threads(), 256u);  // Vulkan guarantees 128; every device ait targets offers 256
    EXPECT_EQ(t.shared_bytes(), 2u * t.tile_k * (t.tile_m + t.tile_n) * 4u);
  }
  // Two entries against their hand-computed geometry.
  const auto& large = VulkanKernels::matmul_tile("matmul128x64t128");
  EXPECT_EQ(large.threads(), 128u);
  EXPECT_EQ(large.threads_n(), 8u);
  EXPECT_EQ(large.shared_bytes(), 24576u);
  EXPECT_EQ(VulkanKernels::matmul_tile("matmul64").threads(), 256u);
  std::string e = test::error_of([] { VulkanKernels::matmul_tile("matmul65"); });
  EXPECT_NE(e.find("no tile named 'matmul65'"), std::string::npos) << e;
  EXPECT_NE(e.find("matmul128x64t128k8"), std::string::npos) << "the message lists the tiles: " << e;
}

TEST_F(VulkanMatmulTest, UnknownTileNamesAreErrors) {
  std::string e = test::error_of([&] { vk->set_matmul_tile("nope"); });
  EXPECT_NE(e.find("no tile named 'nope'"), std::string::npos) << e;
  // AIT_VK_MATMUL_LARGE_TILE is read when a backend is made: a bad name is an error naming it.
  setenv("AIT_VK_MATMUL_LARGE_TILE", "matmul999", 1);
  e = test::error_of([&] { VulkanKernels other(&vk->context()); });
  EXPECT_NE(e.find("AIT_VK_MATMUL_LARGE_TILE=matmul999"), std::string::npos) << e;
  EXPECT_NE(e.find("matmul64x64t64"), std::string::npos) << "the message lists the tiles: " << e;
  setenv("AIT_VK_MATMUL_LARGE_TILE", "matmul64x64t64", 1);
  VulkanKernels other(&vk->context());
  if (vk->context().info().type != "cpu") {
    EXPECT_STREQ(other.choose_matmul_tile(4096, 4096, 1).name, "matmul64x64t64");
  }
  unsetenv("AIT_VK_MATMUL_LARGE_TILE");
}

// The automatic choice as documented at VulkanKernels::choose_matmul_tile.
TEST_F(VulkanMatmulTest, AutomaticTileChoice) {
  const bool gpu = vk->context().info().type != "cpu";
  EXPECT_STREQ(vk->choose_matmul_tile(13, 200, 1).name, "matmul64");
  EXPECT_STREQ(vk->choose_matmul_tile(127, 4096, 8).name, "matmul64");
  // 8 x 8 workgroups of 128 x 128.
  EXPECT_STREQ(vk->choose_matmul_tile(1024, 1024, 1).name,
               gpu ? (vk->context().limits().max_shared_memory >= 24576 ? "matmul128x64t128" : "matmul128x64t128k8")
                   : "matmul128");
  if (!gpu) {
    EXPECT_STREQ(vk->choose_matmul_tile(1024, 896, 1).name, "matmul64");  // 56 workgroups of 128 x 128
  }
  vk->set_matmul_tile("matmul64x128t128");
  EXPECT_STREQ(vk->choose_matmul_tile(1, 1, 1).name, "matmul64x128t128");
}

// One test per tile of the table (skipped where the device's shared memory cannot hold it), all
// four transpose combinations: edge sizes and a product one past a tile on the scalar load path
// (no contiguous extent a multiple of 4), forced split-K, and batch strides, offsets, padding,
// alpha and beta. The vec4 load path and the fused bias run one transpose combination per tile,
// in turn through the table (all four run on the automatic tile in BatchOffsetsAlphaBeta).
class VulkanMatmulTileTest : public VulkanMatmulTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(VulkanMatmulTileTest, EdgeSizesTransposesSplitK) {
  const auto& tiles = VulkanKernels::matmul_tiles();
  const auto& tile = VulkanKernels::matmul_tile(GetParam());
  if (tile.shared_bytes() > vk->context().limits().max_shared_memory)
    GTEST_SKIP() << tile.name << " needs more shared memory than the device has";
  const int64_t tm = tile.tile_m, tn = tile.tile_n, tk = tile.tile_k;
  const std::string name = tile.name;
  uint64_t seed = 100 * static_cast<uint64_t>(&tile - tiles.data());
  for (int tr = 0; tr < 4; ++tr) {
    for (int64_t s : {1, 3, 13, 127}) run_case(*vk, shape(1, s, s, s, tr), name, 1, ++seed);
    run_case(*vk, shape(1, tm + 1, tn + 3, 2 * tk + 5, tr), name, 1, ++seed);  // one past a tile
    Case split = shape(2, 13, 127, 201, tr);
    split.pad = 2;
    split.off = 3;
    split.alpha = 0.5f;
    run_case(*vk, split, name, 3, ++seed);
    Case batched = shape(2, 70, 131, 45, tr);
    batched.pad = 2;
    batched.off = 7;
    batched.alpha = 2.0f;
    batched.beta = 1.0f;
    run_case(*vk, batched, name, 1, ++seed);
  }
  const int tr = static_cast<int>(&tile - tiles.data()) % 4;
  run_case(*vk, shape(2, tm + 4, tn + 8, 3 * tk + 4, tr), name, 1, ++seed);  // vec4 loads
  Case biased = shape(1, tm + 5, tn + 1, 19, tr);
  biased.beta = -0.5f;
  biased.bias = true;
  run_case(*vk, biased, name, 1, ++seed);
}

INSTANTIATE_TEST_SUITE_P(Tiles, VulkanMatmulTileTest, ::testing::ValuesIn([] {
                           std::vector<std::string> names;
                           for (const auto& t : VulkanKernels::matmul_tiles()) names.push_back(t.name);
                           return names;
                         }()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// Split-K on the automatic tile, all four transpose combinations: bias and beta applied by the
// reduction, fewer pieces than asked for, the automatic split of a long K, a long K kept whole
// when asked to, and K = 0 (C = beta C). Every contiguous extent is odd, so all of it runs one
// pipeline per combination (the reduction aside).
TEST_F(VulkanMatmulTest, SplitK) {
  uint64_t seed = 5000;
  for (int tr = 0; tr < 4; ++tr) {
    Case c = shape(1, 13, 131, 301, tr);
    c.alpha = 0.5f;
    c.beta = 0.5f;
    c.bias = true;
    run_case(*vk, c, "", 3, ++seed);
    run_case(*vk, shape(1, 129, 3, 41, tr), "", 5, ++seed);    // 5 asked: 2 pieces of 32
    run_case(*vk, shape(1, 13, 21, 3001, tr), "", 0, ++seed);  // automatic: 11 pieces of 288
    run_case(*vk, shape(1, 13, 21, 1101, tr), "", 1, ++seed);  // never
    Case empty = shape(2, 13, 7, 0, tr);
    empty.beta = -0.5f;
    run_case(*vk, empty, "", 3, ++seed);
  }
}

// Batch strides, B shared by the batch, offsets and padded leading dimensions (scalar, and vec4
// aligned), alpha, beta (0: NaN in C overwritten) and the fused bias on the automatic tile, all
// four transpose combinations.
TEST_F(VulkanMatmulTest, BatchOffsetsAlphaBeta) {
  uint64_t seed = 9000;
  for (int tr = 0; tr < 4; ++tr) {
    run_case(*vk, shape(3, 13, 127, 13, tr), "", 1, ++seed);
    Case shared = shape(2, 127, 13, 201, tr);
    shared.shared_b = true;
    run_case(*vk, shared, "", 1, ++seed);
    Case scalar = shape(2, 130, 129, 17, tr);
    scalar.pad = 3;
    scalar.off = 5;
    scalar.alpha = 0.5f;
    run_case(*vk, scalar, "", 1, ++seed);
    Case vec = shape(2, 64, 68, 32, tr);
    vec.pad = 4;
    vec.off = 8;
    vec.alpha = -1.25f;
    vec.beta = 0.75f;
    run_case(*vk, vec, "", 1, ++seed);
    Case biased = shape(2, 127, 13, 201, tr);
    biased.bias = true;
    run_case(*vk, biased, "", 1, ++seed);
  }
}

TEST_F(VulkanMatmulTest, TileBeyondSharedMemoryIsAnError) {
  const uint32_t shared = vk->context().limits().max_shared_memory;
  // A tile of the table the device cannot hold, when there is one; else a made-up one.
  const VulkanKernels::MatmulTile* too_big = nullptr;
  for (const auto& t : VulkanKernels::matmul_tiles())
    if (t.shared_bytes() > shared) too_big = &t;
  const uint32_t k_step = (shared + 4) / (2 * 4 * 512) + 1;  // 256 x 256 tile
  VulkanKernels::MatmulTile made_up{"made-up", 256, 256, k_step, 16, 16};
  std::string e = test::error_of([&] {
    if (too_big) {
      BufferPtr a = vk->alloc(64), b = vk->alloc(64), c = vk->alloc(64);
      MatmulArgs g;
      g.M = g.N = g.K = 8;
      g.lda = g.ldb = g.ldc = 8;
      vk->set_matmul_tile(too_big->name);
      vk->matmul(*a, *b, *c, g);
    } else {
      VulkanKernels::require_shared_memory(made_up, shared, vk->name());
    }
  });
  EXPECT_NE(e.find("bytes of shared memory, "), std::string::npos) << e;
  EXPECT_NE(e.find(std::to_string(shared)), std::string::npos) << e;
  EXPECT_NE(e.find(too_big ? too_big->name : "made-up"), std::string::npos) << e;
  // A tile that fits passes.
  VulkanKernels::require_shared_memory(VulkanKernels::matmul_tile("matmul64"), shared, vk->name());
}

#else
TEST(VulkanMatmulTest, BuiltWithoutVulkan) { GTEST_SKIP() << "built without Vulkan"; }
#endif
