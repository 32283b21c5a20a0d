#include "apps/convert.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "io/inflate.h"
#include "core/rng.h"

namespace ait {

namespace {

uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  Rng r(seed ^ (0xA5A5A5A5DEADBEEFull * (stream + 1)));
  return r.next_u64();
}

void fill_disc(uint8_t* img, int size, double cx, double cy, double r, uint8_t v) {
  int x0 = std::max(0, int(std::floor(cx - r))), x1 = std::min(size - 1, int(std::ceil(cx + r)));
  int y0 = std::max(0, int(std::floor(cy - r))), y1 = std::min(size - 1, int(std::ceil(cy + r)));
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      double dx = x - cx, dy = y - cy;
      if (dx * dx + dy * dy <= r * r) img[y * size + x] = v;
    }
}

double dist(double ax, double ay, double bx, double by) { return std::hypot(ax - bx, ay - by); }

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Triangle
Dataset make_triangle_dataset(int64_t n, uint64_t seed, uint64_t stream,
                              std::vector<TriangleScene>* scenes) {
  if (n <= 0) throw Error("triangle: the number of images must be positive");
  const int S = kTriangleSize;
  const double lo = kTriangleMargin, hi = S - 1 - kTriangleMargin;
  Rng rng(stream_seed(seed, stream));
  Dataset ds;
  ds.n = n;
  ds.channels = 1;
  ds.height = ds.width = S;
  ds.images.assign(size_t(n) * S * S, 0);
  ds.labels.resize(size_t(n));
  ds.classes = {"equilateral", "random"};
  ds.source = "ait-convert triangle seed " + std::to_string(seed) + " stream " + std::to_string(stream);
  if (scenes) scenes->clear();
  auto inside = [&](double x, double y) { return x >= lo && x <= hi && y >= lo && y <= hi; };
  for (int64_t i = 0; i < n; ++i) {
    TriangleScene sc;
    sc.label = int(i % 2);
    for (;;) {
      for (int k = 0; k < 2; ++k) {
        sc.vx[k] = rng.uniform(float(lo), float(hi));
        sc.vy[k] = rng.uniform(float(lo), float(hi));
      }
      double d01 = dist(sc.vx[0], sc.vy[0], sc.vx[1], sc.vy[1]);
      if (d01 < 12) continue;
      if (sc.label == 0) {
        const double c = 0.5, s = std::sqrt(3.0) / 2;
        double dx = sc.vx[1] - sc.vx[0], dy = sc.vy[1] - sc.vy[0];
        sc.vx[2] = sc.vx[0] + c * dx - s * dy;
        sc.vy[2] = sc.vy[0] + s * dx + c * dy;
        if (!inside(sc.vx[2], sc.vy[2])) continue;
      } else {
        sc.vx[2] = rng.uniform(float(lo), float(hi));
        sc.vy[2] = rng.uniform(float(lo), float(hi));
        double d02 = dist(sc.vx[0], sc.vy[0], sc.vx[2], sc.vy[2]);
        double d12 = dist(sc.vx[1], sc.vy[1], sc.vx[2], sc.vy[2]);
        if (d02 < 12 || d12 < 12) continue;
        double mx = std::max({d01, d02, d12}), mn = std::min({d01, d02, d12});
        if (mx <= 1.1 * mn) continue;
      }
      break;
    }
    uint8_t* img = ds.images.data() + size_t(i) * S * S;
    for (int k = 0; k < 3; ++k)
      for (int p = 0; p < 8; ++p) {
        double x = sc.vx[k] + rng.uniform(-1.f, 1.f), y = sc.vy[k] + rng.uniform(-1.f, 1.f);
        sc.px.push_back(x);
        sc.py.push_back(y);
        fill_disc(img, S, x, y, 2.0, 255);
      }
    ds.labels[size_t(i)] = sc.label;
    if (scenes) scenes->push_back(std::move(sc));
  }
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// CIFAR
std::vector<std::string> cifar10_classes() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

Dataset dataset_from_cifar(const std::vector<std::string>& files, bool cifar100, bool fine,
                           const std::string& names_file) {
  if (files.empty()) throw Error("cifar: no input files");
  const size_t label_bytes = cifar100 ? 2 : 1, pix = 3072, rec = label_bytes + pix;
  Dataset ds;
  if (!names_file.empty()) {
    std::vector<uint8_t> b = read_file(names_file);
    std::string cur;
    for (size_t i = 0; i <= b.size(); ++i) {
      char c = i < b.size() ? char(b[i]) : '\n';
      if (c == '\n' || c == '\r') {
        size_t a = cur.find_first_not_of(" \t"), z = cur.find_last_not_of(" \t");
        if (a != std::string::npos) ds.classes.push_back(cur.substr(a, z - a + 1));
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (ds.classes.empty()) throw Error(names_file + ": no class names");
  } else if (!cifar100) {
    ds.classes = cifar10_classes();
  } else {
    int k = fine ? 100 : 20;
    for (int i = 0; i < k; ++i) ds.classes.push_back(std::string(fine ? "fine_" : "coarse_") + std::to_string(i));
  }
  ds.channels = 3;
  ds.height = ds.width = 32;
  for (const std::string& f : files) {
    std::vector<uint8_t> b = read_file(f);
    if (b.empty() || b.size() % rec != 0)
      throw Error(f + ": size " + std::to_string(b.size()) + " bytes is not a positive multiple of the " +
                  std::to_string(rec) + "-byte " + (cifar100 ? "CIFAR-100" : "CIFAR-10") + " record");
    size_t count = b.size() / rec;
    for (size_t r = 0; r < count; ++r) {
      const uint8_t* p = b.data() + r * rec;
      int label = cifar100 ? (fine ? p[1] : p[0]) : p[0];
      if (size_t(label) >= ds.classes.size())
        throw Error(f + ": record " + std::to_string(r) + " has label " + std::to_string(label) +
                    ", but there are " + std::to_string(ds.classes.size()) + " classes");
      ds.labels.push_back(label);
      ds.images.insert(ds.images.end(), p + label_bytes, p + rec);
    }
  }
  ds.n = int64_t(ds.labels.size());
  ds.source = std::string(cifar100 ? (fine ? "CIFAR-100 fine labels: " : "CIFAR-100 coarse labels: ") : "CIFAR-10: ");
  for (size_t i = 0; i < files.size(); ++i) ds.source += (i ? ", " : "") + files[i];
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// NumPy
namespace {

struct HeaderParser {
  const std::string& s;
  const std::string& src;
  size_t i = 0;
  void ws() { while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i; }
  [[noreturn]] void fail(const std::string& what) {
    throw Error(src + ": bad .npy header (" + what + "): " + s);
  }
  void expect(char c) {
    ws();
    if (i >= s.size() || s[i] != c) fail(std::string("expected '") + c + "'");
    ++i;
  }
  bool peek(char c) { ws(); return i < s.size() && s[i] == c; }
  std::string str() {
    ws();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) fail("expected a string");
    char q = s[i++];
    size_t a = i;
    while (i < s.size() && s[i] != q) ++i;
    if (i >= s.size()) fail("unterminated string");
    return s.substr(a, i++ - a);
  }
  int64_t integer() {
    ws();
    size_t a = i;
    int64_t v = 0;
    while (i < s.size() && std::isdigit((unsigned char)s[i])) {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
      v = v * 10 + (s[i++] - '0');
    }
    if (a == i) fail("expected a non-negative integer");
    if (i < s.size() && s[i] == 'L') ++i;
    return v;
  }
};

size_t npy_itemsize(const std::string& descr, const std::string& src) {
  size_t item = 0;
  bool ok = descr.size() >= 3 && descr.size() <= 6 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=');
  for (size_t i = 2; ok && i < descr.size(); ++i) {
    ok = std::isdigit((unsigned char)descr[i]) != 0;
    item = item * 10 + size_t(descr[i] - '0');
  }
  if (!ok || item == 0)
    throw Error(src + ": unsupported dtype '" + descr + "' (little-endian or byte types only)");
  return item;
}

}  // namespace

NpyArray parse_npy(const std::vector<uint8_t>& b, const std::string& src) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (b.size() < 10 || std::memcmp(b.data(), magic, 6) != 0) throw Error(src + ": not a .npy file (bad magic)");
  int major = b[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = size_t(b[8]) | size_t(b[9]) << 8;
    off = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) throw Error(src + ": truncated .npy header");
    hlen = size_t(b[8]) | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
    off = 12;
  } else {
    throw Error(src + ": unsupported .npy version " + std::to_string(major) + "." + std::to_string(b[7]));
  }
  if (hlen > b.size() - off)
    throw Error(src + ": .npy header length " + std::to_string(hlen) + " runs past the end of the file (" +
                std::to_string(b.size()) + " bytes)");
  std::string h(reinterpret_cast<const char*>(b.data() + off), hlen);
  NpyArray a;
  HeaderParser p{h, src};
  bool got_descr = false, got_fo = false, got_shape = false;
  p.expect('{');
  while (!p.peek('}')) {
    std::string key = p.str();
    p.expect(':');
    if (key == "descr") {
      a.descr = p.str();
      got_descr = true;
    } else if (key == "fortran_order") {
      p.ws();
      if (h.compare(p.i, 4, "True") == 0) a.fortran_order = true, p.i += 4;
      else if (h.compare(p.i, 5, "False") == 0) a.fortran_order = false, p.i += 5;
      else p.fail("fortran_order must be True or False");
      got_fo = true;
    } else if (key == "shape") {
      p.expect('(');
      while (!p.peek(')')) {
        a.shape.push_back(p.integer());
        if (p.peek(',')) ++p.i;
        else if (!p.peek(')')) p.fail("expected ',' or ')' in shape");
      }
      ++p.i;
      got_shape = true;
    } else {
      p.fail("unknown key '" + key + "'");
    }
    if (p.peek(',')) ++p.i;
    else if (!p.peek('}')) p.fail("expected ',' or '}'");
  }
  if (!got_descr || !got_fo || !got_shape) p.fail("missing descr, fortran_order or shape");
  if (a.fortran_order)
    throw Error(src + ": fortran_order True (column-major) arrays are not supported; save with "
                      "np.ascontiguousarray first");
  size_t item = npy_itemsize(a.descr, src);
  unsigned __int128 need = item;
  for (int64_t d : a.shape) {
    need *= uint64_t(d);
    if (need > (unsigned __int128)(1ull << 40)) throw Error(src + ": .npy shape too large");
  }
  size_t have = b.size() - off - hlen;
  if (need != have)
    throw Error(src + ": .npy shape needs " + std::to_string(uint64_t(need)) + " data bytes, but the file has " +
                std::to_string(have));
  a.data.assign(b.begin() + std::ptrdiff_t(off + hlen), b.end());
  return a;
}

std::vector<uint8_t> write_npy(const std::string& descr, const std::vector<int64_t>& shape,
                               const void* data, size_t nbytes) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) h += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) h += ',';  // numpy's 1-tuple spelling: (5,)
  h += "), }";
  while ((10 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  const uint8_t* d = static_cast<const uint8_t*>(data);
  std::vector<uint8_t> out(10 + h.size() + nbytes);
  const uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(h.size() & 0xff), uint8_t(h.size() >> 8)};
  std::memcpy(out.data(), head, 10);
  std::memcpy(out.data() + 10, h.data(), h.size());
  if (nbytes) std::memcpy(out.data() + 10 + h.size(), d, nbytes);
  return out;
}

