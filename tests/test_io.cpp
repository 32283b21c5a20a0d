// I/O layer: DEFLATE / zlib / gzip decoding, checksums, JSON, safetensors, IDX and the dataset
// file. Known compressed vectors were produced once with CPython's zlib/gzip modules and are
// embedded as hex; every hostile input must raise ait::Error naming the file and the field.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/dataset.h"
#include "io/idx.h"
#include "io/inflate.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "testutil.h"

using namespace ait;

namespace {

std::vector<uint8_t> unhex(const std::string& h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(uint8_t(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string str_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// Runs fn, which must throw ait::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ait exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "did not throw (expected a message containing '" << (parts.empty() ? "" : parts[0]) << "')";
}

// A fresh directory for one test, removed (with its files) at the end.
using TempDir = test::ScopedTempDir;

void write_raw(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
}

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The payload CPython compressed for kPayloadGz (same generator, same 32-bit LCG).
std::vector<uint8_t> test_payload(size_t n) {
  uint32_t state = 12345;
  auto next = [&] {
    state = state * 1103515245u + 12345u;
    return state >> 16;
  };
  std::vector<uint8_t> out;
  while (out.size() < n) {
    uint32_t r = next() % 4;
    if (r == 0 && out.size() > 50) {
      uint32_t dist = 1 + next() % uint32_t(std::min<size_t>(out.size(), 2000));
      uint32_t len = 3 + next() % 60;
      for (uint32_t i = 0; i < len; ++i) out.push_back(out[out.size() - dist]);
    } else if (r == 1) {
      uint32_t len = 1 + next() % 8;
      for (uint32_t i = 0; i < len; ++i) out.push_back(uint8_t(next() & 0xFF));
    } else {
      uint32_t len = 1 + next() % 20;
      for (uint32_t i = 0; i < len; ++i) out.push_back(uint8_t("abcdefgh"[next() % 8]));
    }
  }
  out.resize(n);
  return out;
}

// gzip.compress(test_payload(3000), compresslevel=9, mtime=0): one dynamic-Huffman member.
const char* kPayloadGz =
    "1f8b0800000000000203a5967f88df731cc72569b4d896385114b5366b32b5fc883a6d4b2caec552e38fd7aff7fb4dc34d4ac296922422"
    "b42c52975ad9c898942d9aac698de6476b25993fa81de6475cba7fcce3f5bd9d6c77bbfbde5dd7d5f73edfcffbfd7ebe9ebfde57ac9562"
    "56c26b73d128daa4444431afe266add526bf5e2da5c4dca3565b68291e621ae1566be3dda2556b44b35a42542bebbc8615f7c6ce261652"
    "ab57379122cdc278d09cf7a3abe324771e3d97fdb57a712bad82a14a3b6dcdfa4df1d2badda612850385817c5c34934d282631e15ce685"
    "29a281bc39cb394e94f51d78ff03fbe2b357bdfad88707f9c894a15245429b56a95bfa2ee87bfa9ea5fd876e7f68c7b7cb76be31ebbc0a"
    "24d93bef813597ae37b5c8579b3546a92517b2cc2327eed0363da2a2c37ef5260d95b504f38c923023f4cd1b781017c0e60aee525b5335"
    "170c02a1fcb83564b28029ce5710e95b43170ebcb9ed89b543667f6ebdfcc9253b2ebeee937ace5322de9a544bbdc09c808b25eb5655ac"
    "a80b74d70ea640653e54497715066d136cb4f9978fff3a7dd72b7acdd7f21b7bd4564bc13d019606a95337e50c60eebe888dd94ca11d65"
    "246030bf43e30c09866bf96162e8ff99bdffc86d605604d7690776fae48ad6f2c7aabb169f71edc67b7b5f1b3a73d11823b3d33140a076"
    "013c2e010ac9913ce924f2777736fc69837d645340efbf13bb67d2b30492d411574a4b43321a0a0b3acd395c32c74075e457f9fefa5bd8"
    "45bb8c271e913b2e39d2b33c405935b2676a6e94a06190f34b3258030c4ccd9f0020cbe48e713321e248a7e09f42eedf3b46dc290b7a57"
    "dc7ff7e783bb7a1fec1f5c3df0d5ec1fa6b1cfad581fc348c69b2e68a0d2b4008444ccfa72fbfcf9cf7f941bc147b8679b9264cf0e81b6"
    "eab36f387f1fa7769c086b92b65466859c6419dbd5491ce6e909859f42510005db678cc0c6076281a2b1ec8a255f2c9d5abffcbd75f5b6"
    "0f6e74a623c362543ebfe4386b9059d2386a2583138df879e7fcb967efdff2f83783c7c50ec36e5cfbfe814717f6bdfed965fffc346fef"
    "4112ee900129a57592377259325d96237173a6c89592a5210c4e16619f1576e5426b30a3204fff25e29c83e328822e5ad7a1c7b3a3bbbf"
    "e252d2ccc674827dd23b215565b848b5798387c2cccc3ae6ed4893d798b3072ab01e4ec20c791b8d33eb73d08a9b6a7687112544cb5b1d"
    "27b7519223ed095b9ee5ccbf147853bb32db4cbc39b6c6c2098b776e7d14cf2e45c32c8d7470ea5f34e3ce431f51ade6a6966a7bda1302"
    "0a13b245e6cddaca9b37ac6369c9326af85a46719d7081a9be7deee11f3f7de6914c288eb2a90c9408a82084938e5a2712b97273cfbe29"
    "914493814a8feb83191550dea0393c21c92bb9a69b386c71cfcb476ffaf9c0bb092b1c977396fdfedda9c32b861f662624c928455e2c7c"
    "87870099d7b67546c541bcd3c65160b28b67e70b8b0e0dacda745fb607d0d9171aeaf059cb17bcb35d337b3cc80c92382e201286a8a080"
    "1f0a49b323108c5a48de6918be2dbaa1fba88f0893b43b3a7108f6c8b6e0eaccdb0e32b2f7b248cabf261563a5b80b0000";

// Raw DEFLATE, Z_FIXED: "hello hello hello hello world" (one fixed-Huffman block).
const char* kFixedRaw = "cb48cdc9c957c8c020cbf38b725200";
const char* kFixedText = "hello hello hello hello world";
// Raw DEFLATE, level 9: one dynamic-Huffman block.
const char* kDynamicRaw =
    "b5cbd91540301445d156ae062cf3d0850f0d04414c8f9020d57b4df83efbd4a3c461543ba3d1746fe8e9c164d6fd0459a971715e847bd1"
    "d1e0a3fe0d5782ddfaa26174ab6b44aface4e4e486451d8634bfc3e92108a33849b3bc283f";
const std::string kDynamicText =
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox "
    "jumps over the lazy dog. Pack my box with five dozen liquor jugs! 0123456789";
// zlib.compress(b"zlib wrapper test: abcabcabcabcabcabc", 9)
const char* kZlib = "78daabcac94c52282f4a2c28482d5228492d2eb152484c4a4643000a870df1";
const char* kZlibText = "zlib wrapper test: abcabcabcabcabcabc";
// Two blocks separated by a Z_FULL_FLUSH (an empty stored block in between).
const char* kTwoBlocksRaw = "4acb2c2a2e5128482c2ad15148436203000000ffff2b4e4dcecf4b5128482c2a512846b001";
const char* kTwoBlocksText = "first part, first part, second part second part";

std::vector<uint8_t> payload_gz() { return unhex(kPayloadGz); }

}  // namespace

// ============================================================================================
// Checksums and DEFLATE
// ============================================================================================
TEST(InflateTest, Crc32KnownValues) {
  std::string s = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0xCBF43926u);
  EXPECT_EQ(crc32(nullptr, 0), 0u);
  // Chaining equals one pass, for every split (covers the 8-byte fast path and the tail).
  std::vector<uint8_t> p = test_payload(100);
  uint32_t whole = crc32(p.data(), p.size());
  for (size_t k = 0; k <= p.size(); ++k) EXPECT_EQ(crc32(p.data() + k, p.size() - k, crc32(p.data(), k)), whole);
  EXPECT_EQ(crc32(test_payload(3000).data(), 3000), 0xa5631526u);
}

TEST(InflateTest, Adler32KnownValues) {
  std::string s = "Wikipedia";
  EXPECT_EQ(adler32(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0x11E60398u);
  EXPECT_EQ(adler32(nullptr, 0), 1u);
  std::vector<uint8_t> big(20000, 0xFF);  // long runs exercise the deferred modulo
  uint32_t whole = adler32(big.data(), big.size());
  EXPECT_EQ(adler32(big.data() + 7000, 13000, adler32(big.data(), 7000)), whole);
}

TEST(InflateTest, StoredBlocksKnownBytes) {
  std::vector<uint8_t> abc = bytes_of("abc");
  std::vector<uint8_t> enc = deflate_stored(abc.data(), abc.size());
  EXPECT_EQ(enc, unhex("010300fcff616263"));
  EXPECT_EQ(deflate_stored(nullptr, 0), unhex("010000ffff"));
  EXPECT_EQ(str_of(inflate_raw(enc.data(), enc.size(), "abc")), "abc");
}

TEST(InflateTest, StoredRoundTrips) {
  for (size_t n : {size_t(0), size_t(1), size_t(65535), size_t(65536), size_t(200001)}) {
    std::vector<uint8_t> p = test_payload(n);
    std::vector<uint8_t> raw = deflate_stored(p.data(), p.size());
    size_t blocks = n == 0 ? 1 : (n + 65534) / 65535;
    EXPECT_EQ(raw.size(), n + 5 * blocks);
    size_t used = 0;
    EXPECT_EQ(inflate_raw(raw.data(), raw.size(), "stored", &used), p) << n;
    EXPECT_EQ(used, raw.size());
    std::vector<uint8_t> z = zlib_compress_stored(p.data(), p.size());
    EXPECT_EQ(zlib_decompress(z.data(), z.size(), "stored.z"), p);
    std::vector<uint8_t> g = gzip_compress_stored(p.data(), p.size());
    EXPECT_EQ(gunzip(g.data(), g.size(), "stored.gz"), p);
  }
}

TEST(InflateTest, FixedHuffmanBlock) {
  std::vector<uint8_t> raw = unhex(kFixedRaw);
  ASSERT_EQ((raw[0] >> 1) & 3, 1);  // BTYPE = fixed Huffman
  size_t used = 0;
  EXPECT_EQ(str_of(inflate_raw(raw.data(), raw.size(), "fixed", &used)), kFixedText);
  EXPECT_EQ(used, raw.size());
}

TEST(InflateTest, DynamicHuffmanBlock) {
  std::vector<uint8_t> raw = unhex(kDynamicRaw);
  ASSERT_EQ((raw[0] >> 1) & 3, 2);  // BTYPE = dynamic Huffman
  EXPECT_EQ(str_of(inflate_raw(raw.data(), raw.size(), "dynamic")), kDynamicText);
}

TEST(InflateTest, SeveralBlocks) {
  std::vector<uint8_t> raw = unhex(kTwoBlocksRaw);
  EXPECT_EQ(str_of(inflate_raw(raw.data(), raw.size(), "two")), kTwoBlocksText);
}

TEST(InflateTest, ZlibKnownStream) {
  std::vector<uint8_t> z = unhex(kZlib);
  EXPECT_EQ(str_of(zlib_decompress(z.data(), z.size(), "k.z")), kZlibText);
}

TEST(InflateTest, GzipLargerPayload) {
  std::vector<uint8_t> gz = payload_gz();
  std::vector<uint8_t> out = gunzip(gz.data(), gz.size(), "payload.gz");
  ASSERT_EQ(out.size(), 3000u);
  EXPECT_EQ(crc32(out.data(), out.size()), 0xa5631526u);
  EXPECT_EQ(out, test_payload(3000));
}

TEST(InflateTest, GzipHeaderFields) {
  // FEXTRA + FNAME + FCOMMENT + FHCRC around a dynamic-Huffman body.
  std::vector<uint8_t> g = {0x1F, 0x8B, 8, 0x04 | 0x08 | 0x10 | 0x02, 1, 2, 3, 4, 2, 3};
  g.push_back(3);
  g.push_back(0);
  for (uint8_t b : {'x', 'y', 'z'}) g.push_back(b);
  for (char c : std::string("name.txt")) g.push_back(uint8_t(c));
  g.push_back(0);
  for (char c : std::string("a comment")) g.push_back(uint8_t(c));
  g.push_back(0);
  uint32_t hcrc = crc32(g.data(), g.size());
  g.push_back(uint8_t(hcrc));
  g.push_back(uint8_t(hcrc >> 8));
  std::vector<uint8_t> body = unhex(kDynamicRaw);
  g.insert(g.end(), body.begin(), body.end());
  uint32_t c = crc32(reinterpret_cast<const uint8_t*>(kDynamicText.data()), kDynamicText.size());
  uint32_t n = uint32_t(kDynamicText.size());
  for (int k = 0; k < 32; k += 8) g.push_back(uint8_t(c >> k));
  for (int k = 0; k < 32; k += 8) g.push_back(uint8_t(n >> k));
  EXPECT_EQ(str_of(gunzip(g.data(), g.size(), "flags.gz")), kDynamicText);

  std::vector<uint8_t> bad = g;
  bad[20] ^= 1;  // inside the file name: the header CRC no longer matches
  expect_error([&] { gunzip(bad.data(), bad.size(), "flags.gz"); }, {"flags.gz", "header CRC"});
  std::vector<uint8_t> reserved = g;
  reserved[3] |= 0x80;
  expect_error([&] { gunzip(reserved.data(), reserved.size(), "flags.gz"); }, {"flags.gz", "reserved"});
  std::vector<uint8_t> noterm(g.begin(), g.begin() + 20);  // FNAME never terminated
  expect_error([&] { gunzip(noterm.data(), noterm.size(), "flags.gz"); }, {"flags.gz", "FNAME"});
}

TEST(InflateTest, GzipMultipleMembers) {
  std::vector<uint8_t> a = payload_gz();
  std::string tail = "and a second member";
  std::vector<uint8_t> b = gzip_compress_stored(reinterpret_cast<const uint8_t*>(tail.data()), tail.size());
  std::vector<uint8_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  std::vector<uint8_t> want = test_payload(3000);
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_EQ(gunzip(both.data(), both.size(), "multi.gz"), want);
  // Zero padding after the last member is tolerated, other trailing bytes are not.
  std::vector<uint8_t> padded = both;
  padded.insert(padded.end(), 512, 0);
  EXPECT_EQ(gunzip(padded.data(), padded.size(), "multi.gz"), want);
  std::vector<uint8_t> garbage = both;
  garbage.push_back('!');
  expect_error([&] { gunzip(garbage.data(), garbage.size(), "multi.gz"); }, {"multi.gz", "trailing garbage"});
  // A second member may not copy from the first one's output: this body is "hello world"
  // compressed against a preset dictionary, so its first match reaches before its start.
  std::vector<uint8_t> second = {0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255};
  for (uint8_t v : unhex("cb403001")) second.push_back(v);
  std::string hw = "hello world";
  uint32_t c = crc32(reinterpret_cast<const uint8_t*>(hw.data()), hw.size());
  for (int k = 0; k < 32; k += 8) second.push_back(uint8_t(c >> k));
  for (int k = 0; k < 32; k += 8) second.push_back(uint8_t(hw.size() >> k));
  std::vector<uint8_t> chained = a;
  chained.insert(chained.end(), second.begin(), second.end());
  expect_error([&] { gunzip(chained.data(), chained.size(), "multi.gz"); }, {"multi.gz", "member 2", "distance"});
}

TEST(InflateTest, TruncatedGzipAtEveryLength) {
  std::vector<uint8_t> gz = payload_gz();
  for (size_t n = 0; n < gz.size(); ++n) {
    std::vector<uint8_t> cut(gz.begin(), gz.begin() + n);
    expect_error([&] { gunzip(cut.data(), cut.size(), "cut.gz"); }, {"cut.gz"});
  }
  std::vector<uint8_t> cut(gz.begin(), gz.begin() + 600);
  expect_error([&] { gunzip(cut.data(), cut.size(), "cut.gz"); }, {"cut.gz", "truncated"});
  std::vector<uint8_t> notrailer(gz.begin(), gz.end() - 3);
  expect_error([&] { gunzip(notrailer.data(), notrailer.size(), "cut.gz"); }, {"cut.gz", "trailer"});
}

TEST(InflateTest, BadGzipChecksums) {
  std::vector<uint8_t> gz = payload_gz();
  std::vector<uint8_t> badcrc = gz;
  badcrc[gz.size() - 8] ^= 0x01;
  expect_error([&] { gunzip(badcrc.data(), badcrc.size(), "bad.gz"); }, {"bad.gz", "CRC-32 mismatch"});
  std::vector<uint8_t> badsize = gz;
  badsize[gz.size() - 4] ^= 0x01;
  expect_error([&] { gunzip(badsize.data(), badsize.size(), "bad.gz"); }, {"bad.gz", "ISIZE"});
  std::vector<uint8_t> magic = gz;
  magic[1] = 0x8C;
  expect_error([&] { gunzip(magic.data(), magic.size(), "bad.gz"); }, {"bad.gz", "not a gzip file"});
  std::vector<uint8_t> method = gz;
  method[2] = 7;
  expect_error([&] { gunzip(method.data(), method.size(), "bad.gz"); }, {"bad.gz", "compression method"});
}

TEST(InflateTest, EveryBitFlipIsCaughtOrHarmless) {
  std::vector<uint8_t> gz = payload_gz();
  std::vector<uint8_t> want = test_payload(3000);
  int harmless = 0;
  for (size_t i = 0; i < gz.size(); ++i) {
    std::vector<uint8_t> m = gz;
    m[i] ^= uint8_t(1u << (i % 8));
    try {
      std::vector<uint8_t> out = gunzip(m.data(), m.size(), "flip.gz");
      EXPECT_EQ(out, want) << "byte " << i;  // only unused bits (flags, mtime, padding) may change
      ++harmless;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("flip.gz"), std::string::npos);
    }
  }
  EXPECT_LT(harmless, 16);
}

TEST(InflateTest, CorruptDeflateStreams) {
  std::vector<uint8_t> type3 = {0x07};
  expect_error([&] { inflate_raw(type3.data(), type3.size(), "t3"); }, {"t3", "invalid block type 3"});
  std::vector<uint8_t> nlen = unhex("01030000006162");
  expect_error([&] { inflate_raw(nlen.data(), nlen.size(), "nlen"); }, {"nlen", "complement"});
  std::vector<uint8_t> stored_short = unhex("010500faff6162");
  expect_error([&] { inflate_raw(stored_short.data(), stored_short.size(), "ss"); }, {"ss", "truncated"});
  // zlib.compressobj(wbits=-15, zdict=b"hello world") of b"hello world": a match into the
  // (absent) preset dictionary.
  std::vector<uint8_t> dict = unhex("cb403001");
  expect_error([&] { inflate_raw(dict.data(), dict.size(), "dict"); }, {"dict", "distance"});
  // A fixed-Huffman block whose first code is 11000110: literal/length symbol 286, unused.
  std::vector<uint8_t> sym286 = {0x1B, 0x03};
  expect_error([&] { inflate_raw(sym286.data(), sym286.size(), "s286"); }, {"s286", "symbol 286"});
  std::vector<uint8_t> empty;
  expect_error([&] { inflate_raw(empty.data(), 0, "empty"); }, {"empty", "truncated"});
  // Output limit.
  std::vector<uint8_t> p = test_payload(5000);
  std::vector<uint8_t> raw = deflate_stored(p.data(), p.size());
  expect_error([&] { inflate_raw(raw.data(), raw.size(), "big", nullptr, 1000); }, {"big", "limit"});
  std::vector<uint8_t> gz = payload_gz();
  expect_error([&] { gunzip(gz.data(), gz.size(), "big.gz", 2999); }, {"big.gz", "limit"});
  EXPECT_EQ(gunzip(gz.data(), gz.size(), "big.gz", 3000).size(), 3000u);
}

namespace {
// Writes DEFLATE bits: header fields least significant bit first, Huffman codes most
// significant bit first.
struct BitWriter {
  std::vector<uint8_t> out;
  int used = 8;
  void bit(int b) {
    if (used == 8) {
      out.push_back(0);
      used = 0;
    }
    if (b) out.back() |= uint8_t(1u << used);
    ++used;
  }
  void bits(uint32_t v, int n) {
    for (int i = 0; i < n; ++i) bit((v >> i) & 1);
  }
  void code(uint32_t c, int len) {
    for (int i = len - 1; i >= 0; --i) bit((c >> i) & 1);
  }
};

// A final dynamic block header whose code-length code gives all 19 symbols 5 bits, so symbol
// s is sent as the 5-bit code s.
BitWriter dynamic_header(uint32_t hlit, uint32_t hdist) {
  BitWriter w;
  w.bits(1, 1);
  w.bits(2, 2);
  w.bits(hlit - 257, 5);
  w.bits(hdist - 1, 5);
  w.bits(19 - 4, 4);
  for (int i = 0; i < 19; ++i) w.bits(5, 3);
  return w;
}
}  // namespace

TEST(InflateTest, DynamicHeaderErrors) {
  auto run = [](const BitWriter& w) {
    std::vector<uint8_t> b = w.out;
    b.resize(b.size() + 64, 0);  // enough input that errors are not reported as truncation
    inflate_raw(b.data(), b.size(), "dyn.bin");
  };
  expect_error([&] { run(dynamic_header(287, 1)); }, {"dyn.bin", "too many literal/length codes (287"});
  expect_error([&] { run(dynamic_header(257, 31)); }, {"dyn.bin", "too many distance codes (31"});
  {
    BitWriter w;
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(0, 5);
    w.bits(15, 4);
    for (int i = 0; i < 19; ++i) w.bits(1, 3);  // nineteen 1-bit codes
    expect_error([&] { run(w); }, {"dyn.bin", "code-length code: over-subscribed"});
  }
  {
    BitWriter w = dynamic_header(257, 1);
    w.code(16, 5);  // repeat the previous length: there is none
    w.bits(0, 2);
    expect_error([&] { run(w); }, {"dyn.bin", "no previous length"});
  }
  {
    BitWriter w = dynamic_header(257, 1);
    w.code(18, 5);
    w.bits(127, 7);  // 138 zeros
    w.code(18, 5);
    w.bits(127, 7);  // 138 more: past the 258 lengths
    expect_error([&] { run(w); }, {"dyn.bin", "runs past the end"});
  }
  {
    BitWriter w = dynamic_header(257, 1);
    w.code(18, 5);
    w.bits(127, 7);
    w.code(18, 5);
    w.bits(108, 7);  // 138 + 119 = 257 zeros: symbol 256 has no code
    w.code(1, 5);    // distance code 0: length 1
    expect_error([&] { run(w); }, {"dyn.bin", "no end-of-block code"});
  }
  // An incomplete literal/length code ('a' = 0, end-of-block = 10; 11 unused) is accepted; its
  // unused pattern is an error, and so is a length symbol when the distance code is empty.
  auto incomplete = [](bool with_match) {
    BitWriter w = dynamic_header(258, 1);
    w.code(18, 5);
    w.bits(97 - 11, 7);  // symbols 0..96 unused
    w.code(1, 5);        // 'a': 1 bit
    w.code(18, 5);
    w.bits(138 - 11, 7);  // 98..235
    w.code(18, 5);
    w.bits(20 - 11, 7);             // 236..255
    w.code(2, 5);                   // 256: 2 bits
    w.code(with_match ? 2 : 0, 5);  // 257 (length 3): 2 bits, or unused
    w.code(0, 5);                   // no distance codes
    return w;
  };
  {
    BitWriter w = incomplete(false);
    for (int i = 0; i < 3; ++i) w.code(0, 1);  // "aaa"
    w.code(2, 2);                              // end of block
    std::vector<uint8_t> b = w.out;
    EXPECT_EQ(str_of(inflate_raw(b.data(), b.size(), "dyn.bin")), "aaa");
    BitWriter bad = incomplete(false);
    bad.code(0, 1);
    bad.code(3, 2);  // the unused pattern
    expect_error([&] { run(bad); }, {"dyn.bin", "invalid literal/length code"});
  }
  {
    BitWriter w = incomplete(true);  // now 257 = 11
    w.code(0, 1);
    w.code(3, 2);  // length 3, then a distance from an empty code
    expect_error([&] { run(w); }, {"dyn.bin", "invalid distance code"});
  }
}

TEST(InflateTest, CorruptZlibStreams) {
  std::vector<uint8_t> z = unhex(kZlib);
  std::vector<uint8_t> adler = z;
  adler.back() ^= 1;
  expect_error([&] { zlib_decompress(adler.data(), adler.size(), "a.z"); }, {"a.z", "Adler-32"});
  std::vector<uint8_t> check = z;
  check[1] ^= 1;
  expect_error([&] { zlib_decompress(check.data(), check.size(), "a.z"); }, {"a.z", "header check"});
  std::vector<uint8_t> dict = {0x78, 0xBB};  // FDICT set, check bits valid
  ASSERT_EQ((0x78 * 256 + 0xBB) % 31, 0);
  expect_error([&] { zlib_decompress(dict.data(), dict.size(), "a.z"); }, {"a.z", "dictionar"});
  std::vector<uint8_t> trailing = z;
  trailing.push_back(0);
  expect_error([&] { zlib_decompress(trailing.data(), trailing.size(), "a.z"); }, {"a.z", "trailing"});
  for (size_t n = 0; n < z.size(); ++n) expect_error([&] { zlib_decompress(z.data(), n, "cut.z"); }, {"cut.z"});
}

// ============================================================================================
// Files
// ============================================================================================
TEST(IoTest, ReadFileErrorsNameThePath) {
  expect_error([] { read_file("/nonexistent-dir/missing.bin"); }, {"/nonexistent-dir/missing.bin", "cannot open"});
  TempDir dir;
  expect_error([&] { read_file(dir.path()); }, {dir.path()});
}

TEST(IoTest, ReadMaybeGzip) {
  TempDir dir;
  std::vector<uint8_t> p = test_payload(10000);
  write_raw(dir.file("plain.bin"), p);
  std::vector<uint8_t> gz = gzip_compress_stored(p.data(), p.size());
  write_raw(dir.file("data.gz"), gz);
  EXPECT_EQ(read_file(dir.file("plain.bin")), p);
  EXPECT_EQ(read_maybe_gzip(dir.file("plain.bin")), p);
  EXPECT_EQ(read_maybe_gzip(dir.file("data.gz")), p);
  gz[gz.size() - 6] ^= 0xFF;
  write_raw(dir.file("bad.gz"), gz);
  expect_error([&] { read_maybe_gzip(dir.file("bad.gz")); }, {dir.file("bad.gz"), "CRC-32"});
  write_raw(dir.file("empty"), {});
  EXPECT_TRUE(read_maybe_gzip(dir.file("empty")).empty());
}

TEST(IoTest, AtomicWrite) {
  TempDir dir;
  std::string path = dir.file("out.bin");
  write_file_atomic(path, bytes_of("first"));
  write_file_atomic(path, bytes_of("second version"));
  EXPECT_EQ(str_of(read_file(path)), "second version");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.bin"});
  // A missing directory: the error names the path and nothing is left behind.
  std::string missing = dir.file("no-such-dir/out.bin");
  expect_error([&] { write_file_atomic(missing, bytes_of("x")); }, {missing, "cannot write"});
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.bin"});
  // A failing write leaves an existing file untouched: here the temporary name is too long.
  std::string longname = dir.file(std::string(250, 'a'));
  write_raw(longname, bytes_of("keep me"));
  expect_error([&] { write_file_atomic(longname, bytes_of("clobbered")); }, {longname, "cannot write"});
  EXPECT_EQ(str_of(read_file(longname)), "keep me");
  // Renaming onto a directory fails after the data was written: the temp file is removed.
  ASSERT_EQ(mkdir(dir.file("adir").c_str(), 0755), 0);
  expect_error([&] { write_file_atomic(dir.file("adir"), bytes_of("x")); }, {dir.file("adir"), "rename"});
  EXPECT_EQ(dir.list().size(), 3u);
}

// ============================================================================================
// JSON
// ============================================================================================
TEST(IoTest, JsonParseAndDump) {
  Json j = Json::parse(" {\"a\": [1, 2.5, -3e2, true, false, null], \"b\": {\"c\": \"d\"}, \"e\": \"\"} ");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.dump(), "{\"a\":[1,2.5,-300,true,false,null],\"b\":{\"c\":\"d\"},\"e\":\"\"}");
  EXPECT_EQ(j.at("a")[1].as_number(), 2.5);
  EXPECT_EQ(j.at("a")[2].as_int(), -300);
  EXPECT_EQ(j.at("b").at("c").as_string(), "d");
  // Insertion order is kept.
  Json o = Json::object();
  o.set("z", Json(1));
  o.set("a", Json(2));
  o.set("z", Json(3));
  EXPECT_EQ(o.dump(), "{\"z\":3,\"a\":2}");
  EXPECT_EQ(Json::parse(j.dump()), j);
}

