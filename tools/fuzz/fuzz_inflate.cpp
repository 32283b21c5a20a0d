// libFuzzer target: raw DEFLATE, gzip and zlib decoding. The first byte picks the decoder.
// Properties: never crash, only ait::Error escapes, `consumed` stays within the input, and
// anything decoded re-encodes (stored blocks) and decodes back to itself.
// Build with -DAIT_FUZZ_WITH_ZLIB -lz to also compare against the system zlib: whatever zlib
// accepts we must accept with identical output (we are only more lenient about incomplete
// Huffman codes).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/inflate.h"
#ifdef AIT_FUZZ_WITH_ZLIB
#include <zlib.h>
#endif

namespace {
constexpr size_t kLimit = size_t(1) << 24;

#ifdef AIT_FUZZ_WITH_ZLIB
// windowBits: -15 raw, 15 zlib, 31 gzip (zlib stops after the first gzip member).
bool zlib_reference(const uint8_t* data, size_t n, int window_bits, std::vector<uint8_t>& out) {
  z_stream s = {};
  if (inflateInit2(&s, window_bits) != Z_OK) return false;
  s.next_in = const_cast<uint8_t*>(data);
  s.avail_in = unsigned(n);
  uint8_t buf[65536];
  int rc;
  do {
    s.next_out = buf;
    s.avail_out = sizeof buf;
    rc = inflate(&s, Z_NO_FLUSH);
    out.insert(out.end(), buf, buf + (sizeof buf - s.avail_out));
    if (out.size() > kLimit) rc = Z_MEM_ERROR;
  } while (rc == Z_OK);
  size_t left = s.avail_in;
  inflateEnd(&s);
  // Ours reject trailing bytes after a zlib stream, and gzip data here is one member exactly.
  return rc == Z_STREAM_END && (window_bits < 0 || left == 0);
}
#endif
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  ++data;
  --size;
  std::vector<uint8_t> out;
  bool ok = false;
  try {
    if (mode == 0) {
      size_t used = 0;
      out = ait::inflate_raw(data, size, "fuzz", &used, kLimit);
      if (used > size) abort();
    } else if (mode == 1) {
      out = ait::gunzip(data, size, "fuzz.gz", kLimit);
    } else {
      out = ait::zlib_decompress(data, size, "fuzz.z", kLimit);
    }
    ok = true;
    std::vector<uint8_t> enc = ait::zlib_compress_stored(out.data(), out.size());
    if (ait::zlib_decompress(enc.data(), enc.size(), "re-encoded") != out) abort();
  } catch (const ait::Error&) {
  }
#ifdef AIT_FUZZ_WITH_ZLIB
  std::vector<uint8_t> ref;
  if (zlib_reference(data, size, mode == 0 ? -15 : mode == 1 ? 31 : 15, ref) && (!ok || out != ref)) abort();
#else
  (void)ok;
#endif
  return 0;
}
