// DEFLATE compression; see deflate.h. The format's tables (length and distance codes, the
// order of the code-length code lengths) are those of RFC 1951 §3.2.5 and §3.2.7.
#include "io/deflate.h"

#include <algorithm>
#include <array>
#include <queue>

#include "io/inflate.h"

namespace ait {

namespace {

constexpr int kWindow = 32768, kMinMatch = 3, kMaxMatch = 258;
constexpr int kHashBits = 15, kMaxChain = 96;  // chain walk per position: speed against ratio
constexpr int kNiceMatch = 128;                // a match this long ends the search
constexpr size_t kBlockSymbols = 1 << 15;      // symbols per block, so the codes follow the data
constexpr int kMaxBits = 15, kMaxCodeLengthBits = 7;

constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr uint8_t kCodeLengthOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

class BitWriter {
public:
  explicit BitWriter(std::vector<uint8_t>& out) : out_(out) {}
  // The low `count` bits of `bits`, least significant first (count <= 32).
  void put(uint32_t bits, int count) {
    acc_ |= uint64_t(bits) << filled_;
    filled_ += count;
    while (filled_ >= 8) out_.push_back(uint8_t(acc_)), acc_ >>= 8, filled_ -= 8;
  }
  void align() {
    if (filled_ > 0) out_.push_back(uint8_t(acc_));
    acc_ = 0, filled_ = 0;
  }

private:
  std::vector<uint8_t>& out_;
  uint64_t acc_ = 0;
  int filled_ = 0;
};

// A literal (dist 0, value the byte) or a match (length 3..258, dist 1..32768).
struct Symbol {
  uint16_t length_or_literal, dist;
};

int length_code(int length) {  // index into kLengthBase
  int c = 0;
  while (c < 28 && kLengthBase[c + 1] <= length) ++c;
  return c;
}
int dist_code(int dist) {
  int c = 0;
  while (c < 29 && kDistBase[c + 1] <= dist) ++c;
  return c;
}

// Huffman code lengths of at most `limit` bits for `freq`; at least two symbols get a length
// (a complete code, which every decoder accepts). Over-long codes are avoided by halving the
// frequencies (keeping them above zero) until the tree fits.
std::vector<uint8_t> code_lengths(std::vector<uint32_t> freq, int limit) {
  int used = 0;
  for (uint32_t f : freq) used += f > 0;
  for (size_t s = 0; used < 2 && s < freq.size(); ++s)
    if (freq[s] == 0) freq[s] = 1, ++used;
  std::vector<uint8_t> len(freq.size(), 0);
  for (;;) {
    // Nodes: leaves 0..n-1, internal nodes after; parent links give each leaf's depth.
    using Item = std::pair<uint64_t, int>;  // (weight, node), smallest first
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    std::vector<int> parent(freq.size(), -1);
    for (size_t s = 0; s < freq.size(); ++s)
      if (freq[s]) heap.push({freq[s], int(s)});
    while (heap.size() > 1) {
      const Item a = heap.top();
      heap.pop();
      const Item b = heap.top();
      heap.pop();
      const int node = int(parent.size());
      parent.push_back(-1);
      parent[size_t(a.second)] = parent[size_t(b.second)] = node;
      heap.push({a.first + b.first, node});
    }
    int longest = 0;
    for (size_t s = 0; s < freq.size(); ++s) {
      int depth = 0;
      for (int p = parent[s]; freq[s] && p >= 0; p = parent[size_t(p)]) ++depth;
      len[s] = uint8_t(depth);
      longest = std::max(longest, depth);
    }
    if (longest <= limit) return len;
    for (uint32_t& f : freq)
      if (f) f = std::max<uint32_t>(1, f / 2);
  }
}

// Canonical codes (RFC 1951 §3.2.2), bit-reversed for a least-significant-first writer.
std::vector<uint16_t> canonical_codes(const std::vector<uint8_t>& len) {
  int count[kMaxBits + 1] = {}, next[kMaxBits + 2] = {};
  for (uint8_t l : len) ++count[l];
  count[0] = 0;
  for (int bits = 1, code = 0; bits <= kMaxBits; ++bits) next[bits] = code = (code + count[bits - 1]) << 1;
  std::vector<uint16_t> codes(len.size(), 0);
  for (size_t s = 0; s < len.size(); ++s) {
    if (!len[s]) continue;
    uint32_t c = uint32_t(next[len[s]]++), r = 0;
    for (int i = 0; i < len[s]; ++i) r = (r << 1) | ((c >> i) & 1);
    codes[s] = uint16_t(r);
  }
  return codes;
}

// The code-length sequence of the literal/length and distance lengths, run-length coded with
// symbols 16 (repeat previous 3-6), 17 (zeros 3-10) and 18 (zeros 11-138): (symbol, extra).
std::vector<std::pair<uint8_t, uint8_t>> run_length_code(const std::vector<uint8_t>& lengths) {
  std::vector<std::pair<uint8_t, uint8_t>> out;
  for (size_t i = 0; i < lengths.size();) {
    const uint8_t l = lengths[i];
    size_t run = 1;
    while (i + run < lengths.size() && lengths[i + run] == l) ++run;
    i += run;
    if (l == 0) {
      while (run >= 11)
        out.push_back({18, uint8_t(std::min<size_t>(run, 138) - 11)}), run -= std::min<size_t>(run, 138);
      if (run >= 3) out.push_back({17, uint8_t(run - 3)}), run = 0;
    } else {
      out.push_back({l, 0}), --run;
      while (run >= 3) out.push_back({16, uint8_t(std::min<size_t>(run, 6) - 3)}), run -= std::min<size_t>(run, 6);
    }
    for (; run > 0; --run) out.push_back({l, 0});
  }
  return out;
}

// ---------------------------------------------------------------- blocks

int code_length_extra(uint8_t symbol) { return symbol == 16 ? 2 : symbol == 17 ? 3 : symbol == 18 ? 7 : 0; }

void put_stored(BitWriter& bw, const uint8_t* raw, size_t n, bool final) {
  size_t at = 0;
  do {
    const size_t chunk = std::min<size_t>(n - at, 65535);
    const bool last = at + chunk == n;
    bw.put(final && last ? 1 : 0, 1);
    bw.put(0, 2);
    bw.align();
    bw.put(uint32_t(chunk), 16);
    bw.put(uint32_t(~chunk & 0xFFFF), 16);
    for (size_t i = 0; i < chunk; ++i) bw.put(raw[at + i], 8);
    at += chunk;
  } while (at < n);
}

// The block of `symbols` (covering raw[0, raw_n)) with dynamic codes, or stored when that is smaller.
void put_block(BitWriter& bw, const std::vector<Symbol>& symbols, const uint8_t* raw, size_t raw_n, bool final) {
  std::vector<uint32_t> lit_freq(286, 0), dist_freq(30, 0);
  for (const Symbol& s : symbols) {
    if (s.dist == 0) ++lit_freq[s.length_or_literal];
    else ++lit_freq[257 + size_t(length_code(s.length_or_literal))], ++dist_freq[size_t(dist_code(s.dist))];
  }
  lit_freq[256] = 1;
  const std::vector<uint8_t> lit_len = code_lengths(lit_freq, kMaxBits), dist_len = code_lengths(dist_freq, kMaxBits);
  size_t hlit = 286, hdist = 30;
  while (hlit > 257 && lit_len[hlit - 1] == 0) --hlit;
  while (hdist > 1 && dist_len[hdist - 1] == 0) --hdist;
  std::vector<uint8_t> all(lit_len.begin(), lit_len.begin() + long(hlit));
  all.insert(all.end(), dist_len.begin(), dist_len.begin() + long(hdist));
  const auto rle = run_length_code(all);
  std::vector<uint32_t> cl_freq(19, 0);
  for (const auto& r : rle) ++cl_freq[r.first];
  const std::vector<uint8_t> cl_len = code_lengths(cl_freq, kMaxCodeLengthBits);
  size_t hclen = 19;
  while (hclen > 4 && cl_len[kCodeLengthOrder[hclen - 1]] == 0) --hclen;

  uint64_t bits = 3 + 14 + 3 * hclen + lit_len[256];
  for (const auto& r : rle) bits += cl_len[r.first] + uint64_t(code_length_extra(r.first));
  for (const Symbol& s : symbols) {
    if (s.dist == 0) {
      bits += lit_len[s.length_or_literal];
    } else {
      const int lc = length_code(s.length_or_literal), dc = dist_code(s.dist);
      bits += lit_len[257 + size_t(lc)] + kLengthExtra[lc] + dist_len[size_t(dc)] + kDistExtra[dc];
    }
  }
  const uint64_t stored_bits = 8 * uint64_t(raw_n) + 40 * (raw_n / 65535 + 1) + 8;
  if (stored_bits <= bits) return put_stored(bw, raw, raw_n, final);

  bw.put(final ? 1 : 0, 1);
  bw.put(2, 2);  // dynamic Huffman codes
  bw.put(uint32_t(hlit - 257), 5), bw.put(uint32_t(hdist - 1), 5), bw.put(uint32_t(hclen - 4), 4);
  for (size_t i = 0; i < hclen; ++i) bw.put(cl_len[kCodeLengthOrder[i]], 3);
  const std::vector<uint16_t> cl_code = canonical_codes(cl_len), lit_code = canonical_codes(lit_len),
                              dist_code_bits = canonical_codes(dist_len);
  for (const auto& r : rle) {
    bw.put(cl_code[r.first], cl_len[r.first]);
    bw.put(r.second, code_length_extra(r.first));
  }
  for (const Symbol& s : symbols) {
    if (s.dist == 0) {
      bw.put(lit_code[s.length_or_literal], lit_len[s.length_or_literal]);
      continue;
    }
    const int lc = length_code(s.length_or_literal), dc = dist_code(s.dist);
    bw.put(lit_code[257 + size_t(lc)], lit_len[257 + size_t(lc)]);
    bw.put(uint32_t(s.length_or_literal - kLengthBase[lc]), kLengthExtra[lc]);
    bw.put(dist_code_bits[size_t(dc)], dist_len[size_t(dc)]);
    bw.put(uint32_t(s.dist - kDistBase[dc]), kDistExtra[dc]);
  }
  bw.put(lit_code[256], lit_len[256]);
}

// ---------------------------------------------------------------- LZ77

class Matcher {
public:
  Matcher(const uint8_t* data, size_t n)
      : d_(data), n_(int64_t(n)), head_(size_t(1) << kHashBits, 0), prev_(kWindow, 0) {}
  // Records position p (which needs 3 bytes) in its hash chain.
  void insert(int64_t p) {
    const uint32_t h = hash(p);
    prev_[size_t(p & (kWindow - 1))] = head_[h];
    head_[h] = p + 1;
  }
  // The longest earlier match for position p within the window (length 0 when none of 3 or more).
  void find(int64_t p, int& length, int& dist) const {
    const int64_t limit = std::min<int64_t>(kMaxMatch, n_ - p);
    int64_t best = kMinMatch - 1, cand = head_[hash(p)] - 1;
    length = 0, dist = 0;
    for (int chain = kMaxChain; cand >= 0 && p - cand <= kWindow && chain > 0; --chain) {
      if (d_[cand + best] == d_[p + best]) {
        int64_t l = 0;
        while (l < limit && d_[cand + l] == d_[p + l]) ++l;
        if (l > best) {
          best = l, length = int(l), dist = int(p - cand);
          if (l >= limit || l >= kNiceMatch) break;
        }
      }
      const int64_t next = prev_[size_t(cand & (kWindow - 1))] - 1;
      if (next >= cand) break;  // a slot reused by a newer position: the chain ends here
      cand = next;
    }
  }

private:
  uint32_t hash(int64_t p) const {
    const uint32_t v = uint32_t(d_[p]) | uint32_t(d_[p + 1]) << 8 | uint32_t(d_[p + 2]) << 16;
    return (v * 2654435761u) >> (32 - kHashBits);
  }
  const uint8_t* d_;
  int64_t n_;
  std::vector<int64_t> head_, prev_;  // position + 1; 0: none
};

}  // namespace

std::vector<uint8_t> deflate_compress(const uint8_t* data, size_t n) {
  std::vector<uint8_t> out;
  BitWriter bw(out);
  Matcher m(data, n);
  std::vector<Symbol> symbols;
  int64_t block_start = 0, covered = 0;
  auto emit = [&](Symbol s, int64_t advance) {
    symbols.push_back(s);
    covered += advance;
    if (symbols.size() < kBlockSymbols) return;
    put_block(bw, symbols, data + block_start, size_t(covered - block_start), false);
    symbols.clear(), block_start = covered;
  };
  const int64_t size = int64_t(n);
  // Lazy matching: a match found at p-1 is emitted only when p does not start a longer one.
  bool pending = false;
  int prev_len = 0, prev_dist = 0;
  for (int64_t p = 0; p < size;) {
    int len = 0, dist = 0;
    if (size - p >= kMinMatch) {
      if (prev_len < kNiceMatch) m.find(p, len, dist);
      m.insert(p);
    }
    if (prev_len >= kMinMatch && len <= prev_len) {
      emit({uint16_t(prev_len), uint16_t(prev_dist)}, prev_len);
      const int64_t end = p - 1 + prev_len;
      for (int64_t q = p + 1; q < end; ++q)
        if (size - q >= kMinMatch) m.insert(q);
      p = end, pending = false, prev_len = 0;
    } else {
      if (pending) emit({data[p - 1], 0}, 1);
      pending = true, prev_len = len, prev_dist = dist, ++p;
    }
  }
  if (pending) emit({data[n - 1], 0}, 1);
  put_block(bw, symbols, data + block_start, size_t(covered - block_start), true);
  bw.align();
  return out;
}

std::vector<uint8_t> zlib_compress(const uint8_t* data, size_t n) {
  std::vector<uint8_t> out = {0x78, 0x9C};  // 32 KiB window, default level; (0x789C % 31) == 0
  const std::vector<uint8_t> body = deflate_compress(data, n);
  out.insert(out.end(), body.begin(), body.end());
  const uint32_t a = adler32(data, n);
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(a >> shift));
  return out;
}

}  // namespace ait