TEST(IoTest, JsonNumbers) {
  EXPECT_EQ(Json(3.0).dump(), "3");
  EXPECT_EQ(Json(-0.0).dump(), "0");
  EXPECT_EQ(Json(int64_t(1) << 52).dump(), "4503599627370496");
  EXPECT_EQ(Json(1e20).dump(), "1e+20");
  for (float f : {0.1f, 1.0f / 3.0f, 3.4028235e38f, 1.17549435e-38f, -2.5e-7f, 1234567.8f}) {
    std::string s = Json(f).dump();
    EXPECT_EQ(float(Json::parse(s).as_number()), f) << s;
  }
  EXPECT_EQ(Json::parse("1e-400").as_number(), 0.0);
  expect_error([] { Json::parse("1e400", "n.json"); }, {"n.json", "out of range"});
  expect_error([] { Json(std::nan("")).dump(); }, {"non-finite"});
  expect_error([] { Json::parse("2.5").as_int(); }, {"not an integer"});
  expect_error([] { Json::parse("\"x\"").as_number(); }, {"a string", "expected a number"});
}

TEST(IoTest, JsonStrings) {
  Json s = Json::parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u4e2d\\ud83d\\ude00\"");
  EXPECT_EQ(s.as_string(), "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80");
  EXPECT_EQ(Json::parse(s.dump()), s);
  EXPECT_EQ(Json(std::string("\x01\x1f")).dump(), "\"\\u0001\\u001f\"");
  EXPECT_EQ(Json::parse("\"\xc3\xa9\"").as_string(), "\xc3\xa9");  // raw UTF-8 passes through
  // Strings built in code with invalid UTF-8 still dump to valid JSON.
  EXPECT_EQ(Json(std::string("a\xff\xc3")).dump(), "\"a\xef\xbf\xbd\xef\xbf\xbd\"");
}

