// Tests for src/convert.*: synthetic generators, CIFAR / .npy / image-folder converters, the
// PNG codec and the validation split. Every test writes its own tiny inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "apps/convert.h"
#include "core/rng.h"
#include "io/inflate.h"
#include "testutil.h"

namespace fs = std::filesystem;
using namespace ait;
using test::error_of;
using test::run_program;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("ait_convert_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(r.next_u32());
  return v;
}

void put32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}

// Hand-built PNG: `raw` is the already-filtered scanline data (filter byte per row).
std::vector<uint8_t> build_png(const std::vector<uint8_t>& raw, int w, int h, int depth, int ctype,
                               const std::vector<uint8_t>& plte = {}, int interlace = 0) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  auto chunk = [&](const char* t, const std::vector<uint8_t>& d) {
    put32(out, uint32_t(d.size()));
    size_t s = out.size();
    out.insert(out.end(), t, t + 4);
    out.insert(out.end(), d.begin(), d.end());
    put32(out, crc32(out.data() + s, d.size() + 4));
  };
  std::vector<uint8_t> ihdr;
  put32(ihdr, uint32_t(w));
  put32(ihdr, uint32_t(h));
  ihdr.insert(ihdr.end(), {uint8_t(depth), uint8_t(ctype), 0, 0, uint8_t(interlace)});
  chunk("IHDR", ihdr);
  if (!plte.empty()) chunk("PLTE", plte);
  chunk("tEXt", {'a', 0, 'b'});
  chunk("IDAT", zlib_compress_stored(raw.data(), raw.size()));
  chunk("IEND", {});
  return out;
}

// Filters each row of 8-bit interleaved pixels with filter (row % 5).
std::vector<uint8_t> filter_rows(const std::vector<uint8_t>& px, int w, int h, int bpp) {
  const size_t stride = size_t(w) * size_t(bpp);
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    int f = y % 5;
    raw.push_back(uint8_t(f));
    for (size_t x = 0; x < stride; ++x) {
      int cur = px[y * stride + x];
      int a = x >= size_t(bpp) ? px[y * stride + x - bpp] : 0;
      int b = y > 0 ? px[(y - 1) * stride + x] : 0;
      int c = (y > 0 && x >= size_t(bpp)) ? px[(y - 1) * stride + x - bpp] : 0;
      int pred = 0;
      if (f == 1) pred = a;
      if (f == 2) pred = b;
      if (f == 3) pred = (a + b) >> 1;
      if (f == 4) {
        int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
      }
      raw.push_back(uint8_t(cur - pred));
    }
  }
  return raw;
}

// Names of the entries of `dir`, sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A CIFAR-10 batch of `records` random records with labels r % 10.
std::vector<uint8_t> cifar10_batch(int records, uint64_t seed) {
  std::vector<uint8_t> pix = random_bytes(size_t(records) * 3072, seed), f;
  for (int r = 0; r < records; ++r) {
    f.push_back(uint8_t(r % 10));
    f.insert(f.end(), pix.begin() + r * 3072, pix.begin() + (r + 1) * 3072);
  }
  return f;
}

