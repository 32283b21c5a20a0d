// DEFLATE decoding (RFC 1951) with a two-level table-driven Huffman decoder, the zlib
// (RFC 1950) and gzip (RFC 1952) containers, checksums and stored-block encoders. The whole-file
// read and atomic write declared in inflate.h live in file.cpp.
#include "io/inflate.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace ait {

// ------------------------------------------------------------------------------------------
// Checksums
// ------------------------------------------------------------------------------------------
namespace {

struct CrcTables {
  uint32_t t[8][256];
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
      t[0][i] = c;
    }
    // t[k][i]: the CRC register after feeding byte i followed by k zero bytes.
    for (int k = 1; k < 8; ++k)
      for (int i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  }
};

const CrcTables& crc_tables() {
  static const CrcTables tables;
  return tables;
}

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint16_t load_le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t n, uint32_t prev) {
  const CrcTables& T = crc_tables();
  uint32_t c = ~prev;
  // Slicing by 8: eight table look-ups per 8 input bytes.
  while (n >= 8) {
    uint32_t lo = c ^ load_le32(data);
    uint32_t hi = load_le32(data + 4);
    c = T.t[7][lo & 0xFF] ^ T.t[6][(lo >> 8) & 0xFF] ^ T.t[5][(lo >> 16) & 0xFF] ^ T.t[4][lo >> 24] ^
        T.t[3][hi & 0xFF] ^ T.t[2][(hi >> 8) & 0xFF] ^ T.t[1][(hi >> 16) & 0xFF] ^ T.t[0][hi >> 24];
    data += 8;
    n -= 8;
  }
  while (n--) c = T.t[0][(c ^ *data++) & 0xFF] ^ (c >> 8);
  return ~c;
}

uint32_t adler32(const uint8_t* data, size_t n, uint32_t prev) {
  constexpr uint32_t kMod = 65521;
  constexpr size_t kBlock = 5552;  // largest run that cannot overflow 32-bit sums
  uint32_t a = prev & 0xFFFF, b = prev >> 16;
  while (n > 0) {
    size_t k = n < kBlock ? n : kBlock;
    n -= k;
    while (k--) {
      a += *data++;
      b += a;
    }
    a %= kMod;
    b %= kMod;
  }
  return (b << 16) | a;
}

bool is_gzip(const uint8_t* data, size_t n) { return n >= 2 && data[0] == 0x1F && data[1] == 0x8B; }