TEST(IoTest, JsonErrorsGiveLineAndColumn) {
  expect_error([] { Json::parse("{\n  \"a\": 1,\n  \"b\" 2\n}", "cfg.json"); },
               {"cfg.json", "line 3, column 7", "expected ':'"});
  expect_error([] { Json::parse("[1, 2,]", "x.json"); }, {"x.json", "line 1, column 7"});
  expect_error([] { Json::parse("{\"a\":1,\"a\":2}", "x.json"); }, {"x.json", "duplicate key \"a\""});
  expect_error([] { Json::parse("01", "x.json"); }, {"leading zeros"});
  expect_error([] { Json::parse("\"abc", "x.json"); }, {"unterminated string"});
  expect_error([] { Json::parse("\"\\x\"", "x.json"); }, {"invalid escape"});
  expect_error([] { Json::parse("\"\\ud800\"", "x.json"); }, {"surrogate"});
  expect_error([] { Json::parse("\"\\udc00\"", "x.json"); }, {"surrogate"});
  expect_error([] { Json::parse("\"\xff\"", "x.json"); }, {"UTF-8"});
  expect_error([] { Json::parse("\"\xed\xa0\x80\"", "x.json"); }, {"UTF-8"});  // encoded surrogate
  expect_error([] { Json::parse("\"a\nb\"", "x.json"); }, {"control character"});
  expect_error([] { Json::parse("", "x.json"); }, {"x.json", "end of input"});
  expect_error([] { Json::parse("nul", "x.json"); }, {"expected a value"});
  expect_error([] { Json::parse("1 2", "x.json"); }, {"after the JSON value"});
  expect_error([] { Json::parse("-", "x.json"); }, {"digits"});
  expect_error([] { Json::parse(std::string(100000, '['), "deep.json"); }, {"deep.json", "nesting"});
  EXPECT_NO_THROW(Json::parse(std::string(200, '[') + std::string(200, ']')));
}

