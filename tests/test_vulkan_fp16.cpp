// fp16 storage on the Vulkan backend (suite VulkanFp16Test): the fp32 <-> fp16 conversions
// against a rounding written here in double arithmetic (nearest fp16 value by scaling to the
// value's fp16 spacing and rounding half to even), over edge values, every fp16 bit pattern and
// random values; and matmul_fp16 against the host's double-precision product of the same
// fp16-rounded inputs, with odd and round shapes, all four transposes, offsets, padding, batch,
// bias, beta and split-K.
//
// Matmul metric, per output element: |v - r| <= (K + 4) * 2^-23 * s as in test_vulkan_matmul.cpp
// (r the double product of the fp16 values, s the magnitude it is built from): a product of two
// fp16 values is exact in fp32, so only the fp32 summation rounds.
//
// The conversions need no device feature and run everywhere; matmul_fp16 needs 16-bit storage
// buffers and is skipped, with a message, on a device without them. Also here: the precision
// switch on a Vulkan device (the description of its 16-bit and cooperative-matrix support).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/kernels.h"
#include "core/rng.h"
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

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// The fp16 value nearest to x, ties to even, as a double: fp16 values around |x| are spaced
// 2^(e - 10) with e = max(floor(log2 |x|), -14) (the subnormals share the spacing of the smallest
// normals); magnitudes from 65520 (half-way between 65504 and 2^16) round to inf.
double round_to_fp16(float x) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0f) return x;
  const double a = std::fabs(double(x));
  if (a >= 65520.0) return std::copysign(HUGE_VAL, double(x));
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): floor(log2 a) = e - 1
  const double spacing = std::ldexp(1.0, std::max(e - 1, -14) - 10);
  const double q = std::nearbyint(a / spacing);  // default rounding mode: half to even
  return std::copysign(q * spacing, double(x));
}

// The value of fp16 bits h (NaN for every NaN pattern).
double fp16_value(uint16_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int e = (h >> 10) & 31, m = h & 1023;
  if (e == 31) return m ? std::nan("") : sign * HUGE_VAL;
  if (e == 0) return sign * std::ldexp(double(m), -24);
  return sign * std::ldexp(double(1024 + m), e - 25);
}

uint16_t half_at(const std::vector<uint32_t>& words, size_t i) {
  return static_cast<uint16_t>(i % 2 ? words[i / 2] >> 16 : words[i / 2] & 0xFFFF);
}

// The fp16 value the device produced for input x agrees with round_to_fp16 (bit for bit: a zero
// keeps its sign; NaN keeps its sign and top payload bits, with the quiet bit set).
void expect_fp16_of(float x, uint16_t got, const std::string& ctx) {
  const uint32_t xb = bits_of(x);
  if (std::isnan(x)) {
    const uint16_t want = static_cast<uint16_t>(((xb >> 16) & 0x8000) | 0x7E00 | ((xb >> 13) & 0x3FF));
    EXPECT_EQ(got, want) << ctx << ": NaN 0x" << std::hex << xb;
    return;
  }
  const double want = round_to_fp16(x), v = fp16_value(got);
  EXPECT_TRUE(v == want && std::signbit(v) == std::signbit(want))
      << ctx << ": " << x << " (0x" << std::hex << xb << std::dec << ") -> " << v << ", expected " << want;
}

class VulkanFp16Test : public test::VulkanKernelsTest {
protected:
  // Why matmul_fp16 cannot run here ("" when it can).
  std::string no_fp16_storage() const {
    if (vk->has_fp16_storage()) return "";
    return vk->name() + " has no 16-bit storage buffers (storageBuffer16BitAccess): no fp16 matmul to test";
  }
  // fp32 values through to_fp16 (starting at x_off in x, word y_word in y, guard words around)
  // and back; returns the fp16 words.
  std::vector<uint32_t> narrow(const std::vector<float>& x, size_t x_off, size_t y_word) {
    const size_t n = x.size() - x_off, words = (n + 1) / 2;
    BufferPtr bx = vk->alloc(x.size()), by = vk->alloc(y_word + words + 3);
    vk->upload(*bx, x.data(), x.size());
    const std::vector<uint32_t> guard(y_word + words + 3, 0xDEADBEEFu);
    vk->upload(*by, guard.data(), guard.size());
    vk->to_fp16(*bx, *by, n, x_off, y_word);
    std::vector<uint32_t> got(guard.size());
    vk->download(*by, got.data(), got.size());
    for (size_t i = 0; i < got.size(); ++i)
      if (i < y_word || i >= y_word + words) {
        EXPECT_EQ(got[i], 0xDEADBEEFu) << "word " << i << " outside the output";
      }
    if (n % 2) {
      EXPECT_EQ(got[y_word + words - 1] >> 16, 0u) << "the unused high half of an odd count";
    }
    return std::vector<uint32_t>(got.begin() + long(y_word), got.begin() + long(y_word + words));
  }
};

}  // namespace

