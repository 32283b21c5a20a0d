// Vulkan backend vs CPU backend, kernel for kernel (suite VulkanTest).
//
// Every kernel runs on both backends on the same seeded inputs at sizes 1, 3, 13, 127 and 200
// (200 is past one 128-wide tile), and the outputs are compared with a stated metric:
//   exact        bit-equal (fill, copies, permute, count_positive, dropout mask and output)
//   nmse         normalised MSE  sum (v - c)^2 / sum c^2  <= 1e-10 (elementwise kernels)
//   rel          normwise relative error ||v - c||_2 / ||c||_2 <= 1e-5 (matmul, reductions,
//                row-wise kernels: their summation order differs from the CPU's)
// Each output buffer gets kGuard extra elements filled with a sentinel (and, where the kernel
// takes offsets, a leading guard too) that must come back untouched, and outputs are checked
// for NaN/inf where the inputs are finite. The Khronos validation layer (with synchronization
// validation) is on for the whole binary (AIT_VK_VALIDATION=1 unless set otherwise) and every
// test fails if it reported a warning or error. The largest error seen per kernel is printed
// at the end ("vulkan parity" table).
//
// No Vulkan device (or a build without Vulkan) is a failure, not a skip, unless
// AIT_SKIP_VULKAN_TESTS=1: CI has lavapipe, so a missing device there is a broken setup.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/kernels.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "testutil.h"
#ifdef AIT_VULKAN
#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"
#endif

using namespace ait;

namespace {

// Validation must be requested before the first Vulkan instance is created.
const bool g_validation_env = [] {
  setenv("AIT_VK_VALIDATION", "1", /*overwrite=*/0);
  return true;
}();

constexpr size_t kGuard = 37;
constexpr float kSentinel = -1234.5f;
const int64_t kSizes[] = {1, 3, 13, 127, 200};

// ---- parity bookkeeping ----
std::map<std::string, std::pair<std::string, double>>& parity() {
  static std::map<std::string, std::pair<std::string, double>> m;
  return m;
}
void record(const std::string& kernel, const std::string& metric, double v) {
  auto& e = parity()[kernel];
  if (e.first.empty() || v > e.second || std::isnan(v)) e = {metric, v};
}
class ParityPrinter : public ::testing::Environment {
public:
  void TearDown() override {
    if (parity().empty()) return;
    printf("\nvulkan parity (largest error per kernel over all cases):\n");
    for (auto& [k, e] : parity()) printf("  %-28s %-6s %.3g\n", k.c_str(), e.first.c_str(), e.second);
  }
};
[[maybe_unused]] ::testing::Environment* const g_printer = ::testing::AddGlobalTestEnvironment(new ParityPrinter);

double nmse(const std::vector<float>& v, const std::vector<float>& c) {
  double num = 0, den = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    double d = double(v[i]) - double(c[i]);
    num += d * d;
    den += double(c[i]) * double(c[i]);
  }
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return num / den;
}
double rel(const std::vector<float>& v, const std::vector<float>& c) { return std::sqrt(nmse(v, c)); }
bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng r(seed);
  std::vector<float> v(n);
  for (float& x : v) x = scale * r.normal();
  return v;
}

// One logical tensor on both backends, with guard regions: [head][n values][kGuard].
struct Dual {
  Kernels* vk = nullptr;
  BufferPtr c, v;
  size_t head = 0, n = 0;
  size_t total() const { return head + n + kGuard; }
};

Dual make_dual(Kernels* vk, const std::vector<float>& values, size_t head = 0) {
  Dual d;
  d.vk = vk;
  d.head = head;
  d.n = values.size();
  std::vector<float> all(d.total(), kSentinel);
  std::copy(values.begin(), values.end(), all.begin() + static_cast<long>(head));
  d.c = cpu().alloc(d.total());
  d.v = vk->alloc(d.total());
  cpu().upload(*d.c, all.data(), all.size());
  vk->upload(*d.v, all.data(), all.size());
  return d;
}
Dual make_out(Kernels* vk, size_t n, size_t head = 0) { return make_dual(vk, std::vector<float>(n, kSentinel), head); }

Dual make_labels(Kernels* vk, const std::vector<int32_t>& labels) {
  std::vector<float> bits(labels.size());
  std::memcpy(bits.data(), labels.data(), labels.size() * 4);
  return make_dual(vk, bits);
}

std::vector<float> fetch(Kernels& k, const BufferPtr& b, size_t total) {
  std::vector<float> out(total);
  k.download(*b, out.data(), total);
  return out;
}