// ============================================================================================
// safetensors
// ============================================================================================
namespace {

// A safetensors file from a header text and data bytes.
std::vector<uint8_t> st_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data.size());  // (also sidesteps a GCC 12 -Warray-bounds false positive)
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void expect_st_error(const std::string& header, const std::vector<uint8_t>& data,
                     const std::vector<std::string>& parts) {
  std::vector<uint8_t> f = st_file(header, data);
  std::vector<std::string> all = {"model.safetensors"};
  all.insert(all.end(), parts.begin(), parts.end());
  expect_error([&] { parse_safetensors(f.data(), f.size(), "model.safetensors"); }, all);
}

SafeTensors sample_tensors() {
  SafeTensors st;
  st.metadata["format"] = "ait";
  st.metadata["config"] = "{\"dim\": 64}";
  st.add("layers.0.attn.qkv.weight", StTensor::from_f32({2, 3}, {1.5f, -2.f, 0.f, 3.25f, 1e-7f, -0.f}));
  st.add("bytes", StTensor::from_u8({3}, std::vector<uint8_t>{1, 2, 255}));  // odd size: alignment
  st.add("labels", StTensor::from_i32({4}, {0, -1, 7, 2147483647}));
  st.add("big", StTensor::from_i64({2}, {int64_t(1) << 40, -5}));
  st.add("scalar", StTensor::from_f32({}, {42.f}));
  st.add("empty", StTensor::from_f32({0, 3}, {}));
  return st;
}

}  // namespace

