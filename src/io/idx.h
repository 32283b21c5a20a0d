// IDX files (the MNIST family's format): two zero bytes, an element-type code, a dimension
// count, big-endian uint32 dimensions, then the elements. Only unsigned-byte data (type code
// 0x08) is accepted; the file may be gzip-compressed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace ait {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. [60000, 28, 28] for images, [60000] for labels
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
  std::string source;         // the file name, for messages
};

// Validates the magic, the element type, the dimension count and that the dimensions account
// for exactly the bytes present. Errors name `source`.
IdxArray parse_idx(const uint8_t* data, size_t n, const std::string& source);
// Reads a plain or gzip-compressed IDX file.
IdxArray read_idx(const std::string& path);

}  // namespace ait
