#include "io/npy.h"

#include <cctype>
#include <cstring>
#include <limits>

namespace ait {

namespace {

struct HeaderParser {
  const std::string& s;
  const std::string& src;
  size_t i = 0;
  void ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  }
  [[noreturn]] void fail(const std::string& what) { throw Error(src + ": bad .npy header (" + what + "): " + s); }
  void expect(char c) {
    ws();
    if (i >= s.size() || s[i] != c) fail(std::string("expected '") + c + "'");
    ++i;
  }
  bool peek(char c) {
    ws();
    return i < s.size() && s[i] == c;
  }
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

// Where the header dictionary lies: its offset and length, by format version.
void header_span(const std::vector<uint8_t>& b, const std::string& src, size_t* off, size_t* hlen) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (b.size() < 10 || std::memcmp(b.data(), magic, 6) != 0) throw Error(src + ": not a .npy file (bad magic)");
  const int major = b[6];
  if (major == 1) {
    *hlen = size_t(b[8]) | size_t(b[9]) << 8;
    *off = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) throw Error(src + ": truncated .npy header");
    *hlen = size_t(b[8]) | size_t(b[9]) << 8 | size_t(b[10]) << 16 | size_t(b[11]) << 24;
    *off = 12;
  } else {
    throw Error(src + ": unsupported .npy version " + std::to_string(major) + "." + std::to_string(b[7]));
  }
  if (*hlen > b.size() - *off)
    throw Error(src + ": .npy header length " + std::to_string(*hlen) + " runs past the end of the file (" +
                std::to_string(b.size()) + " bytes)");
}

// The header dictionary {'descr': ..., 'fortran_order': ..., 'shape': (...)} into `a`.
void parse_header_dict(HeaderParser& p, NpyArray& a) {
  const std::string& h = p.s;
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
}

}  // namespace

size_t npy_itemsize(const std::string& descr, const std::string& src) {
  size_t item = 0;
  bool ok = descr.size() >= 3 && descr.size() <= 6 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=');
  for (size_t i = 2; ok && i < descr.size(); ++i) {
    ok = std::isdigit((unsigned char)descr[i]) != 0;
    item = item * 10 + size_t(descr[i] - '0');
  }
  if (!ok || item == 0) throw Error(src + ": unsupported dtype '" + descr + "' (little-endian or byte types only)");
  return item;
}

NpyArray parse_npy(const std::vector<uint8_t>& b, const std::string& src) {
  size_t off = 0, hlen = 0;
  header_span(b, src, &off, &hlen);
  const std::string h(reinterpret_cast<const char*>(b.data() + off), hlen);
  NpyArray a;
  HeaderParser p{h, src};
  parse_header_dict(p, a);
  if (a.fortran_order)
    throw Error(src +
                ": fortran_order True (column-major) arrays are not supported; save with "
                "np.ascontiguousarray first");
  const size_t item = npy_itemsize(a.descr, src);
  unsigned __int128 need = item;
  for (int64_t d : a.shape) {
    need *= uint64_t(d);
    if (need > (unsigned __int128)(1ull << 40)) throw Error(src + ": .npy shape too large");
  }
  const size_t have = b.size() - off - hlen;
  if (need != have)
    throw Error(src + ": .npy shape needs " + std::to_string(uint64_t(need)) + " data bytes, but the file has " +
                std::to_string(have));
  a.data.assign(b.begin() + std::ptrdiff_t(off + hlen), b.end());
  return a;
}

std::vector<uint8_t> write_npy(const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                               size_t nbytes) {
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

}  // namespace ait