TEST(SafetensorsTest, RoundTrip) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  SafeTensors st = sample_tensors();
  write_safetensors(path, st);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.safetensors"});
  SafeTensors back = read_safetensors(path);
  EXPECT_EQ(back.source, path);
  EXPECT_EQ(back.metadata, st.metadata);
  ASSERT_EQ(back.tensors.size(), st.tensors.size());
  for (const auto& kv : st.tensors) {
    const StTensor& t = back.get(kv.first);
    EXPECT_EQ(t.dtype, kv.second.dtype) << kv.first;
    EXPECT_EQ(t.shape, kv.second.shape) << kv.first;
    EXPECT_EQ(t.bytes, kv.second.bytes) << kv.first;
    EXPECT_EQ(t.name, kv.first);
  }
  EXPECT_EQ(back.get("layers.0.attn.qkv.weight").f32(), st.get("layers.0.attn.qkv.weight").f32());
  EXPECT_EQ(back.get("labels").i32(), (std::vector<int32_t>{0, -1, 7, 2147483647}));
  EXPECT_EQ(back.get("labels").i64(), (std::vector<int64_t>{0, -1, 7, 2147483647}));
  EXPECT_EQ(back.get("big").i64(), (std::vector<int64_t>{int64_t(1) << 40, -5}));
  EXPECT_EQ(back.get("bytes").u8(), (std::vector<uint8_t>{1, 2, 255}));
  EXPECT_EQ(back.get("scalar").numel(), 1);
  EXPECT_EQ(back.get("empty").numel(), 0);
  // Header length keeps the data 8-aligned; the header is standard JSON, metadata first.
  std::vector<uint8_t> raw = read_file(path);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | raw[size_t(i)];
  EXPECT_EQ(hlen % 8, 0u);
  std::string header(raw.begin() + 8, raw.begin() + 8 + long(hlen));
  EXPECT_EQ(header.rfind("{\"__metadata__\":{", 0), 0u) << header;
  Json h = Json::parse(header);
  // Every tensor starts at a multiple of its element size.
  for (const auto& kv : h.as_object()) {
    if (kv.first == "__metadata__") continue;
    uint64_t begin = uint64_t(kv.second.at("data_offsets")[0].as_int());
    EXPECT_EQ(begin % st_dtype_size(kv.second.at("dtype").as_string()), 0u) << kv.first;
  }
  EXPECT_EQ(serialize_safetensors(st), raw);
  // Overwriting works and is atomic too.
  st.add("extra", StTensor::from_f32({1}, {1.f}));
  write_safetensors(path, st);
  EXPECT_TRUE(read_safetensors(path).has("extra"));
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.safetensors"});
}

TEST(SafetensorsTest, ReadsHandWrittenStandardFile) {
  // As the reference implementation lays it out: header padded with spaces, F32 little-endian.
  std::string header =
      "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
  while (header.size() % 8) header += ' ';
  std::vector<uint8_t> data = unhex(
      "0000803f000000c0"
      "0300000000000000");
  std::vector<uint8_t> f = st_file(header, data);
  SafeTensors st = parse_safetensors(f.data(), f.size(), "hand.safetensors");
  EXPECT_EQ(st.metadata.at("k"), "v");
  EXPECT_EQ(st.get("w").f32(), (std::vector<float>{1.f, -2.f}));
  EXPECT_EQ(st.get("i").i32(), (std::vector<int32_t>{3}));
}

TEST(SafetensorsTest, HostileHeaders) {
  std::vector<uint8_t> d8(8, 0);
  auto T = [](const std::string& body) { return "{\"t\":{" + body + "}}"; };
  // Too short for the length field; length past the end of the file.
  std::vector<uint8_t> tiny = {1, 2, 3};
  expect_error([&] { parse_safetensors(tiny.data(), tiny.size(), "model.safetensors"); },
               {"model.safetensors", "too short"});
  std::vector<uint8_t> f = st_file("{}", {});
  f[0] = 200;
  expect_error([&] { parse_safetensors(f.data(), f.size(), "model.safetensors"); },
               {"model.safetensors", "header length 200 runs past the end of the file (10 bytes)"});
  f[7] = 0x80;  // 2^63 + 200: no overflow in the check
  expect_error([&] { parse_safetensors(f.data(), f.size(), "model.safetensors"); },
               {"model.safetensors", "header length"});
  expect_st_error("{\"t\": {", {}, {"invalid JSON", "line 1"});
  expect_st_error("[1, 2]", {}, {"not a JSON object"});
  expect_st_error("", {}, {"not a JSON object"});
  expect_st_error(T("\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]"), d8,
                  {"tensor 't'", "unknown dtype 'F99'"});
  expect_st_error(T("\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]"), d8, {"tensor 't'", "dtype is a number"});
  expect_st_error(T("\"shape\":[2],\"data_offsets\":[0,8]"), d8, {"tensor 't'", "missing \"dtype\""});
  expect_st_error(T("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), d8, {"tensor 't'", "missing \"shape\""});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[2]"), d8, {"tensor 't'", "missing \"data_offsets\""});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), d8,
                  {"tensor 't'", "dtype F32 and shape [3] need 12 bytes but data_offsets [0, 8] hold 8"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), d8, {"tensor 't'", "shape[0] is -2"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]"), d8, {"tensor 't'", "shape[0]"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]"), d8,
                  {"tensor 't'", "shape is a string"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],\"data_offsets\":[0,8]"),
                  d8, {"tensor 't'", "more elements than the file has bytes"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]"), d8,
                  {"tensor 't'", "expected [begin, end]"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]"), d8, {"tensor 't'", "end before"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[1024],\"data_offsets\":[0,4096]"), std::vector<uint8_t>(3000),
                  {"tensor 't'", "data_offsets [0, 4096] run past the end of the file (3000 data bytes)"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]"), d8,
                  {"tensor 't'", "data_offsets[1]"});
  expect_st_error("{\"t\":[1]}", d8, {"tensor 't'", "expected an object"});
  expect_st_error("{\"__metadata__\":{\"a\":1}}", {}, {"__metadata__ entry 'a' is a number"});
  expect_st_error("{\"__metadata__\":[]}", {}, {"__metadata__ is an array"});
  // Tiling: overlap, gap, trailing bytes.
  expect_st_error(
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[6],\"data_offsets\":[0,6]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
      d8, {"tensor 'b'", "overlap tensor 'a'"});
  expect_st_error(
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
      d8, {"tensor 'b'", "unused"});
  expect_st_error(T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"), d8,
                  {"data section has 8 bytes but the tensors cover 4"});
  expect_st_error(
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
      d8, {"duplicate key"});
}

