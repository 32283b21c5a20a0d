// NumPy .npy files (format versions 1.0, 2.0 and 3.0): a parser that treats its input as
// hostile and a version 1.0 writer. Errors name `source`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace ait {

struct NpyArray {
  std::string descr;  // e.g. "|u1", "<f4"
  bool fortran_order = false;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // raw element bytes, little-endian
};

// Rejects fortran_order True, big-endian dtypes, a header past EOF and data size != shape.
NpyArray parse_npy(const std::vector<uint8_t>& bytes, const std::string& source);
// v1.0, header padded to a multiple of 64 bytes as numpy does.
std::vector<uint8_t> write_npy(const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                               size_t nbytes);
// The element size in bytes of a little-endian or byte dtype such as "<i4" or "|u1"; throws
// naming `source` for anything else.
size_t npy_itemsize(const std::string& descr, const std::string& source);

}  // namespace ait
