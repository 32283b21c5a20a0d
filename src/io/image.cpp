#include "io/image.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "io/deflate.h"
#include "io/inflate.h"

namespace ait {

// ------------------------------------------------------------------------------------------
// PNM
namespace {

// Reads the next decimal header number of a PNM file, skipping whitespace and '#' comments.
int64_t pnm_number(const std::vector<uint8_t>& b, size_t& i, const std::string& src) {
  for (;;) {
    while (i < b.size() && std::isspace(b[i])) ++i;
    if (i < b.size() && b[i] == '#') {
      while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
      continue;
    }
    break;
  }
  int64_t v = 0;
  size_t start = i;
  while (i < b.size() && std::isdigit(b[i]) && v < 1000000) v = v * 10 + (b[i++] - '0');
  if (start == i) throw Error(src + ": bad PNM header");
  return v;
}

}  // namespace

Image decode_pnm(const std::vector<uint8_t>& b, const std::string& src) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6'))
    throw Error(src + ": not a binary PGM/PPM (P5/P6) file");
  size_t i = 2;
  const int64_t w = pnm_number(b, i, src), h = pnm_number(b, i, src), maxval = pnm_number(b, i, src);
  if (w <= 0 || h <= 0 || w > 65535 || h > 65535) throw Error(src + ": bad PNM size");
  if (maxval != 255) throw Error(src + ": PNM maxval " + std::to_string(maxval) + " unsupported (only 255)");
  if (i >= b.size() || !std::isspace(b[i])) throw Error(src + ": bad PNM header");
  ++i;  // the single whitespace byte before the pixels
  Image im;
  im.width = int(w), im.height = int(h), im.channels = b[1] == '5' ? 1 : 3;
  const size_t need = size_t(w) * size_t(h) * size_t(im.channels), have = b.size() - i;
  if (have < need)
    throw Error(src + ": PNM pixel data truncated (" + std::to_string(have) + " of " + std::to_string(need) +
                " bytes)");
  if (have > need)
    throw Error(src + ": " + std::to_string(have - need) + " byte(s) after the " + std::to_string(need) +
                " bytes of PNM pixel data (a " + std::to_string(w) + "x" + std::to_string(h) +
                " image); one image per file, nothing after it");
  im.pixels.assign(b.begin() + std::ptrdiff_t(i), b.end());
  return im;
}

// ------------------------------------------------------------------------------------------
// PNG
namespace {

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put_be32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}
const uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

// What the chunks of a PNG file say: the IHDR fields, the palette and the joined IDAT data.
struct PngChunks {
  uint32_t width = 0, height = 0;
  int depth = 0, color_type = -1;
  std::vector<uint8_t> idat, palette;
};

void read_ihdr(const uint8_t* data, uint32_t len, const std::string& src, PngChunks& png) {
  if (len != 13) throw Error(src + ": bad PNG IHDR length");
  png.width = be32(data), png.height = be32(data + 4), png.depth = data[8], png.color_type = data[9];
  if (data[10] != 0 || data[11] != 0) throw Error(src + ": unsupported PNG compression/filter method");
  if (data[12] != 0) throw Error(src + ": interlaced (Adam7) PNG is not supported; re-save it non-interlaced");
}

// Walks the chunks up to IEND, checking every length and CRC.
PngChunks read_png_chunks(const std::vector<uint8_t>& b, const std::string& src) {
  if (b.size() < 8 || std::memcmp(b.data(), kPngSig, 8) != 0) throw Error(src + ": not a PNG file (bad signature)");
  PngChunks png;
  for (size_t pos = 8;;) {
    if (b.size() - pos < 12) throw Error(src + ": PNG truncated (no IEND chunk)");
    const uint32_t len = be32(b.data() + pos);
    const std::string type(reinterpret_cast<const char*>(b.data() + pos + 4), 4);
    if (len > b.size() - pos - 12)
      throw Error(src + ": PNG chunk '" + type + "' length " + std::to_string(len) + " runs past the end of the file");
    const uint8_t* data = b.data() + pos + 8;
    if (crc32(b.data() + pos + 4, size_t(len) + 4) != be32(data + len))
      throw Error(src + ": PNG chunk '" + type + "' has a bad CRC");
    if (pos == 8 && type != "IHDR") throw Error(src + ": PNG does not start with IHDR");
    if (type == "IHDR") read_ihdr(data, len, src, png);
    else if (type == "PLTE") png.palette.assign(data, data + len);
    else if (type == "IDAT") png.idat.insert(png.idat.end(), data, data + len);
    else if (type == "IEND") return png;
    else if (!(type[0] & 0x20)) throw Error(src + ": unknown critical PNG chunk '" + type + "'");
    pos += size_t(len) + 12;
  }
}