TEST(SafetensorsTest, TruncatedAtEveryLength) {
  std::vector<uint8_t> f = serialize_safetensors(sample_tensors());
  for (size_t n = 0; n < f.size(); ++n)
    expect_error([&] { parse_safetensors(f.data(), n, "cut.safetensors"); }, {"cut.safetensors"});
  EXPECT_NO_THROW(parse_safetensors(f.data(), f.size(), "whole.safetensors"));
}

TEST(SafetensorsTest, TypedAccessChecks) {
  SafeTensors st;
  st.source = "m.safetensors";
  st.add("w", StTensor::from_f32({2}, {1.f, 2.f}));
  st.add("l", StTensor::from_i64({2}, {1, int64_t(1) << 33}));
  expect_error([&] { st.get("w").i32(); }, {"m.safetensors", "tensor 'w'", "dtype is F32, expected I32 or I64"});
  expect_error([&] { st.get("l").f32(); }, {"m.safetensors", "tensor 'l'", "expected F32"});
  expect_error([&] { st.get("l").i32(); }, {"m.safetensors", "tensor 'l'", "8589934592 at index 1 does not fit"});
  expect_error([&] { st.get("w").u8(); }, {"tensor 'w'", "expected U8"});
  expect_error([&] { st.get("nope"); }, {"m.safetensors", "no tensor 'nope'"});
  expect_error([&] { st.add("w", StTensor::from_f32({1}, {1.f})); }, {"tensor 'w'", "already exists"});
  expect_error([&] { st.add("__metadata__", StTensor::from_f32({1}, {1.f})); }, {"reserved"});
  StTensor bad = StTensor::from_f32({2}, {1.f, 2.f});
  bad.shape = {3};
  expect_error([&] { st.add("bad", bad); }, {"tensor 'bad'", "need 12"});
  bad.dtype = "Q4";
  expect_error([&] { st.add("bad", bad); }, {"tensor 'bad'", "unknown dtype"});
  expect_error([] { StTensor::from_f32({2, 3}, {1.f}); }, {"from_f32", "6 elements but 1"});
  expect_error([] { StTensor::from_f32({-1}, {}); }, {"from_f32", "invalid shape"});
}

TEST(SafetensorsTest, FailedWriteLeavesNothingAndKeepsOldFile) {
  TempDir dir;
  SafeTensors st = sample_tensors();
  std::string missing = dir.file("missing/model.safetensors");
  expect_error([&] { write_safetensors(missing, st); }, {missing, "cannot write"});
  EXPECT_TRUE(dir.list().empty());
  // A tensor that fails validation: nothing is written, the existing file stays as it was.
  std::string path = dir.file("model.safetensors");
  write_safetensors(path, st);
  std::vector<uint8_t> before = read_file(path);
  st.tensors["broken"] = StTensor::from_f32({1}, {1.f});
  st.tensors["broken"].shape = {5};
  expect_error([&] { write_safetensors(path, st); }, {path, "tensor 'broken'"});
  EXPECT_EQ(read_file(path), before);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"model.safetensors"});
}

// ============================================================================================
// IDX
// ============================================================================================
namespace {
std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, size_t data_bytes) {
  std::vector<uint8_t> out = {0, 0, type, uint8_t(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(d >> s));
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(uint8_t(i * 7));
  return out;
}
}  // namespace

TEST(IoTest, IdxValid) {
  std::vector<uint8_t> b = idx_bytes(0x08, {2, 3, 4}, 24);
  IdxArray a = parse_idx(b.data(), b.size(), "x.idx");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 4}));
  ASSERT_EQ(a.data.size(), 24u);
  EXPECT_EQ(a.data[5], 35);
  TempDir dir;
  std::vector<uint8_t> gz = gzip_compress_stored(b.data(), b.size());
  write_raw(dir.file("x-idx3-ubyte.gz"), gz);
  EXPECT_EQ(read_idx(dir.file("x-idx3-ubyte.gz")).data, a.data);
  std::vector<uint8_t> empty = idx_bytes(0x08, {0, 28, 28}, 0);
  EXPECT_TRUE(parse_idx(empty.data(), empty.size(), "e.idx").data.empty());
}

TEST(IoTest, IdxHostile) {
  std::vector<uint8_t> b = idx_bytes(0x08, {2, 3}, 6);
  b[1] = 1;
  expect_error([&] { parse_idx(b.data(), b.size(), "x.idx"); }, {"x.idx", "bad magic 0x00010802"});
  std::vector<uint8_t> f = idx_bytes(0x0D, {2}, 8);
  expect_error([&] { parse_idx(f.data(), f.size(), "x.idx"); }, {"x.idx", "0x0d (float32) is not supported"});
  std::vector<uint8_t> u = idx_bytes(0x42, {2}, 8);
  expect_error([&] { parse_idx(u.data(), u.size(), "x.idx"); }, {"x.idx", "unknown element type"});
  std::vector<uint8_t> more = idx_bytes(0x08, {60000, 28, 28}, 1000);
  expect_error([&] { parse_idx(more.data(), more.size(), "x.idx"); },
               {"x.idx", "dims [60000, 28, 28] need 47040000 bytes of data but the file has 1000"});
  std::vector<uint8_t> huge = idx_bytes(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, 10);
  expect_error([&] { parse_idx(huge.data(), huge.size(), "x.idx"); }, {"x.idx", "need more than 2^64 bytes"});
  std::vector<uint8_t> trailing = idx_bytes(0x08, {2, 3}, 7);
  expect_error([&] { parse_idx(trailing.data(), trailing.size(), "x.idx"); }, {"x.idx", "trailing"});
  std::vector<uint8_t> header = idx_bytes(0x08, {2, 3, 4}, 0);
  header.resize(10);
  expect_error([&] { parse_idx(header.data(), header.size(), "x.idx"); }, {"x.idx", "truncated IDX header"});
  std::vector<uint8_t> zero = idx_bytes(0x08, {}, 0);
  expect_error([&] { parse_idx(zero.data(), zero.size(), "x.idx"); }, {"x.idx", "0 dimensions"});
  expect_error([&] { parse_idx(zero.data(), 2, "x.idx"); }, {"x.idx", "too short"});
  expect_error([] { read_idx("/nonexistent/t10k-labels-idx1-ubyte.gz"); }, {"/nonexistent/t10k-labels-idx1-ubyte.gz"});
}