// An uncompressed IDX file of unsigned bytes.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b = {0, 0, 8, uint8_t(dims.size())};
  for (uint32_t d : dims) put32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST(TriangleTest, EquilateralConditionAndPixelsInside) {
  std::vector<TriangleScene> scenes;
  Dataset ds = make_triangle_dataset(40, 7, 0, &scenes);
  ASSERT_EQ(ds.n, 40);
  ASSERT_EQ(scenes.size(), 40u);
  EXPECT_EQ(ds.channels, 1);
  EXPECT_EQ(ds.height, 64);
  int count[2] = {0, 0};
  for (size_t i = 0; i < scenes.size(); ++i) {
    const TriangleScene& s = scenes[i];
    EXPECT_EQ(ds.labels[i], s.label);
    ++count[s.label];
    double d[3];
    for (int k = 0; k < 3; ++k) {
      int j = (k + 1) % 3;
      d[k] = std::hypot(s.vx[k] - s.vx[j], s.vy[k] - s.vy[j]);
    }
    if (s.label == 0) {
      EXPECT_NEAR(d[0], d[1], 1e-6);
      EXPECT_NEAR(d[1], d[2], 1e-6);
    } else {
      EXPECT_GT(std::max({d[0], d[1], d[2]}) - std::min({d[0], d[1], d[2]}), 1e-3);
    }
    ASSERT_EQ(s.px.size(), 24u);
    for (size_t p = 0; p < 24; ++p) {
      // Each disc (radius 2) lies inside the image, and within 1 px of its vertex.
      EXPECT_GE(s.px[p] - 2, 0.0);
      EXPECT_LE(s.px[p] + 2, 63.0);
      EXPECT_GE(s.py[p] - 2, 0.0);
      EXPECT_LE(s.py[p] + 2, 63.0);
      EXPECT_LE(std::abs(s.px[p] - s.vx[p / 8]), 1.0);
      EXPECT_LE(std::abs(s.py[p] - s.vy[p / 8]), 1.0);
      // The pixel nearest the point centre is drawn.
      int x = int(std::lround(s.px[p])), y = int(std::lround(s.py[p]));
      EXPECT_EQ(ds.images[i * 4096 + size_t(y) * 64 + size_t(x)], 255);
    }
    // Every lit pixel is within 2 px of some point.
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x) {
        uint8_t v = ds.images[i * 4096 + size_t(y) * 64 + size_t(x)];
        ASSERT_TRUE(v == 0 || v == 255);
        if (!v) continue;
        bool near = false;
        for (size_t p = 0; p < 24 && !near; ++p) near = std::hypot(x - s.px[p], y - s.py[p]) <= 2.0 + 1e-9;
        ASSERT_TRUE(near) << "image " << i << " pixel " << x << "," << y;
      }
  }
  EXPECT_EQ(count[0], 20);
  EXPECT_EQ(count[1], 20);
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"equilateral", "random"}));
}