// Samples per pixel as stored (a palette index counts as one); throws on what we do not read.
int png_stored_channels(const PngChunks& png, const std::string& src) {
  const uint64_t w = png.width, h = png.height;
  if (w == 0 || h == 0 || w > 65535 || h > 65535 || w * h > (uint64_t(1) << 26))
    throw Error(src + ": unsupported PNG size " + std::to_string(w) + "x" + std::to_string(h));
  int stored;
  switch (png.color_type) {
    case 0: stored = 1; break;
    case 2: stored = 3; break;
    case 3: stored = 1; break;
    case 4: stored = 2; break;
    case 6: stored = 4; break;
    default: throw Error(src + ": bad PNG colour type " + std::to_string(png.color_type));
  }
  if (png.color_type == 3) {
    if (png.depth != 1 && png.depth != 2 && png.depth != 4 && png.depth != 8)
      throw Error(src + ": palette PNG bit depth " + std::to_string(png.depth) + " unsupported");
    if (png.palette.empty() || png.palette.size() % 3 != 0)
      throw Error(src + ": palette PNG without a valid PLTE chunk");
  } else if (png.depth != 8) {
    throw Error(src + ": PNG bit depth " + std::to_string(png.depth) + " unsupported (only 8-bit)");
  }
  return stored;
}

// The PNG filter's prediction of a byte from the byte `a` to its left (bpp bytes back), the
// byte `up` above and the byte `c` above that left one (PNG spec §9.2-9.4).
int png_predictor(int filter, int a, int up, int c) {
  if (filter == 1) return a;
  if (filter == 2) return up;
  if (filter == 3) return (a + up) / 2;
  if (filter == 4) {
    const int p = a + up - c, pa = std::abs(p - a), pb = std::abs(p - up), pc = std::abs(p - c);
    return (pa <= pb && pa <= pc) ? a : (pb <= pc ? up : c);
  }
  return 0;
}

// Undoes one row's filter in place: `cur` holds the filtered bytes, `prev` the previous
// unfiltered row (zeros for the first), `bpp` the filter's byte distance.
void unfilter_row(int filter, std::vector<uint8_t>& cur, const std::vector<uint8_t>& prev, size_t bpp,
                  const std::string& src, uint32_t y) {
  if (filter < 0 || filter > 4)
    throw Error(src + ": bad PNG filter type " + std::to_string(filter) + " on row " + std::to_string(y));
  for (size_t x = 0; x < cur.size(); ++x) {
    const int a = x >= bpp ? cur[x - bpp] : 0, up = prev[x], c = x >= bpp ? prev[x - bpp] : 0;
    cur[x] = uint8_t(cur[x] + png_predictor(filter, a, up, c));
  }
}

// One unfiltered row to output pixels: palette indices looked up, alpha dropped.
void expand_row(const PngChunks& png, int stored, const std::vector<uint8_t>& row, uint8_t* out, int channels,
                const std::string& src) {
  const int depth = png.depth;
  for (uint32_t x = 0; x < png.width; ++x) {
    if (png.color_type == 3) {
      const size_t bit = size_t(x) * size_t(depth);
      const int idx = (row[bit / 8] >> (8 - depth - int(bit % 8))) & ((1 << depth) - 1);
      if (size_t(idx) * 3 + 2 >= png.palette.size())
        throw Error(src + ": PNG palette index " + std::to_string(idx) + " past the palette");
      for (int c = 0; c < 3; ++c) out[x * 3 + c] = png.palette[size_t(idx) * 3 + size_t(c)];
    } else {
      for (int c = 0; c < channels; ++c) out[x * size_t(channels) + size_t(c)] = row[x * size_t(stored) + size_t(c)];
    }
  }
}

}  // namespace

