// Our DEFLATE compressor (RFC 1951) and its zlib wrapper (RFC 1950), for the files the tools
// write (PNG). LZ77 over the 32 KiB window with hash chains and one step of lazy matching;
// each block is coded with dynamic Huffman codes (lengths limited to 15 bits) or stored, when
// storing it is smaller. The decoder is inflate.h's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ait {

// A raw DEFLATE stream of data[0, n).
std::vector<uint8_t> deflate_compress(const uint8_t* data, size_t n);
// The same in a zlib stream (header 78 9C, Adler-32 at the end).
std::vector<uint8_t> zlib_compress(const uint8_t* data, size_t n);

}  // namespace ait