TEST(TriangleTest, DeterministicBySeedAndStream) {
  fs::path dir = temp_dir("tri");
  save_dataset((dir / "a").string(), make_triangle_dataset(6, 1, 0));
  save_dataset((dir / "b").string(), make_triangle_dataset(6, 1, 0));
  save_dataset((dir / "c").string(), make_triangle_dataset(6, 2, 0));
  EXPECT_EQ(read_file((dir / "a").string()), read_file((dir / "b").string()));
  EXPECT_NE(read_file((dir / "a").string()), read_file((dir / "c").string()));
  EXPECT_NE(make_triangle_dataset(6, 1, 0).images, make_triangle_dataset(6, 1, 1).images);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
TEST(ConvertTest, Cifar10RoundTrip) {
  fs::path dir = temp_dir("cifar10");
  std::vector<uint8_t> f1, f2;
  std::vector<uint8_t> pix = random_bytes(7 * 3072, 3);
  for (int r = 0; r < 7; ++r) {
    auto& f = r < 5 ? f1 : f2;
    f.push_back(uint8_t((r * 3) % 10));
    f.insert(f.end(), pix.begin() + r * 3072, pix.begin() + (r + 1) * 3072);
  }
  write_bytes(dir / "b1.bin", f1);
  write_bytes(dir / "b2.bin", f2);
  Dataset ds = dataset_from_cifar({(dir / "b1.bin").string(), (dir / "b2.bin").string()}, false, false);
  ASSERT_EQ(ds.n, 7);
  EXPECT_EQ(ds.channels, 3);
  EXPECT_EQ(ds.height, 32);
  EXPECT_EQ(ds.images, pix);
  for (int r = 0; r < 7; ++r) EXPECT_EQ(ds.labels[size_t(r)], (r * 3) % 10);
  EXPECT_EQ(ds.classes[0], "airplane");
  save_dataset((dir / "out").string(), ds);
  Dataset back = load_dataset((dir / "out").string());
  EXPECT_EQ(back.images, pix);
  fs::remove_all(dir);
}

TEST(ConvertTest, Cifar100CoarseFineAndErrors) {
  fs::path dir = temp_dir("cifar100");
  std::vector<uint8_t> f, pix = random_bytes(5 * 3072, 4);
  for (int r = 0; r < 5; ++r) {
    f.push_back(uint8_t(r + 10));  // coarse
    f.push_back(uint8_t(r * 20));  // fine
    f.insert(f.end(), pix.begin() + r * 3072, pix.begin() + (r + 1) * 3072);
  }
  const std::string p = (dir / "train.bin").string();
  write_bytes(p, f);
  Dataset c = dataset_from_cifar({p}, true, false), fi = dataset_from_cifar({p}, true, true);
  EXPECT_EQ(c.classes.size(), 20u);
  EXPECT_EQ(fi.classes.size(), 100u);
  EXPECT_EQ(fi.classes[99], "fine_99");
  for (int r = 0; r < 5; ++r) {
    EXPECT_EQ(c.labels[size_t(r)], r + 10);
    EXPECT_EQ(fi.labels[size_t(r)], r * 20);
  }
  EXPECT_EQ(c.images, pix);
  write_bytes(dir / "names.txt", {'a', '\n', '\n', 'b', ' ', 'c', '\r', '\n'});
  // Only two names: fine label 20 of record 1 is out of range.
  std::string e = error_of([&] { dataset_from_cifar({p}, true, true, (dir / "names.txt").string()); });
  EXPECT_NE(e.find("record 1"), std::string::npos) << e;
  EXPECT_NE(e.find(p), std::string::npos) << e;
  // Truncated file.
  f.pop_back();
  write_bytes(dir / "short.bin", f);
  e = error_of([&] { dataset_from_cifar({(dir / "short.bin").string()}, true, false); });
  EXPECT_NE(e.find("short.bin"), std::string::npos) << e;
  EXPECT_NE(e.find(std::to_string(f.size())), std::string::npos) << e;
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
TEST(ConvertTest, NpyU8NhwcAndNchw) {
  fs::path dir = temp_dir("npy");
  const int N = 3, H = 3, W = 4, C = 3;  // read as nchw: 3 channels of 4x3
  std::vector<uint8_t> px = random_bytes(N * H * W * C, 5);
  std::vector<int64_t> lab = {2, 0, 1};
  write_bytes(dir / "x.npy", write_npy("|u1", {N, H, W, C}, px.data(), px.size()));
  write_bytes(dir / "y.npy", write_npy("<i8", {N}, lab.data(), lab.size() * 8));
  Dataset ds = dataset_from_npy((dir / "x.npy").string(), (dir / "y.npy").string(), "nhwc", {});
  ASSERT_EQ(ds.channels, C);
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"0", "1", "2"}));
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
          ASSERT_EQ(ds.images[size_t(((n * C + c) * H + y) * W + x)], px[size_t(((n * H + y) * W + x) * C + c)]);
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{2, 0, 1}));
  Dataset nchw = dataset_from_npy((dir / "x.npy").string(), (dir / "y.npy").string(), "nchw", {"a", "b", "c"});
  EXPECT_EQ(nchw.channels, H);
  EXPECT_EQ(nchw.images, px);
  // 3-D = one channel, labels of every integer dtype.
  const char* dtypes[] = {"<i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8"};
  for (const char* dt : dtypes) {
    size_t item = size_t(dt[2] - '0');
    std::vector<uint8_t> lb(N * item, 0);
    for (int n = 0; n < N; ++n) lb[n * item] = uint8_t(n);
    write_bytes(dir / "l.npy", write_npy(dt, {N}, lb.data(), lb.size()));
    write_bytes(dir / "g.npy", write_npy("|u1", {N, H * C, W}, px.data(), px.size()));
    Dataset g = dataset_from_npy((dir / "g.npy").string(), (dir / "l.npy").string(), "nhwc", {});
    EXPECT_EQ(g.channels, 1);
    EXPECT_EQ(g.images, px);
    EXPECT_EQ(g.labels, (std::vector<int32_t>{0, 1, 2})) << dt;
  }
  // Negative / out-of-range labels name the index.
  std::vector<int32_t> bad = {0, -1, 1};
  write_bytes(dir / "bad.npy", write_npy("<i4", {N}, bad.data(), 12));
  std::string e = error_of([&] { dataset_from_npy((dir / "x.npy").string(), (dir / "bad.npy").string(), "nhwc", {}); });
  EXPECT_NE(e.find("index 1"), std::string::npos) << e;
  e = error_of([&] { dataset_from_npy((dir / "x.npy").string(), (dir / "y.npy").string(), "nhwc", {"a", "b"}); });
  EXPECT_NE(e.find("index 0"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ConvertTest, NpyFloatAndVersion2) {
  fs::path dir = temp_dir("npyf");
  std::vector<float> v = {0.f, 1.f, 0.5f, 0.2f, 1.f / 255, 0.999f};
  std::vector<uint8_t> lab = {0, 1};
  write_bytes(dir / "y.npy", write_npy("|u1", {2}, lab.data(), 2));
  std::vector<uint8_t> b = write_npy("<f4", {2, 1, 3}, v.data(), v.size() * 4);
  // Rewrite as version 2.0: 4-byte header length.
  std::vector<uint8_t> v2(b.begin(), b.begin() + 8);
  v2[6] = 2;
  uint32_t hl = uint32_t(b[8]) | uint32_t(b[9]) << 8;
  for (int s = 0; s < 32; s += 8) v2.push_back(uint8_t(hl >> s));
  v2.insert(v2.end(), b.begin() + 10, b.end());
  write_bytes(dir / "x.npy", v2);
  Dataset ds = dataset_from_npy((dir / "x.npy").string(), (dir / "y.npy").string(), "nhwc", {});
  std::vector<uint8_t> want;
  for (float x : v) want.push_back(uint8_t(std::lround(x * 255.0)));
  EXPECT_EQ(ds.images, want);
  v[4] = std::nanf("");
  write_bytes(dir / "x.npy", write_npy("<f4", {2, 1, 3}, v.data(), v.size() * 4));
  std::string e = error_of([&] { dataset_from_npy((dir / "x.npy").string(), (dir / "y.npy").string(), "nhwc", {}); });
  EXPECT_NE(e.find("index 4"), std::string::npos) << e;
  v[4] = 1.5f;
  write_bytes(dir / "x.npy", write_npy("<f4", {2, 1, 3}, v.data(), v.size() * 4));
  e = error_of([&] { dataset_from_npy((dir / "x.npy").string(), (dir / "y.npy").string(), "nhwc", {}); });
  EXPECT_NE(e.find("index 4"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ConvertTest, NpyHostileHeaders) {
  std::vector<uint8_t> d(12, 7);
  std::vector<uint8_t> ok = write_npy("|u1", {3, 4}, d.data(), d.size());
  {
    // numpy's own spelling of a 1-D header, written out by hand (v1.0, padded to 128 bytes).
    std::string h = "{'descr': '<i2', 'fortran_order': False, 'shape': (6,), }";
    h.append(128 - 10 - 1 - h.size(), ' ');
    h += '\n';
    const uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(h.size()), 0};
    std::vector<uint8_t> b(head, head + 10);
    for (char c : h) b.push_back(uint8_t(c));
    for (uint8_t x : d) b.push_back(x);
    NpyArray a = parse_npy(b, "np.npy");
    EXPECT_EQ(a.descr, "<i2");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{6}));
    EXPECT_EQ(a.data, d);
    std::vector<uint8_t> mine = write_npy("<i2", {6}, d.data(), d.size());
    EXPECT_EQ(mine, b);
  }
  EXPECT_EQ(parse_npy(ok, "ok").shape, (std::vector<int64_t>{3, 4}));
  std::vector<uint8_t> b = ok;
  b[8] = 0xff, b[9] = 0xff;  // header length past EOF
  EXPECT_NE(error_of([&] { parse_npy(b, "h.npy"); }).find("past the end"), std::string::npos);
  b = write_npy("|u1", {3, 5}, d.data(), d.size());  // shape claims more data
  EXPECT_NE(error_of([&] { parse_npy(b, "s.npy"); }).find("needs 15"), std::string::npos);
  b = ok;
  b[0] = 'X';
  EXPECT_NE(error_of([&] { parse_npy(b, "m.npy"); }).find("magic"), std::string::npos);
  std::string h(ok.begin() + 10, ok.begin() + 10 + ok[8]);
  size_t at = h.find("False");
  b = ok;
  std::memcpy(b.data() + 10 + at, "True ", 5);
  EXPECT_NE(error_of([&] { parse_npy(b, "f.npy"); }).find("fortran_order"), std::string::npos);
  b = ok;
  b.resize(9);
  EXPECT_NE(error_of([&] { parse_npy(b, "t.npy"); }), "(no error)");
  b = ok;
  b[10] = '[';  // not a dict
  EXPECT_NE(error_of([&] { parse_npy(b, "d.npy"); }).find("header"), std::string::npos);
  b = write_npy("|u1", {99999999999LL, 99999999999LL}, d.data(), d.size());
  EXPECT_NE(error_of([&] { parse_npy(b, "big.npy"); }).find("too large"), std::string::npos);
  b = write_npy("<f", {12}, d.data(), d.size());
  EXPECT_NE(error_of([&] { parse_npy(b, "dt.npy"); }).find("dtype"), std::string::npos);
  b = write_npy(">i4", {3}, d.data(), d.size());
  EXPECT_NE(error_of([&] { parse_npy(b, "be.npy"); }).find("dtype"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
TEST(ConvertTest, PngEncoderDecoderRoundTrip) {
  for (int ch : {1, 3, 4}) {
    const int w = 7, h = 5;
    std::vector<uint8_t> px = random_bytes(size_t(w * h * ch), uint64_t(ch));
    Image im = decode_png(encode_png(px.data(), w, h, ch), "rt.png");
    ASSERT_EQ(im.width, w);
    ASSERT_EQ(im.height, h);
    ASSERT_EQ(im.channels, ch == 1 ? 1 : 3);
    for (int p = 0; p < w * h; ++p)
      for (int c = 0; c < im.channels; ++c) ASSERT_EQ(im.pixels[size_t(p * im.channels + c)], px[size_t(p * ch + c)]);
  }
}

TEST(ConvertTest, PngAllFiltersGrayAlphaAndPalette) {
  const int w = 6, h = 10;
  // RGB and gray+alpha with filter types 0..4 cycling per row.
  std::vector<uint8_t> rgb = random_bytes(w * h * 3, 11), ga = random_bytes(w * h * 2, 12);
  Image a = decode_png(build_png(filter_rows(rgb, w, h, 3), w, h, 8, 2), "f.png");
  EXPECT_EQ(a.pixels, rgb);
  Image g = decode_png(build_png(filter_rows(ga, w, h, 2), w, h, 8, 4), "ga.png");
  ASSERT_EQ(g.channels, 1);
  for (int p = 0; p < w * h; ++p) ASSERT_EQ(g.pixels[size_t(p)], ga[size_t(2 * p)]);
  // Palette, 2 bits per pixel, 4 entries.
  std::vector<uint8_t> plte = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120};
  std::vector<int> idx(w * h);
  Rng r(13);
  for (int& i : idx) i = int(r.below(4));
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    for (int x = 0; x < w; x += 4) {
      uint8_t byte = 0;
      for (int k = 0; k < 4; ++k)
        if (x + k < w) byte |= uint8_t(idx[size_t(y * w + x + k)] << (6 - 2 * k));
      raw.push_back(byte);
    }
  }
  Image p = decode_png(build_png(raw, w, h, 2, 3, plte), "p.png");
  ASSERT_EQ(p.channels, 3);
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(p.pixels[size_t(i * 3 + c)], plte[size_t(idx[size_t(i)] * 3 + c)]);
}

TEST(ConvertTest, PngHostile) {
  std::vector<uint8_t> px = random_bytes(12, 1);
  std::vector<uint8_t> ok = encode_png(px.data(), 2, 2, 3);
  std::vector<uint8_t> b = ok;
  b[1] = 'Q';
  EXPECT_NE(error_of([&] { decode_png(b, "sig.png"); }).find("signature"), std::string::npos);
  b = ok;
  b[8] = 0x7f;  // IHDR length past EOF
  EXPECT_NE(error_of([&] { decode_png(b, "len.png"); }).find("past the end"), std::string::npos);
  b = ok;
  b[16] ^= 1;  // inside IHDR data
  EXPECT_NE(error_of([&] { decode_png(b, "crc.png"); }).find("CRC"), std::string::npos);
  b = ok;
  b.resize(b.size() - 12);  // no IEND
  EXPECT_NE(error_of([&] { decode_png(b, "trunc.png"); }).find("IEND"), std::string::npos);
  std::vector<uint8_t> raw(3 * 7, 0);
  raw[0] = raw[7] = raw[14] = 0;
  EXPECT_NE(error_of([&] { decode_png(build_png(raw, 2, 3, 8, 2, {}, 1), "i.png"); }).find("interlaced"),
            std::string::npos);
  EXPECT_NE(error_of([&] { decode_png(build_png(raw, 2, 3, 16, 2), "d.png"); }).find("bit depth 16"),
            std::string::npos);
  raw[7] = 9;  // bad filter type
  EXPECT_NE(error_of([&] { decode_png(build_png(raw, 2, 3, 8, 2), "flt.png"); }).find("filter"), std::string::npos);
}

TEST(ConvertTest, PnmWithComments) {
  std::string hdr = "P6\n# a comment\n2 # w\n1\n255\n";
  std::vector<uint8_t> b(hdr.begin(), hdr.end());
  b.insert(b.end(), {1, 2, 3, 4, 5, 6});
  Image im = decode_pnm(b, "c.ppm");
  EXPECT_EQ(im.width, 2);
  EXPECT_EQ(im.channels, 3);
  EXPECT_EQ(im.pixels, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  b.pop_back();
  EXPECT_NE(error_of([&] { decode_pnm(b, "c.ppm"); }).find("truncated"), std::string::npos);
  std::string h16 = "P5 1 1 65535\n";
  EXPECT_NE(error_of([&] { decode_pnm(std::vector<uint8_t>(h16.begin(), h16.end()), "x.pgm"); }).find("maxval"),
            std::string::npos);
}

TEST(ConvertTest, FolderMixedFormatsResizeAndMismatch) {
  fs::path dir = temp_dir("folder");
  fs::create_directories(dir / "b_dog");
  fs::create_directories(dir / "a_cat");
  const int w = 3, h = 2;
  std::vector<uint8_t> gray = random_bytes(w * h, 21), rgb = random_bytes(w * h * 3, 22);
  std::vector<uint8_t> rgba = random_bytes(w * h * 4, 23);
  std::string pgm = "P5\n3 2\n255\n";
  std::vector<uint8_t> f(pgm.begin(), pgm.end());
  f.insert(f.end(), gray.begin(), gray.end());
  write_bytes(dir / "a_cat" / "1.pgm", f);
  write_bytes(dir / "a_cat" / "2.PNG", encode_png(rgba.data(), w, h, 4));
  write_bytes(dir / "b_dog" / "x.png", encode_png(rgb.data(), w, h, 3));
  write_bytes(dir / "b_dog" / "notes.txt", {'h', 'i'});
  Dataset ds = dataset_from_folder(dir.string());
  ASSERT_EQ(ds.n, 3);
  EXPECT_EQ(ds.channels, 3);
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"a_cat", "b_dog"}));
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{0, 0, 1}));
  const size_t plane = size_t(w * h), img = 3 * plane;
  for (size_t c = 0; c < 3; ++c)
    for (size_t p = 0; p < plane; ++p) {
      ASSERT_EQ(ds.images[c * plane + p], gray[p]);                // gray expanded
      ASSERT_EQ(ds.images[img + c * plane + p], rgba[p * 4 + c]);  // alpha dropped
      ASSERT_EQ(ds.images[2 * img + c * plane + p], rgb[p * 3 + c]);
    }
  // A different size is rejected naming both files and sizes, unless --size is given.
  std::vector<uint8_t> big = random_bytes(4 * 6 * 3, 24);
  write_bytes(dir / "b_dog" / "y.png", encode_png(big.data(), 6, 4, 3));
  std::string e = error_of([&] { dataset_from_folder(dir.string()); });
  EXPECT_NE(e.find("y.png"), std::string::npos) << e;
  EXPECT_NE(e.find("4x6"), std::string::npos) << e;
  EXPECT_NE(e.find("2x3"), std::string::npos) << e;
  Dataset r = dataset_from_folder(dir.string(), 2, 3);
  ASSERT_EQ(r.n, 4);
  // 4x6 -> 2x3 nearest: source pixel (2y+1)*4/4 = 2y+1 rows, (2x+1)*6/6 = 2x+1 cols.
  for (size_t c = 0; c < 3; ++c)
    for (size_t y = 0; y < 2; ++y)
      for (size_t x = 0; x < 3; ++x)
        ASSERT_EQ(r.images[3 * img + c * plane + y * 3 + x], big[((2 * y + 1) * 6 + 2 * x + 1) * 3 + c]);
  fs::remove_all(dir);
}