// Downloads both sides, checks the guards on both, returns the payloads.
struct Got {
  std::vector<float> c, v;
};
Got get(const Dual& d, const std::string& what) {
  std::vector<float> ac = fetch(cpu(), d.c, d.total()), av = fetch(*d.vk, d.v, d.total());
  size_t bad_c = 0, bad_v = 0;
  for (size_t i = 0; i < d.total(); ++i) {
    if (i >= d.head && i < d.head + d.n) continue;
    uint32_t s, x, y;
    std::memcpy(&s, &kSentinel, 4);
    std::memcpy(&x, &ac[i], 4);
    std::memcpy(&y, &av[i], 4);
    bad_c += x != s;
    bad_v += y != s;
  }
  EXPECT_EQ(bad_v, 0u) << what << ": the Vulkan kernel wrote outside its output range";
  EXPECT_EQ(bad_c, 0u) << what << ": the CPU kernel wrote outside its output range";
  Got g;
  g.c.assign(ac.begin() + static_cast<long>(d.head), ac.begin() + static_cast<long>(d.head + d.n));
  g.v.assign(av.begin() + static_cast<long>(d.head), av.begin() + static_cast<long>(d.head + d.n));
  return g;
}

void expect_exact(const Dual& d, const std::string& kernel, const std::string& ctx) {
  Got g = get(d, kernel + " " + ctx);
  size_t diff = 0;
  for (size_t i = 0; i < g.c.size(); ++i) diff += std::memcmp(&g.c[i], &g.v[i], 4) != 0;
  EXPECT_EQ(diff, 0u) << kernel << " " << ctx << ": " << diff << " elements differ";
  record(kernel, "nmse", nmse(g.v, g.c));
}

void expect_nmse(const Dual& d, const std::string& kernel, const std::string& ctx, double tol = 1e-10,
                 bool finite = true) {
  Got g = get(d, kernel + " " + ctx);
  double e = nmse(g.v, g.c);
  record(kernel, "nmse", e);
  EXPECT_LE(e, tol) << kernel << " " << ctx;
  if (finite) {
    EXPECT_TRUE(all_finite(g.v)) << kernel << " " << ctx << ": NaN/inf in the Vulkan output";
  }
}

Got expect_rel(const Dual& d, const std::string& kernel, const std::string& ctx, double tol = 1e-5) {
  Got g = get(d, kernel + " " + ctx);
  double e = rel(g.v, g.c);
  record(kernel, "rel", e);
  EXPECT_LE(e, tol) << kernel << " " << ctx;
  EXPECT_TRUE(all_finite(g.v)) << kernel << " " << ctx << ": NaN/inf in the Vulkan output";
  return g;
}

// For sums that can cancel to near 0: max over outputs k of |v_k - c_k| / scale_k, where scale_k
// is the magnitude of what output k summed. Returns the payloads.
Got expect_vs_magnitude(const Dual& d, const std::vector<double>& scale, const std::string& kernel,
                        const std::string& ctx, double tol) {
  Got g = get(d, kernel + " " + ctx);
  double worst = 0;
  for (size_t k = 0; k < g.c.size(); ++k)
    worst = std::max(worst, std::fabs(double(g.v[k]) - g.c[k]) / std::max(scale[k], 1e-30));
  record(kernel, "rel/|x|", worst);
  EXPECT_LE(worst, tol) << kernel << " " << ctx;
  EXPECT_TRUE(all_finite(g.v)) << kernel << " " << ctx << ": NaN/inf in the Vulkan output";
  return g;
}

std::string sz(std::initializer_list<int64_t> dims) {
  std::string s = "[";
  for (int64_t d : dims) s += (s.size() > 1 ? "," : "") + std::to_string(d);
  return s + "]";
}

class VulkanTest : public ::testing::Test {
protected:
  void SetUp() override {
    // The loader-override test needs no device (it makes sure there is none).
    if (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) == "LoaderOverrideFallsBack")
      return;
    vk = test::vulkan_device();  // a missing device has already failed the test, unless skipping is allowed
    if (!vk) GTEST_SKIP() << "no Vulkan device";
  }
  void TearDown() override {
    if (vk) vk->sync();
    test::expect_no_validation_messages();
  }
  Kernels* vk = nullptr;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Device selection and runtime
// ---------------------------------------------------------------------------------------------

TEST_F(VulkanTest, DeviceListedAndSelected) {
  auto devs = list_devices();
  ASSERT_FALSE(devs.empty());
  std::string table = describe_devices();
  EXPECT_NE(table.find(devs[0].name), std::string::npos) << table;
  EXPECT_EQ(vk->kind(), DeviceKind::Vulkan);
  EXPECT_EQ(select_device("vulkan"), vk) << "the Vulkan backend must be created once";
  for (const auto& d : devs) {
    EXPECT_FALSE(d.heaps.empty());
    EXPECT_GT(d.max_storage_buffer_range, 0u);
    EXPECT_GE(d.max_workgroup_count[0], 65535u);
  }
  std::string note;
  Kernels* a = select_device("auto", &note);
  if (a->kind() == DeviceKind::CPU) {
    EXPECT_EQ(note.rfind("no Vulkan loader/device found, using CPU", 0), 0u) << note;
  }
  EXPECT_EQ(select_device("cpu"), &cpu());
  EXPECT_THROW(select_device("vulkan:99"), Error);
  EXPECT_THROW(select_device("gpu"), Error);
  if (vk_validation_enabled()) printf("validation layer: on\n");
}

