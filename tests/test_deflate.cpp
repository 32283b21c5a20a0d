// Our DEFLATE compressor (io/deflate.h) against our inflate, and the PNG writer's filtered,
// compressed scanlines decoded independently here (chunks, zlib stream, per-row filters).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/deflate.h"
#include "io/image.h"
#include "io/inflate.h"

namespace ait {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed, uint32_t alphabet = 256) {
  Rng rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = uint8_t(rng.below(alphabet));
  return v;
}

void expect_round_trip(const std::vector<uint8_t>& in, const std::string& what) {
  const std::vector<uint8_t> raw = deflate_compress(in.data(), in.size());
  size_t consumed = 0;
  EXPECT_EQ(inflate_raw(raw.data(), raw.size(), what, &consumed), in) << what;
  EXPECT_EQ(consumed, raw.size()) << what;
  const std::vector<uint8_t> z = zlib_compress(in.data(), in.size());
  EXPECT_EQ(zlib_decompress(z.data(), z.size(), what), in) << what;
  // Never much worse than storing: a block ends after at most 32768 symbols (so at least every
  // 32768 bytes), a stored block is cut at 65535 bytes, and each stored block costs 5 bytes.
  EXPECT_LE(raw.size(), in.size() + 5 * (in.size() / 32768 + in.size() / 65535 + 2)) << what;
}

TEST(DeflateTest, RoundTripsThroughOurInflate) {
  expect_round_trip({}, "empty");
  for (size_t n : {1, 2, 3, 13, 127, 1000, 70000}) expect_round_trip(random_bytes(n, n), "random " + std::to_string(n));
  for (size_t n : {1, 3, 258, 259, 1000, 100000})
    expect_round_trip(std::vector<uint8_t>(n, 7), "run " + std::to_string(n));
  // A small alphabet: many literals and short matches, more symbols than one block holds.
  expect_round_trip(random_bytes(300001, 5, 4), "four letters");
  // Periods near the window's edge: matches at distance 32768 and just beyond.
  for (size_t period : {size_t(7), size_t(32767), size_t(32768), size_t(32769)}) {
    std::vector<uint8_t> base = random_bytes(period, period), in;
    for (int copy = 0; copy < 3; ++copy) in.insert(in.end(), base.begin(), base.end());
    expect_round_trip(in, "period " + std::to_string(period));
  }
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "the memory slots compete for the patches " + std::to_string(i % 97) + "; ";
  expect_round_trip(std::vector<uint8_t>(text.begin(), text.end()), "text");
}

TEST(DeflateTest, CompressesWhatRepeats) {
  const std::vector<uint8_t> zeros(1 << 20, 0);
  EXPECT_LT(deflate_compress(zeros.data(), zeros.size()).size(), zeros.size() / 500);
  // Two symbols of equal frequency and no repeats worth a match: about one bit a byte.
  const std::vector<uint8_t> coin = random_bytes(80000, 3, 2);
  const size_t coin_size = deflate_compress(coin.data(), coin.size()).size();
  EXPECT_LT(coin_size, coin.size() / 6);
  EXPECT_GT(coin_size, coin.size() / 10);  // 1 bit a byte is the entropy: less would be a miscount
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// The pixels of a PNG that encode_png wrote (8-bit, not interlaced), decoded without decode_png:
// all IDAT data inflated, each row unfiltered by the PNG spec's formulas. `filters` receives
// each row's filter type.
std::vector<uint8_t> decode_independently(const std::vector<uint8_t>& png, int channels, std::vector<int>& filters) {
  std::vector<uint8_t> idat;
  uint32_t w = 0, h = 0;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t len = be32(&png[at]);
    const std::string type(png.begin() + long(at) + 4, png.begin() + long(at) + 8);
    if (type == "IHDR") w = be32(&png[at + 8]), h = be32(&png[at + 12]);
    if (type == "IDAT") idat.insert(idat.end(), png.begin() + long(at) + 8, png.begin() + long(at) + 8 + long(len));
    at += 12 + len;
  }
  const std::vector<uint8_t> rows = zlib_decompress(idat.data(), idat.size(), "png");
  const size_t stride = size_t(w) * size_t(channels);
  EXPECT_EQ(rows.size(), (stride + 1) * h);
  std::vector<uint8_t> px(stride * h, 0);
  filters.clear();
  for (size_t y = 0; y < h && rows.size() == (stride + 1) * h; ++y) {
    const int f = rows[y * (stride + 1)];
    filters.push_back(f);
    for (size_t x = 0; x < stride; ++x) {
      const int a = x >= size_t(channels) ? px[y * stride + x - size_t(channels)] : 0;
      const int b = y ? px[(y - 1) * stride + x] : 0;
      const int c = (y && x >= size_t(channels)) ? px[(y - 1) * stride + x - size_t(channels)] : 0;
      const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
      const int pred[5] = {0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c};
      EXPECT_LE(f, 4);
      px[y * stride + x] = uint8_t(rows[y * (stride + 1) + 1 + x] + pred[f <= 4 ? f : 0]);
    }
  }
  return px;
}

// A picture with flat areas, gradients and edges, as the tools draw them.
std::vector<uint8_t> structured(int w, int h, int channels) {
  std::vector<uint8_t> px(size_t(w) * size_t(h) * size_t(channels));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        px[(size_t(y) * size_t(w) + size_t(x)) * size_t(channels) + size_t(c)] =
            uint8_t(((x / 9 + y / 5) % 3 == 0) ? 40 * c : (x * 3 + y * (c + 1)) & 0xFF);
  return px;
}

TEST(DeflateTest, PngRowsRoundTripAtOddSizes) {
  const int sizes[][2] = {{1, 1}, {3, 13}, {13, 3}, {127, 5}, {5, 127}, {64, 64}};
  for (int channels : {1, 3, 4})
    for (auto [w, h] : sizes)
      for (int kind = 0; kind < 2; ++kind) {
        const std::string what = std::to_string(w) + "x" + std::to_string(h) + "x" + std::to_string(channels) +
                                 (kind ? " structured" : " random");
        const std::vector<uint8_t> px =
            kind ? structured(w, h, channels) : random_bytes(size_t(w * h * channels), uint64_t(w * h + channels));
        const std::vector<uint8_t> png = encode_png(px.data(), w, h, channels);
        std::vector<int> filters;
        EXPECT_EQ(decode_independently(png, channels, filters), px) << what;
        const Image im = decode_png(png, what);  // the decoder agrees (it drops alpha)
        ASSERT_EQ(im.channels, channels == 1 ? 1 : 3) << what;
        for (size_t p = 0; p < size_t(w * h); ++p)
          for (size_t c = 0; c < size_t(im.channels); ++c)
            ASSERT_EQ(im.pixels[p * size_t(im.channels) + c], px[p * size_t(channels) + c]) << what;
      }
}

TEST(DeflateTest, PngFiltersAreChosenAndPay) {
  const int w = 301, h = 77;
  const std::vector<uint8_t> px = structured(w, h, 3);
  const std::vector<uint8_t> png = encode_png(px.data(), w, h, 3);
  std::vector<int> filters;
  ASSERT_EQ(decode_independently(png, 3, filters), px);
  int other_than_none = 0;
  for (int f : filters) other_than_none += f != 0;
  EXPECT_GT(other_than_none, 0);  // the gradients predict better than no filter
  EXPECT_LT(png.size(), px.size() / 8);
}

}  // namespace
}  // namespace ait