// A gzip file whose IDX header announces 6 bytes but whose stream holds 600 more, followed by a
// corrupt block (type 3). Reading only what the header announces (plus one byte) must report the
// trailing data and never reach the corrupt block; decoding the whole stream would fail there.
TEST(IoTest, IdxGzipDecodesOnlyWhatTheHeaderAnnounces) {
  std::vector<uint8_t> payload = idx_bytes(0x08, {2, 3}, 6);
  payload.resize(payload.size() + 600, 7);
  std::vector<uint8_t> stored = deflate_stored(payload.data(), payload.size());
  stored[0] = 0x00;        // the stored block is not the final one...
  stored.push_back(0x07);  // ...and the next has BFINAL = 1, BTYPE = 3 (invalid)
  std::vector<uint8_t> gz = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
  gz.insert(gz.end(), stored.begin(), stored.end());
  gz.resize(gz.size() + 8, 0);  // a trailer the full decoder would never reach
  TempDir dir;
  write_raw(dir.file("bomb-idx1-ubyte.gz"), gz);
  expect_error([&] { read_idx(dir.file("bomb-idx1-ubyte.gz")); }, {"bomb-idx1-ubyte.gz", "trailing bytes"});
  // The prefix decoder itself: the first bytes, fewer when the stream is shorter, CRCs checked.
  std::vector<uint8_t> zeros(1 << 20, 0), whole = gzip_compress_stored(zeros.data(), zeros.size());
  EXPECT_EQ(gunzip_prefix(whole.data(), whole.size(), "z", 1000).size(), 1000u);
  EXPECT_EQ(gunzip_prefix(whole.data(), whole.size(), "z", 5u << 20).size(), zeros.size());
  whole[whole.size() - 8] ^= 1;  // CRC
  expect_error([&] { gunzip_prefix(whole.data(), whole.size(), "z", 5u << 20); }, {"z", "CRC"});
  // A header that announces more than its compressed size can hold is refused at once.
  std::vector<uint8_t> big = idx_bytes(0x08, {60000, 28, 28}, 10),
                       big_gz = gzip_compress_stored(big.data(), big.size());
  write_raw(dir.file("big-idx3-ubyte.gz"), big_gz);
  expect_error([&] { read_idx(dir.file("big-idx3-ubyte.gz")); }, {"big-idx3-ubyte.gz", "more than"});
}

TEST(IoTest, FashionMnistTestLabels) {
  const std::string path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (!file_exists(path)) GTEST_SKIP() << path << " not present";
  IdxArray a = read_idx(path);
  ASSERT_EQ(a.dims, (std::vector<int64_t>{10000}));
  ASSERT_EQ(a.data.size(), 10000u);
  std::vector<int> count(10, 0);
  for (uint8_t v : a.data) {
    ASSERT_LT(v, 10);
    count[v]++;
  }
  for (int c : count) EXPECT_EQ(c, 1000);  // the test split is balanced
}

// ============================================================================================
// Dataset files
// ============================================================================================
namespace {
Dataset small_dataset(bool questions) {
  Dataset ds;
  ds.n = 4;
  ds.channels = 3;
  ds.height = 2;
  ds.width = 2;
  for (int64_t i = 0; i < ds.n * ds.channels * 4; ++i) ds.images.push_back(uint8_t((i * 37) % 256));
  ds.labels = {0, 2, 1, 2};
  ds.classes = {"cat", "dog", "bird \"quoted\""};
  if (questions) {
    ds.question_dim = 2;
    ds.questions = {0.f, 1.f, 0.5f, -0.25f, 1e-3f, 2.f, 3.f, -1.f};
  }
  ds.source = "unit test";
  compute_channel_stats(ds);
  return ds;
}
}  // namespace

TEST(DatasetTest, ChannelStats) {
  Dataset ds;
  ds.n = 2;
  ds.channels = 2;
  ds.height = 1;
  ds.width = 2;
  // channel 0: 0, 255, 0, 255 -> mean 0.5, std 0.5; channel 1: constant 51 -> mean 0.2, std 1.
  ds.images = {0, 255, 51, 51, 0, 255, 51, 51};
  compute_channel_stats(ds);
  EXPECT_FLOAT_EQ(ds.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(ds.std[0], 0.5f);
  EXPECT_FLOAT_EQ(ds.mean[1], 0.2f);
  EXPECT_FLOAT_EQ(ds.std[1], 1.0f);
  Dataset empty;
  expect_error([&] { compute_channel_stats(empty); }, {"empty dataset"});
}

TEST(DatasetTest, RoundTrip) {
  TempDir dir;
  for (bool q : {false, true}) {
    Dataset ds = small_dataset(q);
    std::string path = dir.file(q ? "q.safetensors" : "plain.safetensors");
    save_dataset(path, ds);
    Dataset back = load_dataset(path);
    EXPECT_EQ(back.n, ds.n);
    EXPECT_EQ(back.channels, ds.channels);
    EXPECT_EQ(back.height, ds.height);
    EXPECT_EQ(back.width, ds.width);
    EXPECT_EQ(back.question_dim, ds.question_dim);
    EXPECT_EQ(back.images, ds.images);
    EXPECT_EQ(back.labels, ds.labels);
    EXPECT_EQ(back.questions, ds.questions);
    EXPECT_EQ(back.classes, ds.classes);
    EXPECT_EQ(back.mean, ds.mean);  // %.9g round-trips floats exactly
    EXPECT_EQ(back.std, ds.std);
    EXPECT_EQ(back.source, "unit test");
    SafeTensors st = read_safetensors(path);
    EXPECT_EQ(st.metadata.at("format"), "ait-dataset");
    EXPECT_EQ(st.metadata.at("version"), "1");
    EXPECT_EQ(st.metadata.at("classes"), "[\"cat\",\"dog\",\"bird \\\"quoted\\\"\"]");
    EXPECT_EQ(st.get("images").shape, (Shape{4, 3, 2, 2}));
    EXPECT_EQ(st.get("labels").dtype, "I32");
  }
  EXPECT_EQ(dir.list().size(), 2u);
}

TEST(DatasetTest, LoadRejectsBadFiles) {
  TempDir dir;
  std::string path = dir.file("data.safetensors");
  Dataset ds = small_dataset(true);
  // Writes the good dataset changed by `mutate`, then expects load_dataset to reject it.
  auto rejects = [&](const std::function<void(SafeTensors&)>& mutate, const std::vector<std::string>& parts) {
    SafeTensors st = dataset_to_safetensors(ds);
    mutate(st);
    write_safetensors(path, st);
    expect_error([&] { load_dataset(path); }, parts);
  };
  auto replace = [](SafeTensors& st, const std::string& name, StTensor t) {
    st.tensors.erase(name);
    st.add(name, std::move(t));
  };

  rejects(
      [&](SafeTensors& st) {
        replace(st, "labels", StTensor::from_i32({4}, {0, 1, 3, 2}));
      },
      {path, "tensor 'labels'", "label 3 at index 2 is outside [0, 3)"});

  SafeTensors wide = dataset_to_safetensors(ds);
  replace(wide, "labels", StTensor::from_i64({4}, {0, 1, 2, 2}));  // I64 labels are accepted
  write_safetensors(path, wide);
  EXPECT_EQ(load_dataset(path).labels, (std::vector<int32_t>{0, 1, 2, 2}));

  rejects(
      [&](SafeTensors& st) {
        replace(st, "labels", StTensor::from_i32({3}, {0, 1, 2}));
      },
      {path, "tensor 'labels'", "does not match the 4 images"});
  rejects([](SafeTensors& st) { st.metadata["format"] = "ait"; }, {path, "'format' is 'ait'"});
  rejects([](SafeTensors& st) { st.metadata["version"] = "2"; }, {path, "version '2'"});
  rejects([](SafeTensors& st) { st.metadata.erase("classes"); }, {path, "no 'classes'"});
  rejects([](SafeTensors& st) { st.metadata["classes"] = "[\"a\", 3]"; }, {path, "'classes'[1] is a number"});
  rejects([](SafeTensors& st) { st.metadata["mean"] = "[0.5, 0.5]"; }, {path, "'mean' has 2 values for 3 channels"});
  rejects([](SafeTensors& st) { st.metadata["std"] = "[0.5, 0, 0.5]"; }, {path, "'std'[1] is 0"});
  rejects([](SafeTensors& st) { st.metadata["std"] = "[0.5, 0.5"; }, {path, "'std'", "invalid JSON"});
  std::vector<float> q = ds.questions;
  q[5] = std::nanf("");
  rejects(
      [&](SafeTensors& st) {
        replace(st, "questions", StTensor::from_f32({4, 2}, q));
      },
      {path, "tensor 'questions'", "[2, 1] is not finite"});
  rejects([](SafeTensors& st) { st.tensors.erase("images"); }, {path, "no tensor 'images'"});
  rejects(
      [&](SafeTensors& st) {
        replace(st, "images", StTensor::from_f32({4, 3, 2, 2}, std::vector<float>(48, 0.f)));
      },
      {path, "tensor 'images'", "expected U8"});
  rejects(
      [&](SafeTensors& st) {
        replace(st, "images", StTensor::from_u8({4, 12}, ds.images));
      },
      {path, "tensor 'images'", "expected 4 [M, C, H, W]"});
  rejects([](SafeTensors& st) { st.add("stray", StTensor::from_f32({1}, {0.f})); },
          {path, "unexpected tensor 'stray'"});

  expect_error([&] { load_dataset(dir.file("missing.safetensors")); }, {dir.file("missing.safetensors")});
}

TEST(DatasetTest, SaveValidatesAndIsAtomic) {
  TempDir dir;
  Dataset ds = small_dataset(false);
  std::string path = dir.file("d.safetensors");
  save_dataset(path, ds);
  std::vector<uint8_t> before = read_file(path);
  Dataset bad = ds;
  bad.labels[3] = 7;
  expect_error([&] { save_dataset(path, bad); }, {path, "label 7 at index 3"});
  bad = ds;
  bad.images.pop_back();
  expect_error([&] { save_dataset(path, bad); }, {path, "tensor 'images'"});
  EXPECT_EQ(read_file(path), before);
  std::string missing = dir.file("nope/d.safetensors");
  expect_error([&] { save_dataset(missing, ds); }, {missing, "cannot write"});
  EXPECT_EQ(dir.list(), std::vector<std::string>{"d.safetensors"});
}

TEST(DatasetTest, FromIdxFiles) {
  TempDir dir;
  std::vector<uint8_t> images = idx_bytes(0x08, {3, 2, 2}, 12);
  std::vector<uint8_t> labels = idx_bytes(0x08, {3}, 0);
  for (uint8_t v : {1, 0, 1}) labels.push_back(v);
  std::string ip = dir.file("images-idx3-ubyte.gz"), lp = dir.file("labels-idx1-ubyte");
  write_raw(ip, gzip_compress_stored(images.data(), images.size()));
  write_raw(lp, labels);
  Dataset ds = dataset_from_idx(ip, lp, {"no", "yes"}, "synthetic");
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.channels, 1);
  EXPECT_EQ(ds.height, 2);
  EXPECT_EQ(ds.width, 2);
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_EQ(ds.images[11], uint8_t(77));
  ASSERT_EQ(ds.mean.size(), 1u);
  double sum = 0;
  for (uint8_t v : ds.images) sum += v;
  EXPECT_NEAR(ds.mean[0], sum / 12 / 255, 1e-6);

  std::vector<uint8_t> four = idx_bytes(0x08, {4}, 0);
  for (uint8_t v : {1, 0, 1, 0}) four.push_back(v);
  std::string lp4 = dir.file("four-labels-idx1-ubyte");
  write_raw(lp4, four);
  expect_error(
      [&] {
        dataset_from_idx(ip, lp4, {"no", "yes"}, "s");
      },
      {ip + " has 3 images but " + lp4 + " has 4 labels"});
  expect_error([&] { dataset_from_idx(ip, lp, {"only"}, "s"); }, {lp, "label 1 at index 0 is outside [0, 1)"});
  expect_error([&] { dataset_from_idx(lp, lp, {"a", "b"}, "s"); }, {lp, "expected 3 dimensions"});
  EXPECT_EQ(fashion_mnist_classes().size(), 10u);
  EXPECT_EQ(fashion_mnist_classes()[0], "T-shirt/top");
  EXPECT_EQ(fashion_mnist_classes()[9], "Ankle boot");
}