TEST_F(VulkanTest, LoaderOverrideFallsBack) {
  // A missing loader: "auto" falls back to the CPU with the note, "vulkan" throws it.
  const char* old = getenv("AIT_VULKAN_LOADER");
  std::string saved = old ? old : "";
  setenv("AIT_VULKAN_LOADER", "/nonexistent/libvulkan-missing.so.1", 1);
  std::string note;
  Kernels* k = select_device("auto", &note);
  EXPECT_EQ(k, &cpu());
  EXPECT_EQ(note.rfind("no Vulkan loader/device found, using CPU", 0), 0u) << note;
  try {
    select_device("vulkan");
    ADD_FAILURE() << "select_device(\"vulkan\") did not throw";
  } catch (const Error& e) {
#ifdef AIT_VULKAN
    EXPECT_NE(std::string(e.what()).find("no Vulkan loader/device found"), std::string::npos) << e.what();
#else
    EXPECT_NE(std::string(e.what()).find("built without Vulkan support"), std::string::npos) << e.what();
#endif
  }
  EXPECT_TRUE(list_devices().empty());
  if (old)
    setenv("AIT_VULKAN_LOADER", saved.c_str(), 1);
  else
    unsetenv("AIT_VULKAN_LOADER");
}

TEST_F(VulkanTest, OutOfMemoryIsAnError) {
  try {
    BufferPtr b = vk->alloc(size_t(1) << 40);  // 4 TiB
    ADD_FAILURE() << "a 4 TiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory: needed"), std::string::npos) << e.what();
  }
  // The backend is still usable afterwards.
  Dual y = make_out(vk, 10);
  vk->fill(*y.v, 10, 2.0f);
  cpu().fill(*y.c, 10, 2.0f);
  expect_exact(y, "fill", "after OOM");
}

TEST_F(VulkanTest, TransfersRoundTrip) {
  // Small (inline command-buffer updates), larger than the 16 MiB staging buffer (chunked),
  // and offset transfers.
  for (size_t n : {size_t(1), size_t(1000), size_t(17000), size_t(5) << 20}) {
    std::vector<float> v = randn(n, 11 + n);
    BufferPtr b = vk->alloc(n + 8);
    vk->upload(*b, v.data(), n, 8);
    std::vector<float> back(n);
    vk->download(*b, back.data(), n, 8);
    EXPECT_EQ(std::memcmp(v.data(), back.data(), n * 4), 0) << n;
  }
}