// ------------------------------------------------------------------------------------------
// Huffman tables
// ------------------------------------------------------------------------------------------
namespace {

constexpr int kMaxCodeLen = 15;
constexpr int kPrimaryBits = 10;
constexpr uint32_t kPrimaryMask = (1u << kPrimaryBits) - 1;
// Table entries: 0 = no code has this bit pattern;
// kSym | len | sym << 16  = a complete code of `len` bits for symbol `sym`;
// kLink | offset << 16    = codes longer than kPrimaryBits continue in the sub-table at offset.
constexpr uint32_t kSym = 0x100;
constexpr uint32_t kLink = 0x200;

// Tops a bit buffer up to at least 56 bits from the 8 input bytes at in + pos (all readable).
// Shared by Inflater::refill() and the hot loop's copy of the state (Inflater::Hot).
inline void refill8(const uint8_t* in, size_t& pos, uint64_t& buf, unsigned& cnt) {
  uint64_t v;
  std::memcpy(&v, in + pos, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  buf |= v << cnt;
  pos += (63 - cnt) >> 3;
  cnt |= 56;
}

struct Huffman {
  std::vector<uint32_t> table;
  uint32_t sub_mask = 0;  // index mask of every sub-table (all have 2^(max_len - primary) rows)
};

uint32_t reverse_bits(uint32_t code, int len) {
  uint32_t r = 0;
  for (int i = 0; i < len; ++i) {
    r = (r << 1) | (code & 1);
    code >>= 1;
  }
  return r;
}

// Builds the canonical Huffman decoding table for `n` code lengths. Returns an empty string on
// success, otherwise what is wrong. Incomplete codes are accepted; their unused bit patterns
// decode as errors.
std::string build_huffman(Huffman& h, const uint8_t* lens, int n) {
  int count[kMaxCodeLen + 1] = {0};
  for (int i = 0; i < n; ++i) count[lens[i]]++;
  count[0] = 0;
  int left = 1;
  for (int len = 1; len <= kMaxCodeLen; ++len) {
    left = (left << 1) - count[len];
    if (left < 0) return "over-subscribed code lengths";
  }
  int max_len = 0;
  for (int len = 1; len <= kMaxCodeLen; ++len)
    if (count[len]) max_len = len;
  uint32_t next[kMaxCodeLen + 2] = {0};
  uint32_t code = 0;
  for (int len = 1; len <= kMaxCodeLen; ++len) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  h.table.assign(size_t(1) << kPrimaryBits, 0);
  int sub_bits = max_len > kPrimaryBits ? max_len - kPrimaryBits : 0;
  h.sub_mask = (1u << sub_bits) - 1;
  const size_t sub_size = size_t(1) << sub_bits;
  for (int sym = 0; sym < n; ++sym) {
    int len = lens[sym];
    if (len == 0) continue;
    uint32_t rev = reverse_bits(next[len]++, len);
    uint32_t entry = kSym | uint32_t(len) | (uint32_t(sym) << 16);
    if (len <= kPrimaryBits) {
      for (uint32_t i = rev; i <= kPrimaryMask; i += 1u << len) h.table[i] = entry;
    } else {
      uint32_t prefix = rev & kPrimaryMask;
      uint32_t e = h.table[prefix];
      size_t off;
      if (e == 0) {
        off = h.table.size();
        h.table.resize(off + sub_size, 0);
        h.table[prefix] = kLink | uint32_t(off << 16);
      } else if (e & kLink) {
        off = e >> 16;
      } else {
        return "code lengths do not form a prefix code";
      }
      int rest = len - kPrimaryBits;
      for (uint32_t i = rev >> kPrimaryBits; i < sub_size; i += 1u << rest) h.table[off + i] = entry;
    }
  }
  return std::string();
}

const uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                               31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
const uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
const uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
const uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
const uint8_t kCodeLenOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

struct FixedTables {
  Huffman lit, dist;
  FixedTables() {
    uint8_t lens[288];
    for (int i = 0; i < 144; ++i) lens[i] = 8;
    for (int i = 144; i < 256; ++i) lens[i] = 9;
    for (int i = 256; i < 280; ++i) lens[i] = 7;
    for (int i = 280; i < 288; ++i) lens[i] = 8;
    build_huffman(lit, lens, 288);
    uint8_t dl[32];
    for (int i = 0; i < 32; ++i) dl[i] = 5;
    build_huffman(dist, dl, 32);
  }
};

const FixedTables& fixed_tables() {
  static const FixedTables t;
  return t;
}

// Forces the hot loop's steps into their caller, where the state they share stays in registers.
#if defined(__GNUC__) || defined(__clang__)
#define AIT_HOT_INLINE inline __attribute__((always_inline))
#else
#define AIT_HOT_INLINE inline
#endif

// ------------------------------------------------------------------------------------------
// The decoder
// ------------------------------------------------------------------------------------------
// Thrown by reserve() in prefix mode when the output would pass max_output: decoding stops there.
struct LimitReached {};

class Inflater {
public:
  // With `prefix_goal` set, decoding stops (LimitReached) at the first block boundary with at
  // least that many bytes out, or where a step would pass max_output.
  Inflater(const uint8_t* in, size_t n, const std::string& source, std::vector<uint8_t>& out, size_t max_output,
           size_t prefix_goal = SIZE_MAX)
      : in_(in),
        n_(n),
        source_(source),
        out_(out),
        len_(out.size()),
        start_(out.size()),
        max_output_(max_output),
        prefix_goal_(prefix_goal) {}

  // As run(), but in prefix mode: true when decoding stopped at max_output (the output then
  // holds what was decoded before the step that would have passed it).
  bool run_prefix(size_t* consumed) {
    try {
      *consumed = run(0);
      return false;
    } catch (const LimitReached&) {
      out_.resize(len_);
      return true;
    }
  }

  // Decodes one DEFLATE stream, appending to `out`. Returns the input bytes consumed.
  size_t run(size_t size_hint) {
    if (size_hint > 0 && size_hint <= max_output_ && out_.size() < len_ + size_hint) out_.resize(len_ + size_hint);
    bool final = false;
    while (!final) {
      if (len_ >= prefix_goal_) throw LimitReached{};
      final = bits(1) != 0;
      uint32_t type = bits(2);
      if (type == 0) {
        stored_block();
      } else if (type == 1) {
        const FixedTables& f = fixed_tables();
        codes(f.lit, f.dist);
      } else if (type == 2) {
        dynamic_block();
      } else {
        fail("invalid block type 3");
      }
    }
    out_.resize(len_);
    uint64_t used_bits = 8 * uint64_t(pos_ + phantom_) - cnt_;
    return size_t((used_bits + 7) / 8);
  }

private:
  [[noreturn]] void fail(const std::string& what) const {
    uint64_t used_bits = 8 * uint64_t(pos_ + phantom_) - cnt_;
    throw Error(source_ + ": corrupt deflate data: " + what + " (at compressed byte " + std::to_string(used_bits / 8) +
                ")");
  }
  [[noreturn]] void truncated() const {
    throw Error(source_ + ": truncated deflate data: the input ends inside a block (" + std::to_string(n_) + " bytes)");
  }

  // Tops the bit buffer up to at least 56 bits. Past the end of the input it shifts in zero
  // bytes and counts them; using any of those bits is caught by check().
  void refill() {
    if (pos_ + 8 <= n_) {
      refill8(in_, pos_, buf_, cnt_);
    } else {
      while (cnt_ <= 56) {
        if (pos_ < n_) {
          buf_ |= uint64_t(in_[pos_++]) << cnt_;
        } else {
          ++phantom_;
        }
        cnt_ += 8;
      }
    }
  }
  void check() const {
    if (cnt_ < 8 * phantom_) truncated();
  }
  void consume(unsigned k) {
    buf_ >>= k;
    cnt_ -= k;
  }
  uint32_t bits(unsigned k) {
    if (cnt_ < k) refill();
    uint32_t v = uint32_t(buf_ & ((uint64_t(1) << k) - 1));
    consume(k);
    check();
    return v;
  }
  // An unused bit pattern. When the pattern reaches into the zero bytes past the end of the
  // input, the real problem is that the input ends too soon.
  [[noreturn]] void invalid_code(const char* what) const {
    if (cnt_ < 8 * phantom_ + kMaxCodeLen) truncated();
    fail(std::string("invalid ") + what + " code");
  }
  // The table entry for the code at the bottom of `buf` (which holds at least 15 bits).
  static AIT_HOT_INLINE uint32_t table_entry(const uint32_t* table, uint32_t sub_mask, uint64_t buf) {
    uint32_t e = table[buf & kPrimaryMask];
    if (e & kLink) e = table[(e >> 16) + ((buf >> kPrimaryBits) & sub_mask)];
    return e;
  }
  // Caller guarantees at least 15 bits are buffered.
  uint32_t decode(const Huffman& h, const char* what) {
    uint32_t e = table_entry(h.table.data(), h.sub_mask, buf_);
    if (!(e & kSym)) invalid_code(what);
    consume(e & 0xFF);
    check();
    return e >> 16;
  }

  // Makes room for k more output bytes plus `slack` scratch bytes past them.
  void reserve(size_t k, size_t slack = 0) {
    if ((k > max_output_ || len_ > max_output_ - k) && prefix_goal_ != SIZE_MAX) throw LimitReached{};
    if (k > max_output_ || len_ > max_output_ - k)
      throw Error(source_ + ": decompressed data exceeds the limit of " + std::to_string(max_output_) + " bytes");
    if (len_ + k + slack <= out_.size()) return;
    size_t cap = out_.size() < (size_t(1) << 16) ? (size_t(1) << 16) : out_.size() * 2;
    if (cap < len_ + k + slack) cap = len_ + k + slack;
    if (max_output_ <= SIZE_MAX - slack && cap > max_output_ + slack) cap = max_output_ + slack;
    out_.resize(cap);
  }

  void stored_block() {
    unsigned drop = cnt_ & 7;
    consume(drop);
    check();
    // Return the whole bytes still buffered to the input and read the block directly.
    size_t buffered = cnt_ / 8 - phantom_;
    pos_ -= buffered;
    buf_ = 0;
    cnt_ = 0;
    phantom_ = 0;
    if (n_ - pos_ < 4) truncated();
    uint16_t len = load_le16(in_ + pos_);
    uint16_t nlen = load_le16(in_ + pos_ + 2);
    if (uint16_t(~nlen) != len)
      fail("stored block length " + std::to_string(len) + " does not match its complement " + std::to_string(nlen));
    pos_ += 4;
    if (n_ - pos_ < len) truncated();
    reserve(len);
    if (len) std::memcpy(out_.data() + len_, in_ + pos_, len);
    len_ += len;
    pos_ += len;
  }

  // ---- Dynamic Huffman blocks (RFC 1951 §3.2.7) ----

  void dynamic_block() {
    uint32_t hlit = bits(5) + 257, hdist = bits(5) + 1, hclen = bits(4) + 4;
    if (hlit > 286) fail("too many literal/length codes (" + std::to_string(hlit) + ", at most 286)");
    if (hdist > 30) fail("too many distance codes (" + std::to_string(hdist) + ", at most 30)");
    read_code_length_code(hclen);
    uint8_t lens[286 + 30];
    read_code_lengths(lens, hlit + hdist);
    build_block_codes(lens, hlit, hdist);
    codes(lit_, dist_);
  }

  // The code that the literal/length and distance code lengths are sent in: `hclen` 3-bit
  // lengths in the order of kCodeLenOrder, the rest zero.
  void read_code_length_code(uint32_t hclen) {
    uint8_t cl[19] = {0};
    for (uint32_t i = 0; i < hclen; ++i) cl[kCodeLenOrder[i]] = uint8_t(bits(3));
    std::string err = build_huffman(lens_code_, cl, 19);
    if (!err.empty()) fail("code-length code: " + err);
  }

  // `total` code lengths sent in the code-length code: 0-15 literally, 16 = repeat the
  // previous length 3-6 times, 17 = 3-10 zeros, 18 = 11-138 zeros.
  void read_code_lengths(uint8_t* lens, uint32_t total) {
    uint32_t i = 0;
    while (i < total) {
      if (cnt_ < 32) refill();
      uint32_t sym = decode(lens_code_, "code-length");
      if (sym < 16) {
        lens[i++] = uint8_t(sym);
        continue;
      }
      uint8_t val = 0;
      uint32_t repeat;
      if (sym == 16) {
        if (i == 0) fail("code length repeat with no previous length");
        val = lens[i - 1];
        repeat = 3 + bits(2);
      } else if (sym == 17) {
        repeat = 3 + bits(3);
      } else {
        repeat = 11 + bits(7);
      }
      if (repeat > total - i) fail("code length repeat runs past the end of the code lengths");
      std::memset(lens + i, val, repeat);
      i += repeat;
    }
  }

  // The literal/length code from the first `hlit` lengths, the distance code from the next
  // `hdist`.
  void build_block_codes(const uint8_t* lens, uint32_t hlit, uint32_t hdist) {
    if (lens[256] == 0) fail("the literal/length code has no end-of-block code");
    std::string err = build_huffman(lit_, lens, int(hlit));
    if (!err.empty()) fail("literal/length code: " + err);
    err = build_huffman(dist_, lens + hlit, int(hdist));
    if (!err.empty()) fail("distance code: " + err);
  }

  // ---- Compressed data of a Huffman block (the hot loop) ----

  // The decoder state the hot loop works on, copied into locals: stores through the uint8_t
  // output pointer may alias any member of Inflater, so members would be reloaded after every
  // byte. The steps below take it by reference and are forced inline, so it lives in
  // registers. hot_store() writes the changing part back before anything that reads members.
  struct Hot {
    const uint8_t* in;
    size_t n, start, max_output;
    const uint32_t *lit, *dist;  // the literal/length and distance tables
    uint32_t lit_sub, dist_sub;
    uint64_t buf;
    unsigned cnt;
    size_t pos, len, phantom_bits;
    uint8_t* out;
    size_t cap;
  };

  void codes(const Huffman& lit, const Huffman& dist) {
    Hot h{in_,  n_,   start_, max_output_, lit.table.data(), dist.table.data(), lit.sub_mask, dist.sub_mask,
          buf_, cnt_, pos_,   len_,        8 * phantom_,     out_.data(),       out_.size()};
    for (;;) {
      hot_refill(h);
      uint32_t sym = hot_literal_or_length(h);
      if (sym < 256) {
        hot_put_literal(h, uint8_t(sym));
        continue;
      }
      if (sym == 256) break;  // end of block
      uint32_t length = hot_match_length(h, sym - 257);
      uint32_t distance = hot_match_distance(h);
      hot_copy_match(h, distance, length);
    }
    hot_store(h);
  }

  AIT_HOT_INLINE void hot_store(const Hot& h) {
    buf_ = h.buf;
    cnt_ = h.cnt;
    pos_ = h.pos;
    len_ = h.len;
  }
  AIT_HOT_INLINE void hot_load(Hot& h) const {
    h.buf = buf_;
    h.cnt = cnt_;
    h.pos = pos_;
    h.len = len_;
    h.phantom_bits = 8 * phantom_;
    h.out = out_.data();
    h.cap = out_.size();
  }

  static AIT_HOT_INLINE void hot_consume(Hot& h, unsigned k) {
    h.buf >>= k;
    h.cnt -= k;
  }
  // At least 48 bits buffered: one symbol needs at most 15 + 5 + 15 + 13.
  AIT_HOT_INLINE void hot_refill(Hot& h) {
    if (h.cnt >= 48) return;
    if (h.pos + 8 <= h.n) {
      refill8(h.in, h.pos, h.buf, h.cnt);
    } else {
      hot_store(h);
      refill();
      hot_load(h);
    }
  }

  // The next literal/length symbol, its code consumed.
  AIT_HOT_INLINE uint32_t hot_literal_or_length(Hot& h) {
    uint32_t e = table_entry(h.lit, h.lit_sub, h.buf);
    if (!(e & kSym)) {
      hot_store(h);
      invalid_code("literal/length");
    }
    hot_consume(h, e & 0xFF);
    if (h.cnt < h.phantom_bits) {
      hot_store(h);
      truncated();
    }
    return e >> 16;
  }

  AIT_HOT_INLINE void hot_put_literal(Hot& h, uint8_t byte) {
    if (h.len >= h.cap || h.len >= h.max_output) {
      hot_store(h);
      reserve(1);
      hot_load(h);
    }
    h.out[h.len++] = byte;
  }

  // Match length for length symbol 257 + `sym`, its extra bits consumed.
  AIT_HOT_INLINE uint32_t hot_match_length(Hot& h, uint32_t sym) {
    if (sym >= 29) {
      hot_store(h);
      fail("invalid literal/length symbol " + std::to_string(sym + 257));
    }
    unsigned x = kLenExtra[sym];
    uint32_t length = kLenBase[sym] + uint32_t(h.buf & ((1u << x) - 1));
    hot_consume(h, x);
    return length;
  }

  // Match distance: its code and extra bits consumed, and checked against the input's end.
  AIT_HOT_INLINE uint32_t hot_match_distance(Hot& h) {
    uint32_t e = table_entry(h.dist, h.dist_sub, h.buf);
    if (!(e & kSym)) {
      hot_store(h);
      invalid_code("distance");
    }
    hot_consume(h, e & 0xFF);
    uint32_t sym = e >> 16;
    if (sym >= 30) {
      hot_store(h);
      check();
      fail("invalid distance symbol " + std::to_string(sym));
    }
    unsigned x = kDistExtra[sym];
    uint32_t distance = kDistBase[sym] + uint32_t(h.buf & ((1u << x) - 1));
    hot_consume(h, x);
    if (h.cnt < h.phantom_bits) {
      hot_store(h);
      truncated();
    }
    return distance;
  }

  // Copies `length` bytes from `distance` back. Overlapping copies repeat the pattern, as
  // DEFLATE requires; reserve()'s 8 bytes of slack let the 8-byte chunks overrun the end.
  AIT_HOT_INLINE void hot_copy_match(Hot& h, uint32_t distance, uint32_t length) {
    if (distance > h.len - h.start) {
      hot_store(h);
      fail("distance " + std::to_string(distance) + " reaches before the start of the output (" +
           std::to_string(h.len - h.start) + " bytes so far)");
    }
    if (length > h.cap - h.len || h.cap - h.len - length < 8 || length > h.max_output - h.len) {
      hot_store(h);
      reserve(length, 8);
      hot_load(h);
    }
    uint8_t* dst = h.out + h.len;
    const uint8_t* src = dst - distance;
    if (distance >= length) {
      std::memcpy(dst, src, length);
    } else if (distance >= 8) {
      for (uint32_t k = 0; k < length; k += 8) std::memcpy(dst + k, src + k, 8);
    } else if (distance == 1) {
      std::memset(dst, *src, length);
    } else {
      for (uint32_t k = 0; k < length; ++k) dst[k] = src[k];
    }
    h.len += length;
  }

  const uint8_t* in_;
  size_t n_;
  const std::string& source_;
  std::vector<uint8_t>& out_;
  size_t len_;    // bytes of out_ in use (out_.size() is the capacity while decoding)
  size_t start_;  // where this stream's output begins (matches may not reach before it)
  size_t max_output_;
  size_t prefix_goal_;
  size_t pos_ = 0;      // next input byte to load into the bit buffer
  uint64_t buf_ = 0;    // bit buffer, least significant bit first
  unsigned cnt_ = 0;    // valid bits in buf_
  size_t phantom_ = 0;  // zero bytes loaded past the end of the input
  Huffman lens_code_, lit_, dist_;
};

// Decodes one raw DEFLATE stream onto the end of `out`; returns the input bytes consumed.
size_t inflate_append(const uint8_t* data, size_t n, const std::string& source, std::vector<uint8_t>& out,
                      size_t max_output, size_t size_hint) {
  size_t before = out.size();
  try {
    Inflater inf(data, n, source, out, max_output);
    return inf.run(size_hint);
  } catch (...) {
    out.resize(before);
    throw;
  }
}

}  // namespace

std::vector<uint8_t> inflate_raw(const uint8_t* data, size_t n, const std::string& source, size_t* consumed,
                                 size_t max_output) {
  std::vector<uint8_t> out;
  size_t used = inflate_append(data, n, source, out, max_output, 0);
  if (consumed) *consumed = used;
  return out;
}

namespace {

// The input at `p` does not start with the gzip magic: the whole file is not gzip, or bytes
// other than zero padding follow the last member.
[[noreturn]] void throw_not_gzip(const uint8_t* data, size_t n, size_t p, int member, const std::string& source) {
  if (member > 1)
    throw Error(source + ": trailing garbage after gzip member " + std::to_string(member - 1) + " at byte " +
                std::to_string(p));
  if (n < 2) throw Error(source + ": not a gzip file (" + std::to_string(n) + " bytes)");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02x %02x", data[0], data[1]);
  throw Error(source + ": not a gzip file (starts with " + buf + ", expected 1f 8b)");
}

// Checks the member header that starts at `p` (magic already seen) and returns where its
// DEFLATE data begins: past the optional extra field, name, comment and header CRC.
size_t gzip_header_end(const uint8_t* data, size_t n, size_t p, const std::string& where) {
  const uint8_t* h = data + p;
  if (n - p < 10) throw Error(where + ": truncated header (" + std::to_string(n - p) + " of at least 10 bytes)");
  if (h[2] != 8) throw Error(where + ": unsupported compression method " + std::to_string(h[2]) + " (only 8, deflate)");
  uint8_t flg = h[3];
  if (flg & 0xE0) throw Error(where + ": reserved header flag bits set (flags " + std::to_string(flg) + ")");
  size_t q = p + 10;
  if (flg & 0x04) {  // FEXTRA
    if (n - q < 2) throw Error(where + ": truncated header (FEXTRA length)");
    size_t xlen = load_le16(data + q);
    q += 2;
    if (n - q < xlen) throw Error(where + ": truncated header (FEXTRA field of " + std::to_string(xlen) + " bytes)");
    q += xlen;
  }
  for (uint8_t flag : {uint8_t(0x08), uint8_t(0x10)}) {  // FNAME, FCOMMENT: zero-terminated
    if (!(flg & flag)) continue;
    const void* z = std::memchr(data + q, 0, n - q);
    if (!z)
      throw Error(where + ": truncated header (" + (flag == 0x08 ? "FNAME" : "FCOMMENT") +
                  " field has no terminating zero)");
    q = size_t(static_cast<const uint8_t*>(z) - data) + 1;
  }
  if (flg & 0x02) {  // FHCRC
    if (n - q < 2) throw Error(where + ": truncated header (FHCRC)");
    uint16_t stored = load_le16(data + q);
    uint16_t computed = uint16_t(crc32(data + p, q - p) & 0xFFFF);
    if (stored != computed)
      throw Error(where + ": header CRC-16 mismatch (stored " + std::to_string(stored) + ", computed " +
                  std::to_string(computed) + ")");
    q += 2;
  }
  return q;
}

// The ISIZE of the last member as a capacity hint, or 0. Bounded by a multiple of the input
// size so that a lying trailer cannot make us allocate much more than the data we were given.
size_t gzip_size_hint(const uint8_t* data, size_t n, size_t max_output) {
  if (n < 4) return 0;
  uint64_t isize = load_le32(data + n - 4);
  return isize <= uint64_t(n) * 8 && isize <= max_output ? size_t(isize) : 0;
}

// Checks the 8-byte trailer at `q` (CRC-32 and ISIZE) against the member's decoded bytes.
void check_gzip_trailer(const uint8_t* data, size_t n, size_t q, const uint8_t* member_out, size_t member_size,
                        const std::string& where) {
  if (n - q < 8)
    throw Error(where + ": truncated trailer (" + std::to_string(n - q) + " of 8 bytes of CRC-32 and ISIZE)");
  uint32_t stored_crc = load_le32(data + q), stored_size = load_le32(data + q + 4);
  uint32_t crc = crc32(member_out, member_size);
  if (crc != stored_crc)
    throw Error(where + ": CRC-32 mismatch (stored " + hex32(stored_crc) + ", computed " + hex32(crc) + ")");
  uint32_t size = uint32_t(member_size & 0xFFFFFFFFu);
  if (size != stored_size)
    throw Error(where + ": ISIZE mismatch (stored " + std::to_string(stored_size) + ", decompressed " +
                std::to_string(size) + " mod 2^32)");
}

// True when the bytes from `p` on are zero padding after the last member (not another one).
bool only_zero_padding(const uint8_t* data, size_t n, size_t p) {
  if (data[p] == 0x1F) return false;
  for (size_t k = p; k < n; ++k)
    if (data[k] != 0) return false;
  return true;
}

}  // namespace

namespace {
// Decodes the gzip members of `data` onto one output, whose total may not pass `max_output`.
// With a `prefix_goal` (below SIZE_MAX) decoding stops at the first block boundary with that
// many bytes out, or where a step would pass `max_output` (see Inflater); what follows is not
// read, nor is the CRC of a member left unfinished.
std::vector<uint8_t> gunzip_members(const uint8_t* data, size_t n, const std::string& source, size_t max_output,
                                    size_t prefix_goal) {
  std::vector<uint8_t> out;
  size_t p = 0;
  for (int member = 1;; ++member) {
    std::string where = source + ": gzip" + (member > 1 ? " member " + std::to_string(member) : "");
    if (!is_gzip(data + p, n - p)) throw_not_gzip(data, n, p, member, source);
    size_t q = gzip_header_end(data, n, p, where), start = out.size(), used = 0;
    if (prefix_goal == SIZE_MAX) {
      size_t hint = member == 1 ? gzip_size_hint(data, n, max_output) : 0;
      used = inflate_append(data + q, n - q, where, out, max_output, hint);
    } else {
      Inflater inf(data + q, n - q, where, out, max_output, prefix_goal);
      if (inf.run_prefix(&used) || out.size() >= prefix_goal) break;
    }
    q += used;
    check_gzip_trailer(data, n, q, out.data() + start, out.size() - start, where);
    p = q + 8;
    if (p == n || only_zero_padding(data, n, p)) break;
  }
  return out;
}
}  // namespace

// (The limit counts the output of every member: the decoder compares it with the whole output.)
std::vector<uint8_t> gunzip(const uint8_t* data, size_t n, const std::string& source, size_t max_output) {
  return gunzip_members(data, n, source, max_output, SIZE_MAX);
}

std::vector<uint8_t> gunzip_prefix(const uint8_t* data, size_t n, const std::string& source, size_t limit) {
  // Decoding stops at the first block boundary past `limit`, or before a step (a match of up to
  // 258 bytes, a stored block of up to 65535) that would pass limit + 64 KiB.
  const size_t cap = limit > SIZE_MAX - 65536 ? SIZE_MAX - 1 : limit + 65536;
  std::vector<uint8_t> out = gunzip_members(data, n, source, cap, limit);
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::vector<uint8_t> zlib_decompress(const uint8_t* data, size_t n, const std::string& source, size_t max_output) {
  if (n < 2) throw Error(source + ": zlib: truncated header (" + std::to_string(n) + " of 2 bytes)");
  uint8_t cmf = data[0], flg = data[1];
  if ((cmf & 0x0F) != 8)
    throw Error(source + ": zlib: unsupported compression method " + std::to_string(cmf & 0x0F) + " (only 8, deflate)");
  if ((cmf >> 4) > 7) throw Error(source + ": zlib: invalid window size (CINFO " + std::to_string(cmf >> 4) + ")");
  if ((uint32_t(cmf) * 256 + flg) % 31 != 0) throw Error(source + ": zlib: header check bits are wrong");
  if (flg & 0x20) throw Error(source + ": zlib: preset dictionaries are not supported");
  std::vector<uint8_t> out;
  std::string where = source + ": zlib";
  size_t used = inflate_append(data + 2, n - 2, where, out, max_output, 0);
  size_t q = 2 + used;
  if (n - q < 4) throw Error(where + ": truncated trailer (" + std::to_string(n - q) + " of 4 bytes of Adler-32)");
  uint32_t stored =
      (uint32_t(data[q]) << 24) | (uint32_t(data[q + 1]) << 16) | (uint32_t(data[q + 2]) << 8) | uint32_t(data[q + 3]);
  uint32_t computed = adler32(out.data(), out.size());
  if (stored != computed)
    throw Error(where + ": Adler-32 mismatch (stored " + hex32(stored) + ", computed " + hex32(computed) + ")");
  if (q + 4 != n) throw Error(where + ": " + std::to_string(n - q - 4) + " trailing bytes after the end of the stream");
  return out;
}

// ------------------------------------------------------------------------------------------
// Stored-block encoders
// ------------------------------------------------------------------------------------------
std::vector<uint8_t> deflate_stored(const uint8_t* data, size_t n) {
  std::vector<uint8_t> out;
  size_t blocks = n == 0 ? 1 : (n + 65534) / 65535;
  out.reserve(n + 5 * blocks);
  size_t p = 0;
  do {
    size_t len = n - p < 65535 ? n - p : 65535;
    bool final = p + len == n;
    out.push_back(final ? 1 : 0);  // BFINAL, BTYPE = 00
    out.push_back(uint8_t(len & 0xFF));
    out.push_back(uint8_t(len >> 8));
    out.push_back(uint8_t(~len & 0xFF));
    out.push_back(uint8_t((~len >> 8) & 0xFF));
    out.insert(out.end(), data + p, data + p + len);
    p += len;
  } while (p < n);
  return out;
}

std::vector<uint8_t> zlib_compress_stored(const uint8_t* data, size_t n) {
  std::vector<uint8_t> out = {0x78, 0x01};  // deflate, 32 KiB window, no dictionary, FCHECK ok
  std::vector<uint8_t> body = deflate_stored(data, n);
  out.insert(out.end(), body.begin(), body.end());
  uint32_t a = adler32(data, n);
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(a >> s));
  return out;
}

std::vector<uint8_t> gzip_compress_stored(const uint8_t* data, size_t n) {
  std::vector<uint8_t> out = {0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255};  // no flags, no mtime, OS unknown
  std::vector<uint8_t> body = deflate_stored(data, n);
  out.insert(out.end(), body.begin(), body.end());
  uint32_t c = crc32(data, n), s = uint32_t(n & 0xFFFFFFFFu);
  for (int k = 0; k < 32; k += 8) out.push_back(uint8_t(c >> k));
  for (int k = 0; k < 32; k += 8) out.push_back(uint8_t(s >> k));
  return out;
}

}  // namespace ait