Dataset dataset_from_npy(const std::string& images_path, const std::string& labels_path,
                         const std::string& layout, const std::vector<std::string>& classes) {
  if (layout != "nhwc" && layout != "nchw") throw Error("npy: --layout must be nhwc or nchw, not '" + layout + "'");
  NpyArray im = parse_npy(read_file(images_path), images_path);
  NpyArray lb = parse_npy(read_file(labels_path), labels_path);
  Dataset ds;
  int64_t N, C, H, W;
  if (im.shape.size() == 3) {
    N = im.shape[0], C = 1, H = im.shape[1], W = im.shape[2];
  } else if (im.shape.size() == 4) {
    N = im.shape[0];
    if (layout == "nhwc") H = im.shape[1], W = im.shape[2], C = im.shape[3];
    else C = im.shape[1], H = im.shape[2], W = im.shape[3];
  } else {
    throw Error(images_path + ": images must be 3-D [N,H,W] or 4-D, got " + std::to_string(im.shape.size()) + "-D");
  }
  if (N <= 0 || C <= 0 || H <= 0 || W <= 0) throw Error(images_path + ": empty image array");
  bool f32 = im.descr.substr(1) == "f4" && im.descr[0] != '>';
  bool u8 = im.descr.substr(1) == "u1";
  if (!f32 && !u8) throw Error(images_path + ": image dtype '" + im.descr + "' unsupported (uint8 |u1 or float32 <f4)");
  const size_t total = size_t(N * C * H * W);
  std::vector<uint8_t> v;
  if (u8) {
    v = std::move(im.data);  // parse_npy checked it holds exactly `total` bytes
  } else {
    v.resize(total);
    for (size_t i = 0; i < total; ++i) {
      float x;
      std::memcpy(&x, im.data.data() + 4 * i, 4);
      if (!(x >= 0.f && x <= 1.f))
        throw Error(images_path + ": float image value at flat index " + std::to_string(i) + " is " +
                    std::to_string(x) + " (must be finite and in [0, 1])");
      v[i] = uint8_t(std::lround(double(x) * 255.0));
    }
  }
  if (im.shape.size() == 4 && layout == "nhwc") {
    ds.images.resize(total);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          for (int64_t c = 0; c < C; ++c)
            ds.images[size_t(((n * C + c) * H + y) * W + x)] = v[size_t(((n * H + y) * W + x) * C + c)];
  } else {
    ds.images = std::move(v);
  }
  if (lb.shape.size() != 1 || lb.shape[0] != N)
    throw Error(labels_path + ": labels must be 1-D with " + std::to_string(N) + " entries");
  const std::string t = lb.descr.substr(1);
  size_t item = npy_itemsize(lb.descr, labels_path);
  bool is_signed = t[0] == 'i';
  if ((t[0] != 'i' && t[0] != 'u') || (item != 1 && item != 2 && item != 4 && item != 8))
    throw Error(labels_path + ": label dtype '" + lb.descr + "' is not an integer type");
  int64_t maxlab = -1;
  const int64_t limit = classes.empty() ? int64_t(INT32_MAX) : int64_t(classes.size());
  for (int64_t i = 0; i < N; ++i) {
    uint64_t raw = 0;
    std::memcpy(&raw, lb.data.data() + size_t(i) * item, item);  // little-endian host
    int64_t val;
    if (is_signed && item < 8 && (raw >> (item * 8 - 1)) & 1) val = -1;
    else if (!is_signed && item == 8 && raw > uint64_t(INT32_MAX)) val = INT64_MAX;
    else val = int64_t(raw);
    if (val < 0 || val >= limit)
      throw Error(labels_path + ": label at index " + std::to_string(i) + " is out of range [0, " +
                  std::to_string(limit) + ")");
    ds.labels.push_back(int32_t(val));
    maxlab = std::max(maxlab, val);
  }
  if (classes.empty()) {
    if (maxlab > 100000) throw Error(labels_path + ": largest label " + std::to_string(maxlab) + " is implausible; pass --classes");
    for (int64_t k = 0; k <= maxlab; ++k) ds.classes.push_back(std::to_string(k));
  } else {
    ds.classes = classes;
  }
  ds.n = N, ds.channels = C, ds.height = H, ds.width = W;
  ds.source = "npy: " + images_path + ", " + labels_path;
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// PNM / PNG
Image decode_pnm(const std::vector<uint8_t>& b, const std::string& src) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6'))
    throw Error(src + ": not a binary PGM/PPM (P5/P6) file");
  size_t i = 2;
  auto number = [&]() -> int64_t {
    for (;;) {
      while (i < b.size() && std::isspace(b[i])) ++i;
      if (i < b.size() && b[i] == '#') {
        while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
        continue;
      }
      break;
    }
    int64_t v = 0;
    size_t a = i;
    while (i < b.size() && std::isdigit(b[i]) && v < 1000000) v = v * 10 + (b[i++] - '0');
    if (a == i) throw Error(src + ": bad PNM header");
    return v;
  };
  Image im;
  int64_t w = number(), h = number(), maxval = number();
  if (w <= 0 || h <= 0 || w > 65535 || h > 65535) throw Error(src + ": bad PNM size");
  if (maxval != 255) throw Error(src + ": PNM maxval " + std::to_string(maxval) + " unsupported (only 255)");
  if (i >= b.size() || !std::isspace(b[i])) throw Error(src + ": bad PNM header");
  ++i;
  im.width = int(w), im.height = int(h), im.channels = b[1] == '5' ? 1 : 3;
  size_t need = size_t(w) * size_t(h) * size_t(im.channels);
  if (b.size() - i < need)
    throw Error(src + ": PNM pixel data truncated (" + std::to_string(b.size() - i) + " of " + std::to_string(need) + " bytes)");
  im.pixels.assign(b.begin() + std::ptrdiff_t(i), b.begin() + std::ptrdiff_t(i + need));
  return im;
}