TEST_F(VulkanTest, SubAllocationsDoNotOverlap) {
  // Random sizes, freed in random order and re-allocated (exercises best fit and coalescing);
  // every live buffer keeps its own contents.
  Rng r(99);
  std::vector<std::pair<BufferPtr, float>> live;
  int counter = 0;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 60; ++i) {
      size_t n = 1 + r.below(round == 2 ? 300000 : 5000);
      BufferPtr b = vk->alloc(n);
      float tag = float(++counter);
      vk->fill(*b, n, tag);
      live.push_back({b, tag});
    }
    for (size_t i = 0; i < live.size();) {
      if (r.below(2)) {
        live[i] = live.back();
        live.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (auto& [b, tag] : live) {
    std::vector<float> v(b->size);
    vk->download(*b, v.data(), v.size());
    size_t bad = 0;
    for (float x : v) bad += x != tag;
    EXPECT_EQ(bad, 0u) << "buffer of " << b->size << " elements lost its contents";
  }
}

TEST_F(VulkanTest, ManyDispatchesAndBufferReuse) {
  // > 1000 dispatches (forces intermediate submissions) with buffers freed and re-allocated
  // while recorded work still uses their memory.
  const size_t n = 300;
  std::vector<float> x = randn(n, 5);
  Dual acc = make_dual(vk, std::vector<float>(n, 0.0f));
  for (int i = 0; i < 1500; ++i) {
    Dual t = make_dual(vk, x);
    vk->axpby(*acc.v, *t.v, n, 0.5f, 0.999f);
    cpu().axpby(*acc.c, *t.c, n, 0.5f, 0.999f);
  }
  expect_nmse(acc, "axpby", "1500 chained");
}

TEST_F(VulkanTest, BarriersOnlyWhereBuffersConflict) {
#ifdef AIT_VULKAN
  auto* vkk = dynamic_cast<VulkanKernels*>(vk);
  ASSERT_NE(vkk, nullptr);
  if (const char* b = std::getenv("AIT_VK_BARRIERS"); b && std::string(b) == "all") GTEST_SKIP() << "AIT_VK_BARRIERS=all";
  vk::Context& ctx = vkk->context();
  const size_t n = 1000;
  BufferPtr a = vk->alloc(n), b = vk->alloc(n), c = vk->alloc(n);
  ctx.begin_program();
  vk->fill(*a, n, 1.0f);             // barrier 1: after the work before the program
  vk->fill(*b, n, 2.0f);             // independent of the first fill
  vk->fill(*c, n, 3.0f);             // independent
  vk->axpby(*b, *a, n, 0.5f, 2.0f);  // barrier 2: reads a, writes b (both written above)
  vk->axpby(*c, *a, n, 0.5f, 2.0f);  // none: a is only read (its binding is readonly in the SPIR-V)
  vk->fill(*a, n, 4.0f);             // barrier 3: a was read by the axpbys
  ctx.end_program();
  EXPECT_EQ(ctx.program_barriers(), 3u);
  ctx.drop_program();
  // (The validation layer's synchronization checks, on in this suite, would flag a missing one.)
  std::vector<float> ha(n), hb(n), hc(n);
  vk->download(*a, ha.data(), n);
  vk->download(*b, hb.data(), n);
  vk->download(*c, hc.data(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(ha[i], 4.0f) << i;
    ASSERT_EQ(hb[i], 0.5f * 1.0f + 2.0f * 2.0f) << i;
    ASSERT_EQ(hc[i], 0.5f * 1.0f + 2.0f * 3.0f) << i;
  }
#else
  GTEST_SKIP() << "built without Vulkan";
#endif
}

TEST_F(VulkanTest, LargeGridsAreSplit) {
  // More workgroups than maxComputeWorkGroupCount[0] (65535 on many devices) in one dispatch.
  const size_t rows = 70000;
  Dual x = make_dual(vk, randn(rows * 2, 3));
  Dual y = make_out(vk, rows * 2);
  vk->softmax(*x.v, *y.v, rows, 2, 1.0f);
  cpu().softmax(*x.c, *y.c, rows, 2, 1.0f);
  expect_rel(y, "softmax", "70000 rows");
  const size_t n = 65536 * 256 + 1000;  // 65540 workgroups of 256
  Dual f = make_out(vk, n);
  vk->fill(*f.v, n, 0.25f);
  cpu().fill(*f.c, n, 0.25f);
  expect_exact(f, "fill", "65540 workgroups");
}

TEST_F(VulkanTest, BindingLimitIsRespected) {
#ifdef AIT_VULKAN
  auto* vkk = dynamic_cast<VulkanKernels*>(vk);
  ASSERT_NE(vkk, nullptr);
  uint64_t range = vkk->context().limits().max_storage_buffer_range;
  if (range > (256ull << 20)) GTEST_SKIP() << "maxStorageBufferRange " << range << " too large to exercise here";
  // Elementwise kernels split a tensor larger than one binding may span...
  size_t n = range / 4 + 4096;
  BufferPtr a = vk->alloc(n), b = vk->alloc(n);
  vk->fill(*a, n, 1.5f);
  vk->fill(*b, n, 2.0f);
  vk->axpby(*b, *a, n, 2.0f, 0.5f);  // 4
  float tail[4];
  vk->download(*b, tail, 4, n - 4);
  for (float t : tail) EXPECT_EQ(t, 4.0f);
  float head;
  vk->download(*b, &head, 1, 0);
  EXPECT_EQ(head, 4.0f);
  // ...other kernels refuse it with a clear error.
  try {
    vk->softmax(*a, *b, 1, static_cast<int64_t>(n), 1.0f);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("maxStorageBufferRange"), std::string::npos) << e.what();
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

TEST_F(VulkanTest, FillAxpby) {
  for (int64_t n : kSizes) {
    Dual y = make_out(vk, n);
    vk->fill(*y.v, n, 3.25f);
    cpu().fill(*y.c, n, 3.25f);
    expect_exact(y, "fill", sz({n}));

    Dual x = make_dual(vk, randn(n, 1 + n));
    Dual z = make_dual(vk, randn(n, 2 + n));
    vk->axpby(*z.v, *x.v, n, 1.5f, -0.75f);
    cpu().axpby(*z.c, *x.c, n, 1.5f, -0.75f);
    expect_nmse(z, "axpby", sz({n}));

    // b == 0 overwrites y even where it holds NaN.
    Dual w = make_dual(vk, std::vector<float>(n, NAN));
    vk->axpby(*w.v, *x.v, n, -2.0f, 0.0f);
    cpu().axpby(*w.c, *x.c, n, -2.0f, 0.0f);
    expect_nmse(w, "axpby", sz({n}) + " b=0 over NaN");
  }
}

TEST_F(VulkanTest, GeluForwardBackward) {
  for (int64_t n : kSizes) {
    Dual x = make_dual(vk, randn(n, 10 + n, 3.0f));
    Dual dy = make_dual(vk, randn(n, 20 + n));
    Dual y = make_out(vk, n), dx = make_out(vk, n);
    vk->gelu(*x.v, *y.v, n);
    cpu().gelu(*x.c, *y.c, n);
    expect_nmse(y, "gelu", sz({n}));
    vk->gelu_backward(*x.v, *dy.v, *dx.v, n);
    cpu().gelu_backward(*x.c, *dy.c, *dx.c, n);
    expect_nmse(dx, "gelu_backward", sz({n}));
  }
  // Tails and zero.
  std::vector<float> t = {-12.f, -8.f, -5.f, -3.f, -1e-3f, 0.f, 1e-3f, 3.f, 5.f, 8.f, 12.f};
  Dual x = make_dual(vk, t), y = make_out(vk, t.size());
  vk->gelu(*x.v, *y.v, t.size());
  cpu().gelu(*x.c, *y.c, t.size());
  expect_nmse(y, "gelu", "tails");
}

TEST_F(VulkanTest, DropoutMaskIsIdentical) {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(13), int64_t(127), int64_t(200), int64_t(70001)}) {
    for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
      uint32_t seed = static_cast<uint32_t>(n * 31 + p * 100);
      Dual x = make_dual(vk, randn(n, 30 + n));
      Dual y = make_out(vk, n), m = make_out(vk, n);
      vk->dropout(*x.v, *y.v, *m.v, n, p, seed);
      cpu().dropout(*x.c, *y.c, *m.c, n, p, seed);
      std::string c = sz({n}) + " p=" + std::to_string(p);
      expect_exact(m, "dropout(mask)", c);
      expect_exact(y, "dropout", c);
    }
  }
}