Image decode_png(const std::vector<uint8_t>& b, const std::string& src) {
  const PngChunks png = read_png_chunks(b, src);
  const int stored = png_stored_channels(png, src);
  const size_t bits = size_t(stored) * size_t(png.depth);
  const size_t stride = (size_t(png.width) * bits + 7) / 8, bpp = std::max<size_t>(1, bits / 8);
  const size_t expect = (stride + 1) * png.height;
  const std::vector<uint8_t> raw = zlib_decompress(png.idat.data(), png.idat.size(), src, expect);
  if (raw.size() != expect)
    throw Error(src + ": PNG image data has " + std::to_string(raw.size()) + " bytes, expected " +
                std::to_string(expect));
  Image im;
  im.width = int(png.width), im.height = int(png.height);
  im.channels = (png.color_type == 0 || png.color_type == 4) ? 1 : 3;
  im.pixels.resize(size_t(im.width) * size_t(im.height) * size_t(im.channels));
  std::vector<uint8_t> cur(stride), prev(stride, 0);
  for (uint32_t y = 0; y < png.height; ++y) {
    const uint8_t* row = raw.data() + y * (stride + 1);
    std::copy(row + 1, row + 1 + stride, cur.begin());
    unfilter_row(row[0], cur, prev, bpp, src, y);
    expand_row(png, stored, cur, im.pixels.data() + size_t(y) * png.width * size_t(im.channels), im.channels, src);
    std::swap(cur, prev);
  }
  return im;
}

namespace {

// The scanlines as the IDAT stream holds them: each row its filter byte and filtered bytes, the
// filter (0-4) chosen per row as the one whose output has the smallest sum of |byte| read as a
// signed value (small differences compress best).
std::vector<uint8_t> filter_rows(const uint8_t* pixels, int w, int h, int channels) {
  const size_t stride = size_t(w) * size_t(channels), bpp = size_t(channels);
  std::vector<uint8_t> raw, candidate(stride), best(stride);
  raw.reserve((stride + 1) * size_t(h));
  const std::vector<uint8_t> zeros(stride, 0);
  for (int y = 0; y < h; ++y) {
    const uint8_t* cur = pixels + size_t(y) * stride;
    const uint8_t* prev = y > 0 ? cur - stride : zeros.data();
    uint64_t best_cost = UINT64_MAX;
    int best_filter = 0;
    for (int filter = 0; filter <= 4; ++filter) {
      uint64_t cost = 0;
      for (size_t x = 0; x < stride; ++x) {
        const int a = x >= bpp ? cur[x - bpp] : 0, c = x >= bpp ? prev[x - bpp] : 0;
        candidate[x] = uint8_t(cur[x] - png_predictor(filter, a, prev[x], c));
        cost += uint64_t(std::abs(int(int8_t(candidate[x]))));
      }
      if (cost < best_cost) best_cost = cost, best_filter = filter, best.swap(candidate);
    }
    raw.push_back(uint8_t(best_filter));
    raw.insert(raw.end(), best.begin(), best.end());
  }
  return raw;
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* pixels, int w, int h, int channels) {
  if (w <= 0 || h <= 0 || (channels != 1 && channels != 3 && channels != 4))
    throw Error("encode_png: bad size or channel count");
  std::vector<uint8_t> out(kPngSig, kPngSig + 8);
  auto chunk = [&](const char* type, const std::vector<uint8_t>& d) {
    put_be32(out, uint32_t(d.size()));
    size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), d.begin(), d.end());
    put_be32(out, crc32(out.data() + start, d.size() + 4));
  };
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, uint32_t(w));
  put_be32(ihdr, uint32_t(h));
  ihdr.push_back(8);
  ihdr.push_back(uint8_t(channels == 1 ? 0 : channels == 3 ? 2 : 6));
  ihdr.push_back(0), ihdr.push_back(0), ihdr.push_back(0);
  chunk("IHDR", ihdr);
  const std::vector<uint8_t> raw = filter_rows(pixels, w, h, channels);
  chunk("IDAT", zlib_compress(raw.data(), raw.size()));
  chunk("IEND", {});
  return out;
}

Image resize_nearest(const Image& im, int height, int width) {
  Image r;
  r.width = width, r.height = height, r.channels = im.channels;
  const size_t ch = size_t(im.channels);
  r.pixels.resize(size_t(width) * size_t(height) * ch);
  for (int y = 0; y < height; ++y) {
    const size_t sy = size_t((2 * int64_t(y) + 1) * im.height / (2 * int64_t(height)));
    for (int x = 0; x < width; ++x) {
      const size_t sx = size_t((2 * int64_t(x) + 1) * im.width / (2 * int64_t(width)));
      const uint8_t* from = im.pixels.data() + (sy * size_t(im.width) + sx) * ch;
      std::copy(from, from + ch, r.pixels.data() + (size_t(y) * size_t(width) + size_t(x)) * ch);
    }
  }
  return r;
}

}  // namespace ait