namespace {
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put_be32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}
const uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
}  // namespace

Image decode_png(const std::vector<uint8_t>& b, const std::string& src) {
  if (b.size() < 8 || std::memcmp(b.data(), kPngSig, 8) != 0) throw Error(src + ": not a PNG file (bad signature)");
  size_t pos = 8;
  uint32_t w = 0, h = 0;
  int depth = 0, ctype = -1;
  std::vector<uint8_t> idat, plte;
  bool end = false;
  while (!end) {
    if (b.size() - pos < 12) throw Error(src + ": PNG truncated (no IEND chunk)");
    uint32_t len = be32(b.data() + pos);
    std::string type(reinterpret_cast<const char*>(b.data() + pos + 4), 4);
    if (len > b.size() - pos - 12)
      throw Error(src + ": PNG chunk '" + type + "' length " + std::to_string(len) + " runs past the end of the file");
    const uint8_t* data = b.data() + pos + 8;
    uint32_t crc = crc32(b.data() + pos + 4, size_t(len) + 4);
    if (crc != be32(data + len)) throw Error(src + ": PNG chunk '" + type + "' has a bad CRC");
    if (pos == 8 && type != "IHDR") throw Error(src + ": PNG does not start with IHDR");
    if (type == "IHDR") {
      if (len != 13) throw Error(src + ": bad PNG IHDR length");
      w = be32(data), h = be32(data + 4), depth = data[8], ctype = data[9];
      if (data[10] != 0 || data[11] != 0) throw Error(src + ": unsupported PNG compression/filter method");
      if (data[12] != 0) throw Error(src + ": interlaced (Adam7) PNG is not supported; re-save it non-interlaced");
    } else if (type == "PLTE") {
      plte.assign(data, data + len);
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + len);
    } else if (type == "IEND") {
      end = true;
    } else if (!(type[0] & 0x20)) {
      throw Error(src + ": unknown critical PNG chunk '" + type + "'");
    }
    pos += size_t(len) + 12;
  }
  if (w == 0 || h == 0 || w > 65535 || h > 65535 || uint64_t(w) * h > (uint64_t(1) << 26))
    throw Error(src + ": unsupported PNG size " + std::to_string(w) + "x" + std::to_string(h));
  int nch;
  switch (ctype) {
    case 0: nch = 1; break;
    case 2: nch = 3; break;
    case 3: nch = 1; break;
    case 4: nch = 2; break;
    case 6: nch = 4; break;
    default: throw Error(src + ": bad PNG colour type " + std::to_string(ctype));
  }
  if (ctype == 3) {
    if (depth != 1 && depth != 2 && depth != 4 && depth != 8)
      throw Error(src + ": palette PNG bit depth " + std::to_string(depth) + " unsupported");
    if (plte.empty() || plte.size() % 3 != 0) throw Error(src + ": palette PNG without a valid PLTE chunk");
  } else if (depth != 8) {
    throw Error(src + ": PNG bit depth " + std::to_string(depth) + " unsupported (only 8-bit)");
  }
  const size_t bits = size_t(nch) * size_t(depth);
  const size_t stride = (size_t(w) * bits + 7) / 8, bpp = std::max<size_t>(1, bits / 8);
  const size_t expect = (stride + 1) * h;
  std::vector<uint8_t> raw = zlib_decompress(idat.data(), idat.size(), src, expect);
  if (raw.size() != expect)
    throw Error(src + ": PNG image data has " + std::to_string(raw.size()) + " bytes, expected " + std::to_string(expect));
  std::vector<uint8_t> cur(stride), prev(stride, 0);
  Image im;
  im.width = int(w), im.height = int(h), im.channels = (ctype == 0 || ctype == 4) ? 1 : 3;
  im.pixels.resize(size_t(w) * h * size_t(im.channels));
  for (uint32_t y = 0; y < h; ++y) {
    const uint8_t* row = raw.data() + y * (stride + 1);
    int f = row[0];
    for (size_t x = 0; x < stride; ++x) {
      int a = x >= bpp ? cur[x - bpp] : 0, up = prev[x], c = x >= bpp ? prev[x - bpp] : 0, v = row[1 + x];
      switch (f) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += up; break;
        case 3: v += (a + up) / 2; break;
        case 4: {
          int p = a + up - c, pa = std::abs(p - a), pb = std::abs(p - up), pc = std::abs(p - c);
          v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? up : c);
          break;
        }
        default: throw Error(src + ": bad PNG filter type " + std::to_string(f) + " on row " + std::to_string(y));
      }
      cur[x] = uint8_t(v);
    }
    uint8_t* out = im.pixels.data() + size_t(y) * w * size_t(im.channels);
    for (uint32_t x = 0; x < w; ++x) {
      if (ctype == 3) {
        size_t bit = size_t(x) * size_t(depth);
        int idx = (cur[bit / 8] >> (8 - depth - int(bit % 8))) & ((1 << depth) - 1);
        if (size_t(idx) * 3 + 2 >= plte.size())
          throw Error(src + ": PNG palette index " + std::to_string(idx) + " past the palette");
        for (int c = 0; c < 3; ++c) out[x * 3 + c] = plte[size_t(idx) * 3 + size_t(c)];
      } else {
        for (int c = 0; c < im.channels; ++c) out[x * size_t(im.channels) + size_t(c)] = cur[x * size_t(nch) + size_t(c)];
      }
    }
    std::swap(cur, prev);
  }
  return im;
}

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
  const size_t stride = size_t(w) * size_t(channels);
  std::vector<uint8_t> raw;
  raw.reserve((stride + 1) * size_t(h));
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), pixels + size_t(y) * stride, pixels + size_t(y + 1) * stride);
  }
  chunk("IDAT", zlib_compress_stored(raw.data(), raw.size()));
  chunk("IEND", {});
  return out;
}