TEST_F(VulkanTest, AdamW) {
  for (int64_t n : kSizes) {
    Dual p = make_dual(vk, randn(n, 40 + n)), m = make_dual(vk, randn(n, 41 + n, 0.1f));
    std::vector<float> v0 = randn(n, 42 + n, 0.1f);
    for (float& v : v0) v = v * v;
    Dual v = make_dual(vk, v0);
    for (int step = 1; step <= 3; ++step) {
      Dual g = make_dual(vk, randn(n, 43 + n + step));
      AdamWArgs a{1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - std::pow(0.9f, float(step)),
                  1.0f - std::pow(0.999f, float(step))};
      vk->adamw(*p.v, *g.v, *m.v, *v.v, n, a);
      cpu().adamw(*p.c, *g.c, *m.c, *v.c, n, a);
    }
    expect_nmse(p, "adamw", sz({n}) + " p");
    expect_nmse(m, "adamw", sz({n}) + " m");
    expect_nmse(v, "adamw", sz({n}) + " v");
  }
}

// ---------------------------------------------------------------------------------------------
// Broadcasting binary, permute, copy_blocks
// ---------------------------------------------------------------------------------------------

namespace {
// Contiguous strides of `shape`, with 0 on the axes where the operand's extent is 1.
Strided strided(const std::vector<int64_t>& out, const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  Strided s;
  s.rank = static_cast<int>(out.size());
  int64_t sa = 1, sb = 1;
  for (int d = s.rank - 1; d >= 0; --d) {
    s.shape[d] = out[d];
    s.stride_a[d] = a[d] == 1 ? 0 : sa;
    s.stride_b[d] = b[d] == 1 ? 0 : sb;
    sa *= a[d];
    sb *= b[d];
  }
  return s;
}
int64_t prod(const std::vector<int64_t>& s) {
  int64_t p = 1;
  for (int64_t d : s) p *= d;
  return p;
}
}  // namespace

TEST_F(VulkanTest, BinaryBroadcast) {
  struct Case {
    std::vector<int64_t> out, a, b;
  };
  std::vector<Case> cases;
  for (int64_t n : kSizes) {
    cases.push_back({{n}, {n}, {n}});
    cases.push_back({{n, 13}, {n, 13}, {1, 13}});
    cases.push_back({{3, n}, {3, 1}, {3, n}});
    cases.push_back({{n, 3, 2}, {n, 1, 2}, {1, 3, 1}});
    cases.push_back({{2, n, 1, 3}, {2, n, 1, 3}, {1, 1, 1, 1}});
  }
  cases.push_back({{2, 3, 1, 2, 3, 2}, {2, 1, 1, 2, 1, 2}, {1, 3, 1, 1, 3, 2}});
  cases.push_back({{}, {}, {}});
  const char* names[] = {"add", "sub", "mul", "div"};
  int seed = 0;
  for (const Case& c : cases) {
    int64_t no = prod(c.out), na = prod(c.a), nb = prod(c.b);
    Strided s = strided(c.out, c.a, c.b);
    for (int op = 0; op < 4; ++op) {
      std::vector<float> bv = randn(nb, 60 + seed);
      if (op == 3)
        for (float& x : bv) x = (x < 0 ? -1.0f : 1.0f) * (0.5f + std::fabs(x));
      Dual a = make_dual(vk, randn(na, 50 + seed)), b = make_dual(vk, bv), y = make_out(vk, no);
      vk->binary(static_cast<BinaryOp>(op), *a.v, *b.v, *y.v, s);
      cpu().binary(static_cast<BinaryOp>(op), *a.c, *b.c, *y.c, s);
      std::string ctx = "out rank " + std::to_string(c.out.size()) + " numel " + std::to_string(no);
      expect_nmse(y, std::string("binary(") + names[op] + ")", ctx);
      ++seed;
    }
  }
}