TEST(DatasetTest, FashionMnistTestSplit) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (!file_exists(dir + "t10k-images-idx3-ubyte.gz") || !file_exists(dir + "t10k-labels-idx1-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not present in " << dir;
  Dataset ds = dataset_from_idx(dir + "t10k-images-idx3-ubyte.gz", dir + "t10k-labels-idx1-ubyte.gz",
                                fashion_mnist_classes(), "Fashion-MNIST t10k");
  EXPECT_EQ(ds.n, 10000);
  EXPECT_EQ(ds.height, 28);
  EXPECT_EQ(ds.width, 28);
  EXPECT_NEAR(ds.mean[0], 0.2868, 0.002);  // the published test-split statistics
  EXPECT_NEAR(ds.std[0], 0.3524, 0.002);
}

// ============================================================================================
// A deterministic mini-fuzz (the libFuzzer targets live in tools/fuzz/ and found no crash):
// random byte edits of valid inputs must either decode or raise ait::Error naming the source.
// Under `make asan` this also checks memory safety on every CI run.
// ============================================================================================
namespace {
void mutate_and_check(const std::vector<uint8_t>& seed, const std::string& source, int rounds,
                      const std::function<void(const std::vector<uint8_t>&)>& decode) {
  Rng rng(0x5eed ^ seed.size());
  for (int r = 0; r < rounds; ++r) {
    std::vector<uint8_t> m = seed;
    int edits = 1 + int(rng.below(4));
    for (int e = 0; e < edits; ++e) {
      uint64_t kind = rng.below(4);
      if (m.empty()) kind = 3;
      size_t at = m.empty() ? 0 : size_t(rng.below(m.size()));
      if (kind == 0) m[at] ^= uint8_t(1u << rng.below(8));           // flip a bit
      else if (kind == 1) m[at] = uint8_t(rng.next_u32());           // replace a byte
      else if (kind == 2) m.resize(at);                              // truncate
      else m.insert(m.begin() + long(at), uint8_t(rng.next_u32()));  // insert a byte
    }
    try {
      decode(m);
    } catch (const Error& e) {
      ASSERT_NE(std::string(e.what()).find(source), std::string::npos) << e.what();
    }
  }
}
}  // namespace

TEST(IoTest, MutatedInputsNeverCrash) {
  std::vector<uint8_t> gz = payload_gz();
  mutate_and_check(gz, "m.gz", 3000, [](const std::vector<uint8_t>& b) { gunzip(b.data(), b.size(), "m.gz"); });
  std::vector<uint8_t> z = unhex(kZlib);
  mutate_and_check(z, "m.z", 2000, [](const std::vector<uint8_t>& b) { zlib_decompress(b.data(), b.size(), "m.z"); });
  std::vector<uint8_t> st = serialize_safetensors(sample_tensors());
  mutate_and_check(st, "m.safetensors", 3000, [](const std::vector<uint8_t>& b) {
    SafeTensors t = parse_safetensors(b.data(), b.size(), "m.safetensors");
    for (const auto& kv : t.tensors) EXPECT_EQ(kv.second.source, "m.safetensors");
  });
  Dataset ds = small_dataset(true);
  SafeTensors dst = dataset_to_safetensors(ds);
  dst.source = "m.safetensors";
  std::vector<uint8_t> dsb = serialize_safetensors(dst);
  mutate_and_check(dsb, "m.safetensors", 3000, [](const std::vector<uint8_t>& b) {
    Dataset d = dataset_from_safetensors(parse_safetensors(b.data(), b.size(), "m.safetensors"));
    EXPECT_EQ(int64_t(d.images.size()), d.n * d.channels * d.height * d.width);
  });
  std::vector<uint8_t> idx = idx_bytes(0x08, {2, 3, 4}, 24);
  mutate_and_check(idx, "m.idx", 2000, [](const std::vector<uint8_t>& b) { parse_idx(b.data(), b.size(), "m.idx"); });
  std::string doc = "{\"a\":[1,2.5,-3e2,true,false,null],\"b\":{\"c\":\"d\\u00e9\\ud83d\\ude00\"}}";
  mutate_and_check(bytes_of(doc), "m.json", 3000, [](const std::vector<uint8_t>& b) {
    Json j = Json::parse(reinterpret_cast<const char*>(b.data()), b.size(), "m.json");
    EXPECT_NO_THROW(Json::parse(j.dump()));
  });
}