Dataset dataset_from_folder(const std::string& dir, int resize_h, int resize_w) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir + ": not a directory");
  Dataset ds;
  std::vector<fs::path> classdirs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string()[0] != '.') classdirs.push_back(e.path());
  std::sort(classdirs.begin(), classdirs.end());
  if (classdirs.empty()) throw Error(dir + ": no class sub-folders");
  std::vector<Image> images;
  std::vector<std::string> names;
  for (size_t k = 0; k < classdirs.size(); ++k) {
    ds.classes.push_back(classdirs[k].filename().string());
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(classdirs[k])) {
      std::string ext = lower(e.path().extension().string());
      if (e.is_regular_file() && (ext == ".png" || ext == ".pgm" || ext == ".ppm")) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      std::vector<uint8_t> bytes = read_file(f.string());
      Image im = lower(f.extension().string()) == ".png" ? decode_png(bytes, f.string()) : decode_pnm(bytes, f.string());
      if (resize_h > 0 && resize_w > 0 && (im.height != resize_h || im.width != resize_w)) {
        Image r;
        r.width = resize_w, r.height = resize_h, r.channels = im.channels;
        r.pixels.resize(size_t(resize_w) * size_t(resize_h) * size_t(im.channels));
        for (int y = 0; y < resize_h; ++y) {
          int sy = int((2 * int64_t(y) + 1) * im.height / (2 * int64_t(resize_h)));
          for (int x = 0; x < resize_w; ++x) {
            int sx = int((2 * int64_t(x) + 1) * im.width / (2 * int64_t(resize_w)));
            for (int c = 0; c < im.channels; ++c)
              r.pixels[(size_t(y) * size_t(resize_w) + size_t(x)) * size_t(im.channels) + size_t(c)] =
                  im.pixels[(size_t(sy) * size_t(im.width) + size_t(sx)) * size_t(im.channels) + size_t(c)];
          }
        }
        im = std::move(r);
      }
      if (!images.empty() && (im.width != images[0].width || im.height != images[0].height))
        throw Error(f.string() + ": size " + std::to_string(im.height) + "x" + std::to_string(im.width) +
                    " differs from " + names[0] + " (" + std::to_string(images[0].height) + "x" +
                    std::to_string(images[0].width) + "); pass --size HxW to resize");
      images.push_back(std::move(im));
      names.push_back(f.string());
      ds.labels.push_back(int32_t(k));
    }
  }
  if (images.empty()) throw Error(dir + ": no .png/.pgm/.ppm images found");
  int C = 1;
  for (const Image& im : images) C = std::max(C, im.channels);
  const int H = images[0].height, W = images[0].width;
  ds.n = int64_t(images.size()), ds.channels = C, ds.height = H, ds.width = W;
  ds.images.resize(size_t(ds.n) * size_t(C) * size_t(H) * size_t(W));
  for (size_t i = 0; i < images.size(); ++i) {
    const Image& im = images[i];
    uint8_t* dst = ds.images.data() + i * size_t(C) * size_t(H) * size_t(W);
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < H * W; ++p)
        dst[size_t(c) * size_t(H * W) + size_t(p)] = im.pixels[size_t(p) * size_t(im.channels) + size_t(im.channels == 1 ? 0 : c)];
  }
  ds.source = "folder: " + dir;
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// Split
Dataset split_dataset(Dataset& train, int64_t n_val, uint64_t seed) {
  if (n_val <= 0 || n_val >= train.n)
    throw Error("--split " + std::to_string(n_val) + " must be in [1, " + std::to_string(train.n - 1) + "]");
  std::vector<int64_t> idx(size_t(train.n));
  for (int64_t i = 0; i < train.n; ++i) idx[size_t(i)] = i;
  Rng rng(stream_seed(seed, 77));
  for (int64_t i = 0; i < n_val; ++i) std::swap(idx[size_t(i)], idx[size_t(i + int64_t(rng.below(uint64_t(train.n - i))))]);
  std::vector<bool> is_val(size_t(train.n), false);
  for (int64_t i = 0; i < n_val; ++i) is_val[size_t(idx[size_t(i)])] = true;
  const size_t img = size_t(train.channels * train.height * train.width), q = size_t(train.question_dim);
  Dataset val, tr;
  for (Dataset* d : {&val, &tr}) {
    d->channels = train.channels, d->height = train.height, d->width = train.width;
    d->question_dim = train.question_dim, d->classes = train.classes;
  }
  val.source = train.source + " (validation split)";
  tr.source = train.source;
  for (int64_t i = 0; i < train.n; ++i) {
    Dataset& d = is_val[size_t(i)] ? val : tr;
    d.images.insert(d.images.end(), train.images.begin() + std::ptrdiff_t(size_t(i) * img),
                    train.images.begin() + std::ptrdiff_t(size_t(i + 1) * img));
    d.labels.push_back(train.labels[size_t(i)]);
    if (q)
      d.questions.insert(d.questions.end(), train.questions.begin() + std::ptrdiff_t(size_t(i) * q),
                         train.questions.begin() + std::ptrdiff_t(size_t(i + 1) * q));
    ++d.n;
  }
  compute_channel_stats(tr);
  val.mean = tr.mean, val.std = tr.std;
  train = std::move(tr);
  return val;
}