TEST_F(VulkanTest, Permute) {
  struct Case {
    std::vector<int64_t> shape;
    std::vector<int> perm;
  };
  std::vector<Case> cases;
  for (int64_t n : kSizes) {
    cases.push_back({{n, 13}, {1, 0}});
    cases.push_back({{n, 3, 5}, {2, 0, 1}});
    cases.push_back({{2, n, 3, 4}, {0, 2, 1, 3}});  // innermost axis stays: 4 per thread
    cases.push_back({{n, 2, 3, 8}, {2, 1, 0, 3}});
    cases.push_back({{n, 4}, {1, 0}});
    cases.push_back({{n}, {0}});
  }
  cases.push_back({{200, 200}, {1, 0}});
  cases.push_back({{2, 3, 1, 4, 2, 3}, {5, 3, 1, 0, 4, 2}});
  int seed = 0;
  for (const Case& c : cases) {
    int64_t n = prod(c.shape);
    Dual x = make_dual(vk, randn(n, 70 + seed++)), y = make_out(vk, n);
    vk->permute(*x.v, *y.v, static_cast<int>(c.shape.size()), c.shape.data(), c.perm.data());
    cpu().permute(*x.c, *y.c, static_cast<int>(c.shape.size()), c.shape.data(), c.perm.data());
    expect_exact(y, "permute", "rank " + std::to_string(c.shape.size()) + " numel " + std::to_string(n));
  }
}