TEST_F(VulkanFp16Test, NarrowingRoundsToNearestEvenAtTheEdges) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  const float tiny = std::ldexp(1.0f, -24);  // the smallest fp16 subnormal
  std::vector<float> x = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          65504.0f,
                          -65504.0f,  // the largest finite fp16
                          65519.996f,
                          65520.0f,
                          -65520.0f,
                          1e6f,
                          3.4e38f,  // just below the overflow threshold, at and past it
                          HUGE_VALF,
                          -HUGE_VALF,
                          std::nanf(""),
                          -std::nanf(""),
                          from_bits(0x7F800001u),
                          from_bits(0xFFC12345u),
                          1.0f + std::ldexp(1.0f, -11),      // half-way between 1 and the next fp16: to 1 (even)
                          1.0f + 3 * std::ldexp(1.0f, -11),  // half-way, odd below: up to 1 + 2^-9
                          1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -23),
                          2049.0f,
                          2051.0f,
                          -2051.0f,
                          std::ldexp(1.0f, -14),                          // the smallest normal
                          std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25),  // rounds up into the normal range
                          tiny,
                          -tiny,
                          0.5f * tiny,  // half the smallest subnormal: to +0 (even)
                          -0.5f * tiny,
                          std::nextafter(0.5f * tiny, 1.0f),  // just above it: the smallest subnormal
                          1.5f * tiny,
                          2.5f * tiny,
                          3.5f * tiny,
                          1023.5f * tiny,  // subnormal ties, and one into 2^-14
                          std::ldexp(1.0f, -30),
                          from_bits(0x00000001u),
                          from_bits(0x807FFFFFu),  // far below: (signed) zero
                          0.1f,
                          -0.3333333f,
                          3.14159265f,
                          1000.06f,
                          6.1e-5f};
  // An odd count at an odd offset: the last high half stays 0, neighbouring words untouched.
  x.insert(x.begin(), {7.0f, 8.0f, 9.0f});
  const std::vector<uint32_t> words = narrow(x, 3, 2);
  for (size_t i = 3; i < x.size(); ++i) expect_fp16_of(x[i], half_at(words, i - 3), "edge value " + std::to_string(i));
}

TEST_F(VulkanFp16Test, RandomValuesAcrossTheRange) {
  Rng r(2024);
  std::vector<float> x(20001);
  for (float& v : x) {
    // Exponents from far below the subnormals to past the overflow, random mantissas and signs.
    const int e = int(r.next_u32() % 48) - 30;
    v = std::ldexp(1.0f + float(r.next_u32() & 0x7FFFFF) * std::ldexp(1.0f, -23), e);
    if (r.next_u32() & 1) v = -v;
  }
  const std::vector<uint32_t> words = narrow(x, 0, 0);
  for (size_t i = 0; i < x.size(); ++i) expect_fp16_of(x[i], half_at(words, i), "random value " + std::to_string(i));
}