// ------------------------------------------------------------------------------------------
// Sort-of-CLEVR
std::vector<std::string> clevr_answer_classes() {
  return {"yes", "no", "rectangle", "circle", "1", "2", "3", "4", "5", "6"};
}

int clevr_answer(const ClevrScene& s, const ClevrQuestion& q) {
  const ClevrObject& a = s.objects[q.color];
  auto shape = [](const ClevrObject& o) { return o.square ? 2 : 3; };
  auto yn = [](bool b) { return b ? 0 : 1; };
  auto d2 = [](const ClevrObject& u, const ClevrObject& v) {
    return int64_t(u.x - v.x) * (u.x - v.x) + int64_t(u.y - v.y) * (u.y - v.y);
  };
  if (q.type == 0) {
    if (q.subtype == 0) return shape(a);
    if (q.subtype == 1) return yn(a.x < 37.5);
    return yn(a.y < 37.5);
  }
  if (q.type == 1) {
    if (q.subtype == 2) {
      int c = 0;
      for (const ClevrObject& o : s.objects) c += o.square == a.square;
      return 3 + c;
    }
    int best = -1;
    for (int k = 0; k < kClevrObjects; ++k) {
      if (k == q.color) continue;
      if (best < 0) { best = k; continue; }
      int64_t dk = d2(a, s.objects[k]), db = d2(a, s.objects[best]);
      if (q.subtype == 0 ? dk < db : dk > db) best = k;
    }
    return shape(s.objects[best]);
  }
  const ClevrObject& b = s.objects[q.color2];
  int count = 2;
  bool band = false;
  for (int k = 0; k < kClevrObjects; ++k) {
    if (k == q.color || k == q.color2) continue;
    const ClevrObject& c = s.objects[k];
    if (q.subtype == 0) {
      count += c.x > std::min(a.x, b.x) && c.x < std::max(a.x, b.x) && c.y > std::min(a.y, b.y) && c.y < std::max(a.y, b.y);
    } else if (q.subtype == 1) {
      double vx = b.x - a.x, vy = b.y - a.y, wx = c.x - a.x, wy = c.y - a.y;
      double t = std::clamp((vx * wx + vy * wy) / (vx * vx + vy * vy), 0.0, 1.0);
      band |= std::hypot(wx - t * vx, wy - t * vy) <= 10.0;
    } else {
      // angle at C obtuse <=> (A - C) . (B - C) < 0
      count += int64_t(a.x - c.x) * (b.x - c.x) + int64_t(a.y - c.y) * (b.y - c.y) < 0;
    }
  }
  if (q.subtype == 1) return yn(band);
  return 3 + std::min(count, 6);
}