TEST_F(VulkanTest, CopyBlocks) {
  int seed = 0;
  for (int64_t outer : kSizes) {
    for (int64_t inner : {int64_t(1), int64_t(3), int64_t(13), int64_t(127), int64_t(200)}) {
      if (outer * inner > 30000) continue;
      for (bool acc : {false, true}) {
        const int64_t ss = inner + 5, ds = inner + 2;
        const size_t so = 3, doff = 7;  // element offsets inside the buffers
        Dual src = make_dual(vk, randn(so + (outer - 1) * ss + inner, 80 + seed));
        // Destination: the gaps between blocks hold data that must survive; lead guard via head.
        Dual dst = make_dual(vk, randn(doff + (outer - 1) * ds + inner, 90 + seed), 5);
        ++seed;
        vk->copy_blocks(*src.v, so, ss, *dst.v, dst.head + doff, ds, outer, inner, acc);
        cpu().copy_blocks(*src.c, so, ss, *dst.c, dst.head + doff, ds, outer, inner, acc);
        std::string ctx = sz({outer, inner}) + (acc ? " accumulate" : " copy");
        if (acc)
          expect_nmse(dst, "copy_blocks(accumulate)", ctx);
        else
          expect_exact(dst, "copy_blocks", ctx);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

TEST_F(VulkanTest, ReduceSumAndCountPositive) {
  std::vector<std::array<int64_t, 3>> shapes;
  for (int64_t a : kSizes)
    for (int64_t b : kSizes) {
      shapes.push_back({a, b, 1});
      shapes.push_back({1, a, b});
      if (a * b <= 2000) shapes.push_back({3, a, b});
    }
  // Long reductions: several chunk passes in both modes.
  shapes.push_back({2, 20000, 1});
  shapes.push_back({1, 1500, 3});
  shapes.push_back({2, 70000, 1});
  int seed = 0;
  for (auto [o, n, i] : shapes) {
    std::vector<float> xs = randn(o * n * i, 100 + seed++);
    Dual x = make_dual(vk, xs);
    Dual y = make_out(vk, o * i), c = make_out(vk, o * i);
    vk->reduce_sum(*x.v, *y.v, o, n, i, 0.5f);
    cpu().reduce_sum(*x.c, *y.c, o, n, i, 0.5f);
    std::string ctx = sz({o, n, i});
    // Output (oo, ii) is 0.5 * sum_j x: its scale is 0.5 * sum_j |x|.
    std::vector<double> scale(o * i, 0.0);
    for (int64_t oo = 0; oo < o; ++oo)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t ii = 0; ii < i; ++ii) scale[oo * i + ii] += 0.5 * std::fabs(xs[(oo * n + j) * i + ii]);
    expect_vs_magnitude(y, scale, "reduce_sum", ctx, 1e-6);
    vk->count_positive(*x.v, *c.v, o, n, i);
    cpu().count_positive(*x.c, *c.c, o, n, i);
    expect_exact(c, "count_positive", ctx);
  }
}

// ---------------------------------------------------------------------------------------------
// Row-wise
// ---------------------------------------------------------------------------------------------

TEST_F(VulkanTest, LayerNormForwardBackward) {
  int seed = 0;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int64_t rows : kSizes)
    for (int64_t cols : kSizes) shapes.push_back({rows, cols});
  // Rows longer than four passes of a workgroup (the head's LayerNorm over T * D).
  shapes.push_back({3, 4 * 256 + 1001});
  shapes.push_back({1, 4 * 256 * 3});
  for (auto [rows, cols] : shapes) {
      int64_t n = rows * cols;
      std::vector<float> xs = randn(n, 500 + seed, 2.0f);
      Dual x = make_dual(vk, xs), w = make_dual(vk, randn(cols, 501 + seed));
      Dual b = make_dual(vk, randn(cols, 502 + seed)), dy = make_dual(vk, randn(n, 503 + seed));
      Dual y = make_out(vk, n), mean = make_out(vk, rows), rstd = make_out(vk, rows), dx = make_out(vk, n);
      Dual dw = make_dual(vk, randn(cols, 504 + seed)), db = make_dual(vk, randn(cols, 505 + seed));
      ++seed;
      std::string ctx = sz({rows, cols});
      vk->layernorm(*x.v, *w.v, *b.v, *y.v, *mean.v, *rstd.v, rows, cols, 1e-5f);
      cpu().layernorm(*x.c, *w.c, *b.c, *y.c, *mean.c, *rstd.c, rows, cols, 1e-5f);
      expect_rel(y, "layernorm", ctx);
      // A row's mean can cancel to near 0: its scale is the row's mean magnitude. Two float32
      // sums of up to 3000 terms in different orders differ by about sqrt(n) ulp.
      std::vector<double> scale(rows, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) scale[r] += std::fabs(xs[r * cols + c]) / cols;
      Got mu = expect_vs_magnitude(mean, scale, "layernorm(mean)", ctx, 5e-6);
      Got rs = expect_rel(rstd, "layernorm(rstd)", ctx);
      // Backward from the CPU's saved statistics on both sides (isolates the backward kernel).
      Dual m2 = make_dual(vk, mu.c), r2 = make_dual(vk, rs.c);
      vk->layernorm_backward(*x.v, *w.v, *m2.v, *r2.v, *dy.v, *dx.v, *dw.v, *db.v, rows, cols);
      cpu().layernorm_backward(*x.c, *w.c, *m2.c, *r2.c, *dy.c, *dx.c, *dw.c, *db.c, rows, cols);
      if (cols > 1) expect_rel(dx, "layernorm_backward(dx)", ctx);
      expect_rel(dw, "layernorm_backward(dw)", ctx);
      expect_rel(db, "layernorm_backward(db)", ctx);
    }
}

TEST_F(VulkanTest, SoftmaxForwardBackward) {
  int seed = 0;
  for (int64_t rows : kSizes)
    for (int64_t cols : kSizes) {
      int64_t n = rows * cols;
      for (float scale : {1.0f, -0.37f}) {
        Dual x = make_dual(vk, randn(n, 600 + seed, 3.0f)), dy = make_dual(vk, randn(n, 601 + seed));
        Dual y = make_out(vk, n), dx = make_out(vk, n);
        ++seed;
        std::string ctx = sz({rows, cols}) + " scale " + std::to_string(scale);
        vk->softmax(*x.v, *y.v, rows, cols, scale);
        cpu().softmax(*x.c, *y.c, rows, cols, scale);
        Got yg = expect_rel(y, "softmax", ctx);
        // Backward from the same y on both sides.
        Dual y2 = make_dual(vk, yg.c);
        vk->softmax_backward(*y2.v, *dy.v, *dx.v, rows, cols, scale);
        cpu().softmax_backward(*y2.c, *dy.c, *dx.c, rows, cols, scale);
        if (cols > 1) expect_rel(dx, "softmax_backward", ctx);
      }
    }
}

TEST_F(VulkanTest, TopkGateSelectsExactly) {
  int seed = 0;
  auto run = [&](int64_t rows, int64_t cols, int64_t k, float scale, bool ties) {
    std::vector<float> xv = randn(rows * cols, 700 + seed++);
    if (ties)
      for (float& v : xv) v = std::floor(v * 1.5f);  // few distinct values: many ties (and -0 vs +0)
    if (ties && !xv.empty()) xv[0] = -0.0f;
    Dual x = make_dual(vk, xv), y = make_out(vk, rows * cols);
    vk->topk_gate(*x.v, *y.v, rows, cols, k, scale);
    cpu().topk_gate(*x.c, *y.c, rows, cols, k, scale);
    std::string ctx = sz({rows, cols}) + " k " + std::to_string(k) + " scale " + std::to_string(scale) +
                      (ties ? " ties" : "");
    Got g = get(y, "topk_gate " + ctx);
    size_t mismatched = 0, kept = 0;
    for (size_t i = 0; i < g.c.size(); ++i) {
      mismatched += (g.c[i] != 0.0f) != (g.v[i] != 0.0f);
      kept += g.v[i] != 0.0f;
    }
    EXPECT_EQ(mismatched, 0u) << ctx << ": selections differ";
    EXPECT_EQ(kept, static_cast<size_t>(rows * std::min(std::max<int64_t>(k, 0), cols))) << ctx;
    double e = rel(g.v, g.c);
    record("topk_gate", "rel", e);
    record("topk_gate(selection)", "count", double(mismatched));
    EXPECT_LE(e, 1e-5) << ctx;
    EXPECT_TRUE(all_finite(g.v));
  };
  for (int64_t rows : {int64_t(1), int64_t(3), int64_t(13)})
    for (int64_t cols : kSizes)
      for (int64_t k : {int64_t(1), int64_t(3), int64_t(13), int64_t(200), int64_t(0)})
        for (bool ties : {false, true}) run(rows, cols, k, 1.0f, ties);
  run(127, 200, 7, -0.5f, false);
  run(127, 200, 7, 2.0f, true);
  run(200, 127, 64, 1.0f, true);
  run(2, 32768, 100, 1.0f, false);  // the longest row the model uses
  run(1, 32768, 5000, 1.0f, true);
}

TEST_F(VulkanTest, CrossEntropyForwardBackward) {
  int seed = 0;
  for (int64_t rows : kSizes)
    for (int64_t classes : kSizes) {
      std::vector<int32_t> lab(rows);
      Rng r(800 + seed);
      for (auto& l : lab) l = static_cast<int32_t>(r.below(static_cast<uint64_t>(classes)));
      Dual logits = make_dual(vk, randn(rows * classes, 801 + seed, 4.0f)), labels = make_labels(vk, lab);
      Dual loss = make_out(vk, rows), probs = make_out(vk, rows * classes);
      Dual dloss = make_dual(vk, randn(rows, 802 + seed)), dlogits = make_out(vk, rows * classes);
      ++seed;
      std::string ctx = sz({rows, classes});
      vk->cross_entropy(*logits.v, *labels.v, *loss.v, *probs.v, rows, classes);
      cpu().cross_entropy(*logits.c, *labels.c, *loss.c, *probs.c, rows, classes);
      if (classes > 1) expect_rel(loss, "cross_entropy(loss)", ctx);
      Got pg = expect_rel(probs, "cross_entropy(probs)", ctx);
      Dual p2 = make_dual(vk, pg.c);
      vk->cross_entropy_backward(*p2.v, *labels.v, *dloss.v, *dlogits.v, rows, classes);
      cpu().cross_entropy_backward(*p2.c, *labels.c, *dloss.c, *dlogits.c, rows, classes);
      if (classes > 1) expect_nmse(dlogits, "cross_entropy_backward", ctx);
    }
}

TEST_F(VulkanTest, L2NormalizeForwardBackward) {
  int seed = 0;
  for (int64_t rows : kSizes)
    for (int64_t cols : kSizes) {
      int64_t n = rows * cols;
      std::vector<float> xv = randn(n, 900 + seed);
      if (rows > 2)
        for (int64_t c = 0; c < cols; ++c) xv[cols + c] = 0.0f;  // a zero row: norm clamps to 1e-12
      Dual x = make_dual(vk, xv), dy = make_dual(vk, randn(n, 901 + seed));
      Dual y = make_out(vk, n), norm = make_out(vk, rows), dx = make_out(vk, n);
      ++seed;
      std::string ctx = sz({rows, cols});
      vk->l2_normalize(*x.v, *y.v, *norm.v, rows, cols);
      cpu().l2_normalize(*x.c, *y.c, *norm.c, rows, cols);
      Got yg = expect_rel(y, "l2_normalize", ctx), ng = expect_rel(norm, "l2_normalize(norm)", ctx);
      Dual y2 = make_dual(vk, yg.c), n2 = make_dual(vk, ng.c);
      vk->l2_normalize_backward(*y2.v, *n2.v, *dy.v, *dx.v, rows, cols);
      cpu().l2_normalize_backward(*y2.c, *n2.c, *dy.c, *dx.c, rows, cols);
      if (cols > 1 && rows <= 2) expect_rel(dx, "l2_normalize_backward", ctx);
      if (cols > 1 && rows > 2) {
        // The zero row's gradient is dy / 1e-12: compare the other rows relatively.
        Got g = get(dx, "l2_normalize_backward " + ctx);
        std::vector<float> v, c;
        for (int64_t i = 0; i < n; ++i)
          if (i / cols != 1) {
            v.push_back(g.v[i]);
            c.push_back(g.c[i]);
          }
        double e = rel(v, c);
        record("l2_normalize_backward", "rel", e);
        EXPECT_LE(e, 1e-5) << ctx;
      }
    }
}