TEST(ConvertTest, SplitMovesRowsAndUsesTrainStats) {
  Dataset ds = make_triangle_dataset(20, 3, 0);
  Dataset orig = ds;
  Dataset val = split_dataset(ds, 5, 9);
  EXPECT_EQ(val.n, 5);
  EXPECT_EQ(ds.n, 15);
  Dataset again = orig;
  EXPECT_EQ(split_dataset(again, 5, 9).images, val.images);  // deterministic
  Dataset other = orig;
  EXPECT_NE(split_dataset(other, 5, 10).images, val.images);  // another seed, other rows
  Dataset t = ds;
  compute_channel_stats(t);
  EXPECT_EQ(ds.mean, t.mean);
  EXPECT_EQ(val.mean, t.mean);
  EXPECT_EQ(val.std, t.std);
  // Every original row lands in exactly one part, in order.
  size_t iv = 0, it = 0;
  for (int64_t i = 0; i < orig.n; ++i) {
    const uint8_t* row = orig.images.data() + i * 4096;
    if (iv < size_t(val.n) && std::memcmp(row, val.images.data() + iv * 4096, 4096) == 0 &&
        val.labels[iv] == orig.labels[size_t(i)])
      ++iv;
    else if (std::memcmp(row, ds.images.data() + it * 4096, 4096) == 0) ++it;
  }
  EXPECT_EQ(iv, 5u);
  EXPECT_EQ(it, 15u);
  EXPECT_NE(error_of([&] { split_dataset(ds, 15, 1); }), "(no error)");
  validate_dataset(val, "val");
}