Dataset make_sort_of_clevr(int64_t n_images, uint64_t seed, uint64_t stream, const std::string& questions,
                           std::vector<ClevrScene>* scenes) {
  std::vector<int> types;
  if (questions == "all") types = {0, 1, 2};
  else if (questions == "nonrel") types = {0};
  else if (questions == "binary") types = {1};
  else if (questions == "ternary") types = {2};
  else throw Error("sort-of-clevr: --questions must be all, nonrel, binary or ternary, not '" + questions + "'");
  if (n_images <= 0) throw Error("sort-of-clevr: the number of images must be positive");
  static const uint8_t colours[kClevrObjects][3] = {{255, 0, 0},   {0, 255, 0},     {0, 0, 255},
                                                    {255, 156, 0}, {128, 128, 128}, {255, 255, 0}};
  const int S = kClevrSize, Q = 10 * int(types.size());
  const size_t img = size_t(3 * S * S);
  Rng rng(stream_seed(seed, stream + 1000));
  Dataset ds;
  ds.n = n_images * Q;
  ds.channels = 3, ds.height = ds.width = S, ds.question_dim = kClevrQuestionDim;
  ds.classes = clevr_answer_classes();
  ds.images.resize(size_t(ds.n) * img);
  ds.labels.reserve(size_t(ds.n));
  ds.questions.assign(size_t(ds.n) * kClevrQuestionDim, 0.f);
  ds.source = "ait-convert sort-of-clevr seed " + std::to_string(seed) + " stream " + std::to_string(stream) +
              " questions " + questions;
  if (scenes) scenes->clear();
  std::vector<uint8_t> pic(img);
  int64_t row = 0;
  for (int64_t i = 0; i < n_images; ++i) {
    ClevrScene sc;
    for (bool ok = false; !ok;) {
      ok = true;
      for (int k = 0; k < kClevrObjects && ok; ++k) {
        int tries = 0;
        for (;; ++tries) {
          if (tries > 1000) { ok = false; break; }
          ClevrObject o;
          o.x = 5 + int(rng.below(65)), o.y = 5 + int(rng.below(65));
          bool far = true;
          for (int j = 0; j < k; ++j) {
            int dx = o.x - sc.objects[j].x, dy = o.y - sc.objects[j].y;
            far &= dx * dx + dy * dy >= 100;
          }
          if (!far) continue;
          o.square = rng.below(2) == 0;
          sc.objects[k] = o;
          break;
        }
      }
    }
    std::fill(pic.begin(), pic.end(), uint8_t(255));
    for (int k = 0; k < kClevrObjects; ++k) {
      const ClevrObject& o = sc.objects[k];
      for (int y = o.y - 5; y <= o.y + 5; ++y)
        for (int x = o.x - 5; x <= o.x + 5; ++x) {
          int dx = x - o.x, dy = y - o.y;
          if (!o.square && dx * dx + dy * dy > 25) continue;
          for (int c = 0; c < 3; ++c) pic[size_t(c * S * S + y * S + x)] = colours[k][c];
        }
    }
    for (int t : types)
      for (int j = 0; j < 10; ++j) {
        ClevrQuestion q;
        q.type = t;
        q.subtype = int(rng.below(3));
        q.color = int(rng.below(kClevrObjects));
        if (t == 2) {
          q.color2 = int(rng.below(kClevrObjects - 1));
          if (q.color2 >= q.color) ++q.color2;
        }
        q.answer = clevr_answer(sc, q);
        float* v = ds.questions.data() + size_t(row) * kClevrQuestionDim;
        v[q.color] = 1.f;
        if (q.color2 >= 0) v[6 + q.color2] = 1.f;
        v[12 + t] = 1.f;
        v[15 + q.subtype] = 1.f;
        std::copy(pic.begin(), pic.end(), ds.images.begin() + std::ptrdiff_t(size_t(row) * img));
        ds.labels.push_back(q.answer);
        sc.questions.push_back(q);
        ++row;
      }
    if (scenes) scenes->push_back(std::move(sc));
  }
  compute_channel_stats(ds);
  return ds;
}

}  // namespace ait