TEST_F(VulkanFp16Test, WideningIsExactForEveryBitPattern) {
  std::vector<uint32_t> all(32768 + 1);
  for (uint32_t w = 0; w < 32768; ++w) all[w + 1] = (2 * w) | ((2 * w + 1) << 16);
  BufferPtr src = vk->alloc(all.size()), dst = vk->alloc(65536 + 5);
  vk->upload(*src, all.data(), all.size());
  vk->from_fp16(*src, *dst, 65536, /*x_word=*/1, /*y_off=*/5);
  std::vector<float> got(65536 + 5);
  vk->download(*dst, got.data(), got.size());
  for (uint32_t h = 0; h < 65536; ++h) {
    const float v = got[h + 5];
    const double want = fp16_value(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      // NaN: same sign, all-ones exponent, the payload in the top mantissa bits.
      EXPECT_EQ(bits_of(v), ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13)) << "fp16 0x" << std::hex << h;
    } else {
      EXPECT_TRUE(double(v) == want && std::signbit(v) == std::signbit(want))
          << "fp16 0x" << std::hex << h << std::dec << ": " << v << ", expected " << want;
    }
  }
  // And back: every non-NaN value is an fp16 value, so narrowing returns its bits.
  std::vector<float> values(got.begin() + 5, got.end());
  const std::vector<uint32_t> words = narrow(values, 0, 0);
  for (uint32_t h = 0; h < 65536; ++h)
    if (!std::isnan(values[h])) {
      EXPECT_EQ(half_at(words, h), h) << "round trip of fp16 0x" << std::hex << h;
    }
}

TEST_F(VulkanFp16Test, DeviceDescriptionAndPrecisionSwitch) {
  const DeviceInfo& d = vk->context().info();
  const std::string table = describe_devices();
  EXPECT_NE(table.find(std::string("16-bit storage ") + (d.storage_16bit ? "yes" : "no")), std::string::npos) << table;
  EXPECT_NE(table.find("VK_KHR_cooperative_matrix"), std::string::npos) << table;
  EXPECT_EQ(vk->has_fp16_storage(), d.storage_16bit);
  std::string note = "stale";
  EXPECT_EQ(resolve_precision(*vk, Precision::Fp32, &note), Precision::Fp32);
  EXPECT_EQ(note, "");
  EXPECT_EQ(resolve_precision(*vk, Precision::Mixed, &note), Precision::Fp32);
  EXPECT_NE(note.find(d.name), std::string::npos) << note;
  const std::string why = d.coop_matrix_extension ? "offers VK_KHR_cooperative_matrix" : "does not offer";
  EXPECT_NE(note.find(why), std::string::npos) << note;
  EXPECT_EQ(note.find('\n'), std::string::npos) << "one line: " << note;
}

