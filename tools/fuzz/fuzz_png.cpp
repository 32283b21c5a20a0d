// libFuzzer target: PNG decoding (decode_png), plus the PNG encoder on what it decodes.
// The first byte picks a mode, so the fuzzer reaches past the checksums and the zlib layer:
//   0: the rest is a PNG file, decoded as is;
//   1: the same, after every chunk CRC that fits has been recomputed (fuzzed chunk data then
//      reaches the IHDR / PLTE / IDAT handling instead of dying at the CRC check);
//   2: a PNG is built from the rest: IHDR fields, an optional PLTE and raw scanlines (filter
//      bytes included), compressed with zlib stored blocks and split over one or more IDATs,
//      so the unfiltering and palette code see arbitrary data.
// Properties: never crash, only ait::Error escapes; an accepted image has 1 or 3 channels
// and exactly width * height * channels bytes; encode_png of the result decodes back to it.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "io/image.h"
#include "io/inflate.h"

namespace {

void put_be32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

void chunk(std::vector<uint8_t>& out, const char* type, const uint8_t* d, size_t n) {
  put_be32(out, uint32_t(n));
  size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  if (n) out.insert(out.end(), d, d + n);
  put_be32(out, ait::crc32(out.data() + start, n + 4));
}

// Recomputes the CRC of every chunk whose declared length fits in the buffer.
void fix_crcs(std::vector<uint8_t>& b) {
  size_t pos = 8;
  while (b.size() >= pos + 12) {
    uint32_t len = be32(b.data() + pos);
    if (len > b.size() - pos - 12) break;
    uint32_t c = ait::crc32(b.data() + pos + 4, size_t(len) + 4);
    for (int i = 0; i < 4; ++i) b[pos + 8 + len + size_t(i)] = uint8_t(c >> (24 - 8 * i));
    pos += size_t(len) + 12;
  }
}

// Mode 2: [w-1][h-1][depth sel][ctype sel][flags][plte len/3][plte...][idat parts][raw...]
std::vector<uint8_t> build_png(const uint8_t* d, size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  std::vector<uint8_t> out(sig, sig + 8);
  if (n < 7) return out;
  static const uint8_t depths[8] = {8, 8, 8, 1, 2, 4, 16, 3};
  static const uint8_t ctypes[8] = {0, 2, 3, 4, 6, 3, 1, 7};
  uint32_t w = uint32_t(d[0] % 64) + 1, h = uint32_t(d[1] % 64) + 1;
  uint8_t depth = depths[d[2] % 8], ctype = ctypes[d[3] % 8], flags = d[4];
  size_t plte_n = size_t(d[5]) * 3;
  size_t parts = size_t(d[6] % 4) + 1;
  d += 7, n -= 7;
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, (flags & 0x80) ? 0 : w);
  put_be32(ihdr, h);
  ihdr.push_back(depth);
  ihdr.push_back(ctype);
  ihdr.push_back(0), ihdr.push_back(0), ihdr.push_back((flags & 0x40) ? 1 : 0);
  chunk(out, "IHDR", ihdr.data(), ihdr.size());
  if (flags & 1) {
    if (flags & 2) plte_n += 1;  // not a multiple of 3
    size_t take = std::min(plte_n, n);
    chunk(out, "PLTE", d, take);
    d += take, n -= take;
  }
  if (flags & 4) chunk(out, "tEXt", reinterpret_cast<const uint8_t*>("k\0v"), 3);
  // Raw scanlines: whatever is left, truncated or not; filter bytes taken from the data.
  std::vector<uint8_t> raw(d, d + n);
  if (flags & 8) {
    // Make the length what a (w, h, depth, ctype) image needs, cycling the data.
    int nch = ctype == 2 ? 3 : ctype == 4 ? 2 : ctype == 6 ? 4 : 1;
    size_t stride = (size_t(w) * size_t(nch) * depth + 7) / 8, need = (stride + 1) * h;
    std::vector<uint8_t> r(need);
    for (size_t i = 0; i < need; ++i) r[i] = raw.empty() ? 0 : raw[i % raw.size()];
    for (size_t y = 0; y < h; ++y) r[y * (stride + 1)] %= (flags & 16) ? 6 : 5;  // filter types (5 is bad)
    raw.swap(r);
  }
  std::vector<uint8_t> z = ait::zlib_compress_stored(raw.data(), raw.size());
  size_t step = z.size() / parts + 1;
  for (size_t i = 0; i < z.size(); i += step) chunk(out, "IDAT", z.data() + i, std::min(step, z.size() - i));
  if (z.empty()) chunk(out, "IDAT", nullptr, 0);
  if (!(flags & 32)) chunk(out, "IEND", nullptr, 0);
  return out;
}

void check(const ait::Image& im) {
  if (im.width <= 0 || im.height <= 0 || im.width > 65535 || im.height > 65535) abort();
  if (im.channels != 1 && im.channels != 3) abort();
  if (im.pixels.size() != size_t(im.width) * size_t(im.height) * size_t(im.channels)) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  ++data, --size;
  std::vector<uint8_t> png;
  if (mode == 2) {
    png = build_png(data, size);
  } else {
    png.assign(data, data + size);
    if (mode == 1) fix_crcs(png);
  }
  ait::Image im;
  try {
    im = ait::decode_png(png, "fuzz.png");
  } catch (const ait::Error&) {
    return 0;
  }
  check(im);
  try {
    std::vector<uint8_t> again = ait::encode_png(im.pixels.data(), im.width, im.height, im.channels);
    ait::Image back = ait::decode_png(again, "re-encoded.png");
    if (back.width != im.width || back.height != im.height || back.channels != im.channels || back.pixels != im.pixels)
      abort();
  } catch (const ait::Error&) {
    abort();  // our own encoder's output must decode
  }
  return 0;
}
