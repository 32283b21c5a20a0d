// Compressed-stream and whole-file I/O: our own DEFLATE decoder (RFC 1951) with the zlib
// (RFC 1950) and gzip (RFC 1952) wrappers, CRC-32 / Adler-32, a stored-block-only encoder for
// the writers that need a plain zlib or gzip stream (npz; PNG compresses with deflate.h), and
// whole-file read / atomic write (whole_file.cpp).
//
// Every decoder treats its input as hostile: truncation, corrupt Huffman tables, distances
// that reach before the start of the output, bad checksums and output past `max_output` all
// throw ait::Error with a message that starts with `source` (a file name for in-memory data).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace ait {

// Largest output the decoders produce before refusing (a guard against decompression bombs).
constexpr size_t kMaxInflateOutput = size_t(1) << 32;  // 4 GiB

// CRC-32 (ISO-HDLC / gzip / PNG polynomial 0xEDB88320). Chain calls by passing the previous
// result as `prev`; crc32("123456789") == 0xCBF43926.
uint32_t crc32(const uint8_t* data, size_t n, uint32_t prev = 0);
// Adler-32 (zlib). Chain calls by passing the previous result as `prev` (start value 1).
uint32_t adler32(const uint8_t* data, size_t n, uint32_t prev = 1);

// Raw DEFLATE stream (no wrapper). Stops after the final block; when `consumed` is given it
// receives the number of input bytes used (the final partial byte counts as used).
std::vector<uint8_t> inflate_raw(const uint8_t* data, size_t n, const std::string& source, size_t* consumed = nullptr,
                                 size_t max_output = kMaxInflateOutput);
// gzip file contents: one or more members, each with its CRC-32 and ISIZE checked; trailing
// zero bytes after the last member are ignored, any other trailing bytes are an error.
std::vector<uint8_t> gunzip(const uint8_t* data, size_t n, const std::string& source,
                            size_t max_output = kMaxInflateOutput);
// The first `limit` bytes of a gzip file's contents (all of them when it holds fewer, with every
// member's CRC checked), decoding little more than `limit` bytes: for formats whose header says
// how much data follows, so that a small file cannot make the reader decode gigabytes.
std::vector<uint8_t> gunzip_prefix(const uint8_t* data, size_t n, const std::string& source, size_t limit);
// zlib stream: header checked (no preset dictionary), Adler-32 checked, nothing may follow.
std::vector<uint8_t> zlib_decompress(const uint8_t* data, size_t n, const std::string& source,
                                     size_t max_output = kMaxInflateOutput);

// True when the data starts with the gzip magic bytes 1f 8b.
bool is_gzip(const uint8_t* data, size_t n);

// Encoders that only use stored (uncompressed) blocks of at most 65535 bytes each.
std::vector<uint8_t> deflate_stored(const uint8_t* data, size_t n);
std::vector<uint8_t> zlib_compress_stored(const uint8_t* data, size_t n);
std::vector<uint8_t> gzip_compress_stored(const uint8_t* data, size_t n);

// Whole file into memory; throws naming the path when it cannot be opened or read.
std::vector<uint8_t> read_file(const std::string& path);
// As read_file, then gunzip when the contents start with 1f 8b.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

// Atomic replace: writes the parts, in order, to `path + ".tmp.<pid>"`, flushes, fsyncs and
// renames over `path`. On any failure the temporary file is removed, an existing `path` is
// left untouched, and an ait::Error naming the path is thrown.
using ByteSpan = std::pair<const uint8_t*, size_t>;
void write_file_atomic(const std::string& path, const std::vector<ByteSpan>& parts);
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace ait