TEST(ConvertTest, MutatedInputsThrowOnlyAitError) {
  // Byte flips and truncations of valid PNG / PNM / .npy files: decoders either succeed or
  // throw ait::Error, never anything else (and never crash under the sanitizers).
  std::vector<uint8_t> px = random_bytes(5 * 4 * 3, 31);
  std::vector<uint8_t> png = build_png(filter_rows(px, 5, 4, 3), 5, 4, 8, 2);
  std::string pnm_h = "P6\n5 4\n255\n";
  std::vector<uint8_t> pnm(pnm_h.begin(), pnm_h.end());
  pnm.insert(pnm.end(), px.begin(), px.end());
  std::vector<uint8_t> npy = write_npy("|u1", {4, 5, 3}, px.data(), px.size());
  Rng r(99);
  for (int it = 0; it < 600; ++it) {
    int which = it % 3;
    std::vector<uint8_t> b = which == 0 ? png : which == 1 ? pnm : npy;
    if (r.below(4) == 0) {
      b.resize(size_t(r.below(b.size())));
    } else {
      for (int k = 0, m = 1 + int(r.below(4)); k < m; ++k) b[size_t(r.below(b.size()))] = uint8_t(r.next_u32());
    }
    try {
      if (which == 0) decode_png(b, "m.png");
      if (which == 1) decode_pnm(b, "m.ppm");
      if (which == 2) parse_npy(b, "m.npy");
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << it << ": non-ait exception " << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The converter's command line: outputs that would overwrite each other, failed runs, bad lists.
TEST(ConvertCliTest, ValOutSameAsOutIsRefusedBeforeWriting) {
  fs::path dir = temp_dir("sameout");
  const std::string d = dir.string();
  write_bytes(dir / "b.bin", cifar10_batch(6, 41));
  const std::string cifar = "cifar10 --input " + d + "/b.bin --split 2 ";
  // The same path, spelt the same, through "./", through "sub/..", and (for the generators)
  // the test file that the prefix also produces.
  const std::vector<std::string> runs = {
      cifar + "--out " + d + "/x.safetensors --val-out " + d + "/x.safetensors",
      cifar + "--out " + d + "/x.safetensors --val-out " + d + "/./x.safetensors",
      cifar + "--out " + d + "/x.safetensors --val-out " + d + "/nothere/../x.safetensors",
      "triangle --train 8 --test 2 --split 2 --out " + d + "/tri --val-out " + d + "/tri-test.safetensors",
  };
  for (const std::string& args : runs) {
    std::string out;
    EXPECT_NE(run_program("ait-convert", args, &out), 0) << args << "\n" << out;
    EXPECT_NE(out.find("--val-out"), std::string::npos) << out;
    EXPECT_EQ(entries(dir), std::vector<std::string>{"b.bin"}) << args << "\n" << out;
  }
  fs::remove_all(dir);
}

TEST(ConvertCliTest, FailedSplitRunLeavesNoOutput) {
  fs::path dir = temp_dir("failsplit");
  const std::string d = dir.string();
  write_bytes(dir / "b.bin", cifar10_batch(6, 42));
  std::string out;
  // The training output's folder does not exist: the run fails after the split.
  int rc = run_program("ait-convert",
                       "cifar10 --input " + d + "/b.bin --split 2 --val-out " + d + "/val.safetensors --out " + d +
                           "/missing/train.safetensors",
                       &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_EQ(entries(dir), std::vector<std::string>{"b.bin"}) << out;
  // The same run with a folder that exists writes both, and they hold 4 + 2 rows.
  rc = run_program(
      "ait-convert",
      "cifar10 --input " + d + "/b.bin --split 2 --val-out " + d + "/val.safetensors --out " + d + "/train.safetensors",
      &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(load_dataset(d + "/train.safetensors").n, 4);
  EXPECT_EQ(load_dataset(d + "/val.safetensors").n, 2);
  fs::remove_all(dir);
}

TEST(ConvertCliTest, DuplicateClassNamesAreRefused) {
  fs::path dir = temp_dir("dupclasses");
  const std::string d = dir.string();
  std::vector<uint8_t> px = random_bytes(4 * 3 * 5, 43), lab = {0, 1, 0, 1};
  write_bytes(dir / "x.npy", write_npy("|u1", {4, 3, 5}, px.data(), px.size()));
  write_bytes(dir / "y.npy", write_npy("|u1", {4}, lab.data(), lab.size()));
  write_bytes(dir / "x.idx", idx_bytes({4, 3, 5}, px));
  write_bytes(dir / "y.idx", idx_bytes({4}, lab));
  const std::vector<std::string> runs = {
      "ait-convert npy --images " + d + "/x.npy --labels " + d + "/y.npy --layout nhwc --classes cat,dog,cat",
      "ait convert idx --images " + d + "/x.idx --labels " + d + "/y.idx --classes cat,dog,cat",
  };
  for (const std::string& run : runs) {
    const size_t space = run.find(' ');
    std::string out;
    EXPECT_NE(run_program(run.substr(0, space), run.substr(space + 1) + " --out " + d + "/o.safetensors", &out), 0)
        << run << "\n"
        << out;
    EXPECT_NE(out.find("--classes"), std::string::npos) << out;
    EXPECT_NE(out.find("'cat'"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir / "o.safetensors")) << run;
  }
  fs::remove_all(dir);
}

TEST(ConvertTest, FolderWithAnEmptyClassIsRefused) {
  fs::path dir = temp_dir("emptyclass");
  fs::create_directories(dir / "a_full");
  fs::create_directories(dir / "b_empty");
  std::vector<uint8_t> rgb = random_bytes(2 * 2 * 3, 44);
  write_bytes(dir / "a_full" / "1.png", encode_png(rgb.data(), 2, 2, 3));
  write_bytes(dir / "b_empty" / "readme.txt", {'x'});  // present, but not an image
  std::string e = error_of([&] { dataset_from_folder(dir.string()); });
  EXPECT_NE(e.find((dir / "b_empty").string()), std::string::npos) << e;
  EXPECT_NE(e.find("no images"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ConvertTest, PnmWithTrailingBytesIsRefused) {
  for (const char* magic : {"P5", "P6"}) {
    const int ch = magic[1] == '5' ? 1 : 3;
    std::string hdr = std::string(magic) + "\n3 2\n255\n";
    std::vector<uint8_t> b(hdr.begin(), hdr.end());
    std::vector<uint8_t> px = random_bytes(size_t(6 * ch), 45);
    b.insert(b.end(), px.begin(), px.end());
    EXPECT_EQ(decode_pnm(b, "exact.pnm").pixels, px);
    b.push_back(0);
    std::string e = error_of([&] { decode_pnm(b, "long.pnm"); });
    EXPECT_NE(e.find("long.pnm"), std::string::npos) << e;
    EXPECT_NE(e.find("1 byte"), std::string::npos) << e;  // how many bytes are left over
  }
}

TEST(ConvertTest, NpyLayoutWithImplausibleChannelsIsRefused) {
  fs::path dir = temp_dir("layout");
  const std::string x = (dir / "x.npy").string(), y = (dir / "y.npy").string();
  std::vector<uint8_t> lab = {0, 1};
  write_bytes(y, write_npy("|u1", {2}, lab.data(), lab.size()));
  // NHWC data [2, 12, 7, 3] read as nchw would be 12 channels of 7x3.
  std::vector<uint8_t> px = random_bytes(2 * 12 * 7 * 3, 46);
  write_bytes(x, write_npy("|u1", {2, 12, 7, 3}, px.data(), px.size()));
  EXPECT_EQ(dataset_from_npy(x, y, "nhwc", {}).channels, 3);
  std::string e = error_of([&] { dataset_from_npy(x, y, "nchw", {}); });
  EXPECT_NE(e.find(x), std::string::npos) << e;
  EXPECT_NE(e.find("nchw"), std::string::npos) << e;
  EXPECT_NE(e.find("12 channels"), std::string::npos) << e;
  EXPECT_NE(e.find("1, 3 or 4"), std::string::npos) << e;
  // NCHW data [2, 1, 5, 9] read as nhwc would be 9 channels of 1x5.
  write_bytes(x, write_npy("|u1", {2, 1, 5, 9}, px.data(), 2 * 45));
  EXPECT_EQ(dataset_from_npy(x, y, "nchw", {}).channels, 1);
  e = error_of([&] { dataset_from_npy(x, y, "nhwc", {}); });
  EXPECT_NE(e.find("nhwc"), std::string::npos) << e;
  EXPECT_NE(e.find("9 channels"), std::string::npos) << e;
  fs::remove_all(dir);
}