namespace {

// One fp16 product; shapes and layouts as in test_vulkan_matmul.cpp (offsets, padding, batch).
struct HalfCase {
  int64_t batch, M, N, K;
  bool ta, tb;
  int64_t pad = 0, off = 0;
  bool shared_b = false, bias = false;
  float alpha = 1.0f, beta = 0.0f;
  int splits = 1;
};

// Runs `t` on the device from fp32 inputs narrowed there, and checks C against the double
// product of the same inputs rounded by round_to_fp16 (and C outside the product unchanged).
void run_half_case(VulkanKernels& vk, const HalfCase& t, uint64_t seed) {
  MatmulArgs g;
  g.batch = t.batch, g.M = t.M, g.N = t.N, g.K = t.K, g.trans_a = t.ta, g.trans_b = t.tb;
  g.lda = (t.ta ? t.M : t.K) + t.pad, g.ldb = (t.tb ? t.K : t.N) + t.pad, g.ldc = t.N + t.pad;
  g.stride_a = (t.ta ? t.K : t.M) * g.lda, g.stride_b = t.shared_b ? 0 : (t.tb ? t.N : t.K) * g.ldb;
  g.stride_c = t.M * g.ldc;
  g.off_a = g.off_b = t.off, g.off_c = t.off + 3;
  g.alpha = t.alpha, g.beta = t.beta;
  const size_t na = size_t(g.off_a + t.batch * g.stride_a),
               nb = size_t(g.off_b + (t.shared_b ? 1 : t.batch) * (t.tb ? t.N : t.K) * g.ldb);
  const size_t nc = size_t(g.off_c + t.batch * g.stride_c + 5);
  const std::vector<float> a = test::random_values(int64_t(na), seed, -4.0f, 4.0f),
                           b = test::random_values(int64_t(nb), seed + 1, -4.0f, 4.0f),
                           c0 = test::random_values(int64_t(nc), seed + 2), bias = test::random_values(t.N, seed + 3);
  BufferPtr a32 = vk.alloc(na), b32 = vk.alloc(nb), a16 = vk.alloc((na + 1) / 2), b16 = vk.alloc((nb + 1) / 2),
            c = vk.alloc(nc), bb = vk.alloc(size_t(t.N));
  vk.upload(*a32, a.data(), na);
  vk.upload(*b32, b.data(), nb);
  vk.upload(*c, c0.data(), nc);
  vk.upload(*bb, bias.data(), bias.size());
  vk.to_fp16(*a32, *a16, na);
  vk.to_fp16(*b32, *b16, nb);
  if (t.bias) g.bias = bb.get();
  vk.set_matmul_splits(t.splits);
  vk.matmul_fp16(*a16, *b16, *c, g);
  std::vector<float> got(nc);
  vk.download(*c, got.data(), nc);

  std::vector<bool> in_product(nc, false);
  const double per_s = double(t.K + 4) * std::ldexp(1.0, -23);
  const std::string ctx = "batch " + std::to_string(t.batch) + " M " + std::to_string(t.M) + " N " +
                          std::to_string(t.N) + " K " + std::to_string(t.K) + (t.ta ? " Aᵀ" : "") +
                          (t.tb ? " Bᵀ" : "") + " pad " + std::to_string(t.pad) + " off " + std::to_string(t.off) +
                          " splits " + std::to_string(t.splits);
  for (int64_t bi = 0; bi < t.batch; ++bi)
    for (int64_t m = 0; m < t.M; ++m)
      for (int64_t n = 0; n < t.N; ++n) {
        double sum = 0, mag = 0;
        for (int64_t k = 0; k < t.K; ++k) {
          const double x = round_to_fp16(a[size_t(g.off_a + bi * g.stride_a + (t.ta ? k * g.lda + m : m * g.lda + k))]);
          const double y = round_to_fp16(b[size_t(g.off_b + bi * g.stride_b + (t.tb ? n * g.ldb + k : k * g.ldb + n))]);
          sum += x * y;
          mag += std::fabs(x * y);
        }
        const size_t idx = size_t(g.off_c + bi * g.stride_c + m * g.ldc + n);
        in_product[idx] = true;
        double want = t.alpha * sum, s = std::fabs(t.alpha) * mag;
        if (t.beta != 0) want += t.beta * c0[idx], s += std::fabs(t.beta * c0[idx]);
        if (t.bias) want += bias[size_t(n)], s += std::fabs(bias[size_t(n)]);
        ASSERT_LE(std::fabs(got[idx] - want), per_s * s + 1e-30)
            << ctx << " at batch " << bi << " m " << m << " n " << n << ": " << got[idx] << " vs " << want;
      }
  for (size_t i = 0; i < nc; ++i)
    if (!in_product[i]) {
      ASSERT_EQ(bits_of(got[i]), bits_of(c0[i])) << ctx << ": C[" << i << "] outside the product";
    }
}

}  // namespace

TEST_F(VulkanFp16Test, MatmulOddAndRoundShapesAllTransposes) {
  if (const std::string why = no_fp16_storage(); !why.empty()) GTEST_SKIP() << why;
  uint64_t seed = 100;
  for (int tr = 0; tr < 4; ++tr)
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 13, 127}, {64, 64, 64}, {127, 3, 13}})
      run_half_case(*vk, {1, M, N, K, bool(tr & 1), bool(tr & 2)}, seed++);
}

TEST_F(VulkanFp16Test, MatmulOffsetsBatchBiasBetaAndSplitK) {
  if (const std::string why = no_fp16_storage(); !why.empty()) GTEST_SKIP() << why;
  // An odd fp16 offset puts operands mid-word; padding breaks the vec4 path; a batch with B
  // shared; alpha, beta and the fused bias; split-K over fp16 operands.
  run_half_case(*vk, {2, 13, 5, 33, false, true, /*pad=*/1, /*off=*/1, /*shared_b=*/true, /*bias=*/true, 0.5f, -1.5f},
                7);
  run_half_case(*vk, {3, 4, 8, 12, true, false, 0, 2, false, false, 1.0f, 0.0f}, 8);
  run_half_case(*vk, {1, 5, 7, 200, false, false, 0, 0, false, true, 1.0f, 1.0f, /*splits=*/3}, 9);
}

#else
TEST(VulkanFp16Test, BuiltWithoutVulkan) { GTEST_SKIP() << "built without Vulkan"; }
#endif
